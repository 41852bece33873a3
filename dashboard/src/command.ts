/**
 * The scale switch's command state, as every dashboard should see it.
 *
 * The room is the authority: it reports each command queued → delivered →
 * applied / failed / timed-out to every dashboard (`command-status`), and a
 * dashboard that connects later finds the recent ones in its snapshot. This
 * reducer folds those into the one thing the switch shows: the latest scale
 * command and its phase. The only state it invents is `sending` — the few
 * milliseconds (or, while reconnecting, seconds) between a click and the
 * room's first answer — and a local time-out if that answer never comes.
 *
 * Pure: unit-tested in Node (test/node/dashboard-command.test.ts).
 */
import type { CommandRecord, CommandStatus, Scale } from "../../party/protocol";
import { formatDuration } from "./format";

/**
 * `queued`: the device is offline and the room keeps the command until it returns (it does
 * not time out meanwhile); `delivered`: the device has it and has not answered yet.
 */
export type CommandPhase = "sending" | "queued" | "delivered" | "applied" | "failed" | "timed-out";

export type ScaleCommandView = {
  id: string;
  target: Scale;
  phase: CommandPhase;
  /** The room's status, once it has said anything. */
  status: CommandStatus | null;
  error?: string;
  /** When it was made: the room's createdAt, or the local click time while sending. */
  createdAt: number;
  /** When this page's operator clicked (only the page that sent it knows). */
  clickedAt?: number;
  /** When the room handed it to the device (rooms before deliveredAt: unknown). */
  deliveredAt?: number;
  /** When the device applied it, as its agent reports (on the endpoint's clock; older agents: unknown). */
  appliedAt?: number;
  /** When the room last changed it: for a finished command, when it finished. */
  updatedAt?: number;
};
export type CommandEvent =
  /** This dashboard sent a command (over its socket). */
  | { type: "sent"; id: string; target: Scale; at: number }
  /** The room reported a command's status (ours or another dashboard's). */
  | { type: "record"; record: CommandRecord }
  /** A (re)connect: the room's recent commands, newest first. */
  | { type: "snapshot"; commands: readonly CommandRecord[] }
  /** The clock moved: a command still `sending` after SEND_TIMEOUT_MS gives up. */
  | { type: "tick"; now: number };

/**
 * How long a click may wait for the room's first word. The room itself times
 * a delivered command out after COMMAND_TIMEOUT_MS (10 s); this only covers a
 * command that never reached the room (socket down the whole time).
 */
export const SEND_TIMEOUT_MS = 15_000;

/** Statuses only move forward; a late `applied` may still follow `timed-out` (the room lets the truth win). */
const RANK: Record<CommandStatus, number> = { queued: 0, delivered: 1, "timed-out": 2, applied: 3, failed: 3 };

export function phaseOf(status: CommandStatus): CommandPhase {
  return status;
}

function fromRecord(record: CommandRecord): ScaleCommandView | null {
  if (record.command.cmd !== "scale") return null;
  return {
    id: record.id,
    target: record.command.scale,
    phase: phaseOf(record.status),
    status: record.status,
    ...(record.error ? { error: record.error } : {}),
    createdAt: record.createdAt,
    ...(record.deliveredAt !== undefined ? { deliveredAt: record.deliveredAt } : {}),
    ...(record.appliedAt !== undefined ? { appliedAt: record.appliedAt } : {}),
    updatedAt: record.updatedAt,
  };
}

export function reduceScaleCommand(view: ScaleCommandView | null, event: CommandEvent): ScaleCommandView | null {
  switch (event.type) {
    case "sent":
      return { id: event.id, target: event.target, phase: "sending", status: null, createdAt: event.at, clickedAt: event.at };
    case "record":
      return applyRecord(view, event.record);
    case "snapshot": {
      // Newest scale command the room remembers; the rest are history.
      const latest = event.commands
        .filter((c) => c.command.cmd === "scale")
        .reduce<CommandRecord | undefined>((a, c) => (!a || c.createdAt > a.createdAt ? c : a), undefined);
      return latest ? applyRecord(view, latest) : view;
    }
    case "tick":
      if (view?.phase === "sending" && event.now - view.createdAt >= SEND_TIMEOUT_MS) {
        return { ...view, phase: "timed-out", error: "the endpoint did not answer; is the connection up?" };
      }
      return view;
  }
}

function applyRecord(view: ScaleCommandView | null, record: CommandRecord): ScaleCommandView | null {
  const next = fromRecord(record);
  if (!next) return view;
  if (!view) return next;
  if (record.id === view.id) {
    // The click time is only ours: keep it through the room's updates.
    const merged = view.clickedAt !== undefined ? { ...next, clickedAt: view.clickedAt } : next;
    // Our own local guesses (sending, or the local time-out) give way to anything the room says.
    if (view.status === null) return merged;
    return RANK[record.status] >= RANK[view.status] ? merged : view;
  }
  // Another command (from another dashboard, or the REST API): the newer one is what the switch shows.
  // While ours is still `sending`, an older record (say, in a reconnect's snapshot) must not hide it.
  return record.createdAt >= view.createdAt ? next : view;
}

/** What the device says it has, for telling a stale failure from one that still matters. */
export type DeviceFacts = { reported: Scale | null };

/**
 * What the switch says, and how it looks. A command that timed out or failed while the
 * device nevertheless reports its target has converged (a late answer, or the desired state
 * applied on reconnect): nothing is wrong any more, so no red line stays beside
 * "The device reports °C" — in this page or after a reload.
 */
export function describeCommand(
  view: ScaleCommandView | null,
  device: DeviceFacts = { reported: null },
): { text: string; tone: "busy" | "ok" | "bad" | "none" } {
  if (!view) return { text: "", tone: "none" };
  const to = view.target === "F" ? "°F" : "°C";
  switch (view.phase) {
    case "sending":
      return { text: `Sending: switch to ${to}…`, tone: "busy" };
    case "queued":
      return { text: `Queued: switch to ${to} waits in the room until the device is back online`, tone: "busy" };
    case "delivered":
      return { text: `Delivered: switch to ${to}, waiting for the device to confirm…`, tone: "busy" };
    case "applied":
      return { text: `Applied: the device switched to ${to}`, tone: "ok" };
    case "failed":
    case "timed-out":
      if (device.reported === view.target) return { text: `In effect: the device reports ${to}`, tone: "ok" };
      if (view.phase === "failed") return { text: `Failed: switch to ${to}${view.error ? ` (${view.error})` : ""}`, tone: "bad" };
      return { text: `Timed out: ${timeoutReason(view, to)}`, tone: "bad" };
  }
}

function timeoutReason(view: ScaleCommandView, to: string): string {
  // The room says how long it waited in ms ("within 10000 ms"): say it as people do.
  if (view.status === null) return `switch to ${to} (${view.error ?? "the endpoint did not answer"})`;
  const limit = /within (\d+) ms/.exec(view.error ?? "")?.[1];
  // Else how long it waited, to the second (the room's alarm fires a few ms after the deadline).
  const waited = view.deliveredAt !== undefined && view.updatedAt !== undefined ? Math.round((view.updatedAt - view.deliveredAt) / 1000) * 1000 : null;
  const ms = limit !== undefined ? Number(limit) : waited;
  return ms !== null ? `the device did not confirm switch to ${to} within ${formatDuration(ms)}` : `switch to ${to} (no answer from the device)`;
}

/**
 * One step of a command's trace: what happened, when, and how long since the step before.
 * `device-applied` is the agent's own time (on the endpoint's clock as it reckons it); the step
 * after it is then the return leg, the result reaching the room.
 */
export type TraceStep = { step: "clicked" | "queued" | "delivered" | "device-applied" | CommandPhase; at: number; tookMs: number | null };

/**
 * clicked → queued → delivered → applied (or failed / timed-out), with the time each step
 * took, so an operator sees where a slow command spent it: in the network (clicked →
 * queued), waiting for an offline device (queued → delivered), on the way to and on the
 * device (delivered → applied on the device, from agents that report their time), or on the
 * way back (→ the room has the result). Steps nobody recorded (another page's click, an older
 * agent's apply time) are left out.
 */
export function commandTrace(view: ScaleCommandView | null): TraceStep[] {
  if (!view) return [];
  const steps: { step: TraceStep["step"]; at: number }[] = [];
  if (view.clickedAt !== undefined) steps.push({ step: "clicked", at: view.clickedAt });
  if (view.status !== null) steps.push({ step: "queued", at: view.createdAt });
  if (view.deliveredAt !== undefined) steps.push({ step: "delivered", at: view.deliveredAt });
  if (view.appliedAt !== undefined && view.phase === "applied" && view.status !== null) steps.push({ step: "device-applied", at: view.appliedAt });
  if ((view.phase === "applied" || view.phase === "failed" || view.phase === "timed-out") && view.status !== null && view.updatedAt !== undefined) {
    steps.push({ step: view.phase, at: view.updatedAt });
  }
  // The room's clock and this page's (or the agent's reckoning of the room's) may disagree by a little: never a negative step.
  return steps.map((s, i) => ({ ...s, tookMs: i === 0 ? null : Math.max(0, s.at - steps[i - 1]!.at) }));
}

/** "Queued +12 ms"; after the device's own step, the room's `applied` is the result's return: "Confirmed +15 ms". */
export function describeStep(step: TraceStep, index = 0, steps: readonly TraceStep[] = []): string {
  const afterDevice = steps[index - 1]?.step === "device-applied";
  const name = {
    clicked: "Clicked",
    queued: "Queued",
    delivered: "Delivered",
    "device-applied": "Applied on the device",
    applied: afterDevice ? "Confirmed" : "Applied",
    failed: "Failed",
    "timed-out": "Timed out",
    sending: "Sending",
  }[step.step];
  return step.tookMs === null ? name : `${name} +${formatDuration(step.tookMs)}`;
}
