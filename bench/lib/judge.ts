/**
 * A run's verdicts: $ per device-month from the hub's measured rows and
 * requests per reading (lib/cost.ts), and the goals issue 10 set, each with
 * the figure it was judged on and met / NOT met.
 */
import type { Outcome } from "../run";
import { deviceMonth, dollars, type DeviceMonth, type PerReading } from "./cost";
import { WS_MESSAGES_PER_REQUEST, type Counters } from "./counters";

export type CostCase = {
  case: string;
  /** Which scenario on which target the figures come from, and how it ran. */
  from: string;
  per: PerReading;
  month: DeviceMonth;
};

export type Goal = { goal: string; measured: string; verdict: "met" | "NOT met" | "not run" | "n/a" };

export type JudgeInput = {
  outcomes: Outcome[];
  billedMsPerEvent: number;
  fleetRateHz: number;
  unwatchedMs: number;
  /** The rooms' default unwatched interval and where it was read: the unwatched cost is also projected to it. */
  plannedUnwatched: { ms: number; from: string };
  /** Heartbeat pings a second: the device's (every HEARTBEAT_MS) and one watching dashboard's. */
  pings: { device: number; dashboard: number };
};

const counters = (o: Outcome | undefined): Counters | undefined => (o?.counters && !("unavailable" in o.counters) ? o.counters : undefined);
const ms = (v: number) => (Number.isNaN(v) ? "—" : v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`);
const per = (c: Counters): PerReading => ({
  rows: c.rowsPerReading,
  chunks: c.commits / c.readingsStored,
  requests: c.requestsPerReading,
  events: (c.framesIn + c.alarms + c.calls) / c.readingsStored,
});

/** The hub the goals are judged on: `hub` (what npm start runs), or hub-dev when only it ran. */
export function judgedHub(outcomes: Outcome[]): "hub" | "hub-dev" {
  return outcomes.some((o) => o.target === "hub") ? "hub" : "hub-dev";
}

/**
 * Watched: the scale run (1 Hz, one dashboard each) when it ran, else the fleet (at its rate).
 * Unwatched: as measured, and projected to the planned interval assuming rows, frames and calls
 * come once per frame and alarms once per unit of time (rows an alarm writes would not shrink).
 */
export function costCases(input: JudgeInput): CostCase[] {
  const hub = judgedHub(input.outcomes);
  const find = (s: Outcome["scenario"]) => input.outcomes.find((o) => o.scenario === s && o.target === hub && !o.failed);
  const cases: CostCase[] = [];
  const scale = counters(find("scale"));
  const fleet = counters(find("fleet"));
  const watched = scale ?? fleet;
  if (watched && watched.readingsStored > 0) {
    const from = scale ? `scale on ${hub} (1 Hz, 1 dashboard each)` : `fleet on ${hub} (${input.fleetRateHz} Hz, dashboards watching)`;
    const pings = input.pings.device + input.pings.dashboard;
    cases.push({ case: "watched", from, per: per(watched), month: deviceMonth(per(watched), input.billedMsPerEvent, pings) });
  }
  const unwatched = counters(find("unwatched"));
  if (unwatched && unwatched.readingsStored > 0) {
    const p = per(unwatched);
    cases.push({ case: "unwatched", from: `unwatched on ${hub} (frames every ${input.unwatchedMs / 1000} s)`, per: p, month: deviceMonth(p, input.billedMsPerEvent, input.pings.device) });
    const f = input.unwatchedMs / input.plannedUnwatched.ms;
    const c = unwatched;
    const projected: PerReading = {
      rows: p.rows * f,
      chunks: p.chunks * f,
      requests: ((c.framesIn / WS_MESSAGES_PER_REQUEST + c.calls) * f + c.alarms) / c.readingsStored,
      events: ((c.framesIn + c.calls) * f + c.alarms) / c.readingsStored,
    };
    const to = `${input.plannedUnwatched.ms / 1000} s (${input.plannedUnwatched.from})`;
    cases.push({ case: "unwatched, projected", from: `the same, scaled to frames every ${to}`, per: projected, month: deviceMonth(projected, input.billedMsPerEvent, input.pings.device) });
  }
  return cases;
}

/** The goals of issue 10, each judged on the hub that npm start runs. */
export function goals(input: JudgeInput, cases: CostCase[]): Goal[] {
  const hub = judgedHub(input.outcomes);
  const find = (s: Outcome["scenario"], t: string) => input.outcomes.find((o) => o.scenario === s && o.target === t);
  const out: Goal[] = [];
  /** A goal comparing the hub's figure with a bound; not run / n/a when either side is missing. */
  const judge = (goal: string, scenario: Outcome["scenario"], value: (o: Outcome) => number, show: (v: number) => string, bound: () => { value: number; show: string } | string, better: "lower" | "higher") => {
    const o = find(scenario, hub);
    if (!o) return out.push({ goal, measured: `${scenario} not run on ${hub}`, verdict: "not run" });
    if (o.failed) return out.push({ goal, measured: `${scenario} failed on ${hub}`, verdict: "n/a" });
    const b = bound();
    if (typeof b === "string") return out.push({ goal, measured: b, verdict: b.includes("not run") ? "not run" : "n/a" });
    const v = value(o);
    if (Number.isNaN(v) || Number.isNaN(b.value)) return out.push({ goal, measured: `${Number.isNaN(v) ? "—" : show(v)} vs ${b.show}`, verdict: "n/a" });
    const met = better === "lower" ? v <= b.value : v >= b.value;
    out.push({ goal, measured: `${show(v)} vs ${b.show}`, verdict: met ? "met" : "NOT met" });
  };
  const peer = (scenario: Outcome["scenario"], target: string, value: (o: Outcome) => number, factor: number, show: (v: number) => string) => () => {
    const o = find(scenario, target);
    if (!o) return `${target} not run`;
    if (o.failed) return `${target} failed`;
    const v = value(o);
    return { value: v * factor, show: factor === 1 ? `${show(v)} (${target})` : `${factor} × ${show(v)} = ${show(v * factor)} (${target})` };
  };
  const fixed = (v: number) => (v >= 10_000 ? `${(v / 1000).toFixed(1)}k/s` : `${v.toFixed(0)}/s`);
  const p99 = (o: Outcome) => o.latencyMs.p99;
  judge("fleet p99 ≤ Mosquitto-WS p99", "fleet", p99, ms, peer("fleet", "mosquitto-ws", p99, 1, ms), "lower");
  judge("fleet p99 ≤ 5× Mosquitto-TCP p99", "fleet", p99, ms, peer("fleet", "mosquitto", p99, 5, ms), "lower");
  judge("burst ≥ 0.8× Mosquitto-TCP", "burst", (o) => o.throughput, fixed, peer("burst", "mosquitto", (o) => o.throughput, 0.8, fixed), "higher");
  const back = (o: Outcome) => o.recoveryMs?.all ?? Number.NaN;
  judge("storm all back ≤ Mosquitto-WS", "storm", back, ms, peer("storm", "mosquitto-ws", back, 1, ms), "lower");
  const drained = (o: Outcome) => o.drainMs ?? Number.NaN;
  judge("backfill drained ≤ 2× Mosquitto-TCP", "backfill", drained, ms, peer("backfill", "mosquitto", drained, 2, ms), "lower");

  const rowsOf = (o: Outcome) => counters(o)?.rowsPerReading ?? Number.NaN;
  const need = (scenario: Outcome["scenario"]) => () => {
    const o = find(scenario, hub);
    if (o && !counters(o)) return `counters ${(o.counters as { unavailable: string } | undefined)?.unavailable ?? "n/a"}`;
    if (o && counters(o)!.readingsStored === 0) return "nothing committed in the window (too short for a group commit)";
    return { value: 0, show: "" };
  };
  const bound = (value: number, label: string, check: () => { value: number; show: string } | string) => () => {
    const c = check();
    return typeof c === "string" ? c : { value, show: label };
  };
  // Unwatched: judged at the rooms' default interval. A run at a shorter one (so that it has frames
  // to count) is judged on its projection to the default, and both figures are shown.
  const unwatchedCost = cases.find((c) => c.case === "unwatched");
  const projectedCost = cases.find((c) => c.case === "unwatched, projected");
  const planned = input.plannedUnwatched.ms / 1000;
  const useProjection = projectedCost !== undefined && input.unwatchedMs < input.plannedUnwatched.ms;
  const unwatched = find("unwatched", hub);
  const missing = (goal: string): Goal =>
    !unwatched
      ? { goal, measured: "unwatched not run", verdict: "not run" }
      : { goal, measured: `no counters (${(unwatched.counters as { unavailable?: string } | undefined)?.unavailable ?? (unwatched.failed ? "failed" : "no readings stored")})`, verdict: "n/a" };
  const unwatchedGoal = (goal: string, limit: number, value: (c: CostCase) => number, show: (v: number) => string) => {
    if (!unwatchedCost) return out.push(missing(goal));
    const measured = `${show(value(unwatchedCost))} at ${input.unwatchedMs / 1000} s frames`;
    const v = useProjection ? value(projectedCost!) : value(unwatchedCost);
    out.push({
      goal,
      measured: useProjection ? `${show(v)} projected at ${planned} s (${measured})` : measured,
      verdict: v <= limit ? "met" : "NOT met",
    });
  };
  unwatchedGoal("rows/reading ≤ 0.05 unwatched", 0.05, (c) => c.per.rows, (v) => v.toFixed(3));
  const watchedScenario = find("scale", hub) && counters(find("scale", hub)) ? "scale" : "fleet";
  judge(`rows/reading ≤ 0.2 watched (${watchedScenario})`, watchedScenario, rowsOf, (v) => v.toFixed(3), bound(0.2, "0.2", need(watchedScenario)), "lower");
  unwatchedGoal("unwatched ≤ $0.05 / device-month", 0.05, (c) => c.month.total, dollars);

  const scale = find("scale", hub);
  out.push(
    !scale
      ? { goal: "scale: every reading delivered", measured: `scale not run on ${hub}`, verdict: "not run" }
      : scale.failed
        ? { goal: "scale: every reading delivered", measured: `scale failed on ${hub}`, verdict: "n/a" }
        : { goal: "scale: every reading delivered", measured: `${scale.delivered}/${scale.expected} before the restart`, verdict: scale.expected > 0 && scale.loss === 0 ? "met" : "NOT met" },
  );
  judge("scale: p99 ≤ 50 ms", "scale", p99, ms, () => ({ value: 50, show: "50 ms" }), "lower");
  judge("scale: all back ≤ 5 s after restart", "scale", (o) => o.restart?.allBackAfterUpMs ?? Number.NaN, ms, () => ({ value: 5_000, show: "5 s" }), "lower");
  return out;
}
