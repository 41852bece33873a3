/**
 * `npm run bench`: the hub against the peers a user would pick instead, same
 * load, same clients, same run.
 *
 *   hub           the endpoint as `npm run endpoint` runs it (wrangler dev, workerd)
 *   hub-direct    the same as the container runs it (DIRECT=1: Miniflare, no wrangler proxy)
 *   mosquitto     Mosquitto from Debian's packages, MQTT over TCP
 *   mosquitto-ws  the same broker, MQTT over WebSockets
 *   ws-relay      a minimal Node `ws` relay (bench/relay.ts)
 *
 * Scenarios: fleet, burst, reconnect storm, backfill (see --help), then the
 * agent's own cost at 1 Hz. Prints one table and the hub's ratio to each peer,
 * and writes the same as JSON to bench/results/. Nothing here is a test: no
 * number fails anything.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { startEndpoint, type Endpoint } from "../test/support/endpoint";
import { freePort, nodeProc, Proc, ROOT, sleep, waitFor } from "../test/support/processes";
import { Profiler } from "./lib/cpuprofile";
import { latency, percentile, type Latency } from "./lib/stats";
import type { DashboardSpec, DeviceSpec, FromWorker, Plan, Scenario, Target, ToWorker, WorkerResult } from "./load";

const HELP = `npm run bench [-- options]

  --quick                 a smaller run that finishes in under a minute
  --scenarios LIST        fleet,burst,storm,backfill (default: all)
  --targets LIST          hub,hub-direct,mosquitto,mosquitto-ws,ws-relay (default: all; quick: all but hub-direct)
  --clients N             load-generating worker threads (default 2)
  --devices N             fleet and storm devices (default 100; quick 30)
  --dashboards N          fleet dashboards per device (default 5; quick 3)
  --rate HZ               fleet and storm readings a second per device (default 2)
  --seconds S             fleet duration (default 20; quick 2)
  --burst N               burst readings, 1 device -> 10 dashboards (default 20000; quick 5000)
  --batch N               readings per burst frame, every target alike (default 100)
  --window N              burst frames in flight (hub: unacked, MQTT: unwritten; default 8)
  --qos 0|1               MQTT QoS for Mosquitto (default 0)
  --hub-var NAME:VALUE    a Worker var for the hub, as wrangler dev --var (repeatable)
  --no-agent              skip measuring the agent's own cost
  --out FILE              where the JSON goes (default bench/results/bench-<time>.json)
  --profile DIR           CPU-profile the hub's Worker isolate during each scenario (DevTools
                          inspector): DIR/<scenario>.cpuprofile and the top functions printed`;

const { values: opts } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    scenarios: { type: "string" },
    targets: { type: "string" },
    clients: { type: "string" },
    devices: { type: "string" },
    dashboards: { type: "string" },
    rate: { type: "string" },
    seconds: { type: "string" },
    burst: { type: "string" },
    batch: { type: "string" },
    window: { type: "string" },
    qos: { type: "string" },
    "hub-var": { type: "string", multiple: true },
    "no-agent": { type: "boolean", default: false },
    out: { type: "string" },
    profile: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (opts.help) {
  console.log(HELP);
  process.exit(0);
}

function num(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${value}`);
  return n;
}

const quick = opts.quick;
const config = {
  clients: num(opts.clients, 2, "clients"),
  fleet: {
    devices: num(opts.devices, quick ? 30 : 100, "devices"),
    dashboards: num(opts.dashboards, quick ? 3 : 5, "dashboards"),
    rateHz: num(opts.rate, 2, "rate"),
    seconds: num(opts.seconds, quick ? 2 : 20, "seconds"),
  },
  burst: { readings: num(opts.burst, quick ? 5_000 : 20_000, "burst"), batch: num(opts.batch, 100, "batch"), window: num(opts.window, 8, "window"), dashboards: 10 },
  storm: { devices: num(opts.devices, quick ? 30 : 100, "devices"), rateHz: num(opts.rate, 2, "rate"), warmMs: quick ? 1_000 : 3_000, afterMs: quick ? 1_500 : 10_000 },
  backfill: { readings: 3_600, batch: 500, dashboards: quick ? 3 : 5, liveHz: 1 },
  agentSeconds: quick ? 2 : 30,
  /** After the last send, how long late readings may still arrive before they count as lost. */
  graceMs: quick ? 800 : 3_000,
  qos: opts.qos === "1" ? (1 as const) : (0 as const),
};
const ALL_SCENARIOS: Scenario[] = ["fleet", "burst", "storm", "backfill"];
const ALL_TARGETS = ["hub", "hub-direct", "mosquitto", "mosquitto-ws", "ws-relay"] as const;
type TargetName = (typeof ALL_TARGETS)[number];
const scenarios = pick(opts.scenarios, ALL_SCENARIOS, "scenarios");
// --quick leaves out hub-direct to stay under a minute; name it in --targets to have it.
const targetNames = opts.targets ? pick(opts.targets, ALL_TARGETS, "targets") : ALL_TARGETS.filter((t) => !(quick && t === "hub-direct"));

function pick<T extends string>(list: string | undefined, all: readonly T[], name: string): T[] {
  if (!list) return [...all];
  const chosen = list.split(",").map((s) => s.trim());
  for (const c of chosen) if (!all.includes(c as T)) throw new Error(`--${name}: unknown ${c} (one of ${all.join(", ")})`);
  return chosen as T[];
}

const now = () => performance.timeOrigin + performance.now();
const runTag = Date.now().toString(36);

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

type Running = { name: TargetName; target: Target; stop(): Promise<void>; hub?: Endpoint; inspectorPort?: number };

/** The endpoint as `npm run endpoint` runs it (wrangler dev), or `direct`: in Miniflare without wrangler's proxy, as the container runs it. */
async function startHub(direct = false): Promise<Running> {
  const vars: Record<string, string> = {
    // Every simulated client gets an address of its own (X-Real-IP, trusted as behind our nginx),
    // as a fleet's devices and dashboards have: the per-address REST limit is for one client, not all.
    TRUST_PROXY: "true",
  };
  for (const v of opts["hub-var"] ?? []) {
    const at = v.indexOf(":");
    if (at < 1) throw new Error(`--hub-var NAME:VALUE, got ${v}`);
    vars[v.slice(0, at)] = v.slice(at + 1);
  }
  const inspectorPort = opts.profile ? await freePort() : undefined;
  const hub = await startEndpoint({ vars, direct, args: inspectorPort && !direct ? ["--inspector-port", String(inspectorPort)] : [] });
  return { name: direct ? "hub-direct" : "hub", hub, inspectorPort: direct ? undefined : inspectorPort, target: { kind: "hub", base: hub.url, adminToken: hub.adminToken }, stop: () => hub.close() };
}

function mosquittoBinary(): string {
  for (const p of ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]) if (existsSync(p)) return p;
  // Installed when missing, as .ci/run does (Debian's package; root only).
  console.log("bench: installing mosquitto from Debian's packages");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  spawnSync("apt-get", ["update"], { stdio: "inherit", env });
  const r = spawnSync("apt-get", ["install", "-y", "--no-install-recommends", "mosquitto"], { stdio: "inherit", env });
  if (r.status !== 0) throw new Error("mosquitto is not installed and apt-get could not install it");
  spawnSync("service", ["mosquitto", "stop"], { stdio: "ignore" });
  return "/usr/sbin/mosquitto";
}

let mosquittoShared: Promise<{ proc: Proc; tcp: number; ws: number; dir: string }> | undefined;
function startMosquitto(): Promise<{ proc: Proc; tcp: number; ws: number; dir: string }> {
  mosquittoShared ??= (async () => {
    const bin = mosquittoBinary();
    const [tcp, ws] = [await freePort(), await freePort()];
    const dir = mkdtempSync(join(tmpdir(), "bench-mosquitto-"));
    const conf = join(dir, "mosquitto.conf");
    writeFileSync(
      conf,
      [
        "per_listener_settings false",
        "allow_anonymous true",
        "persistence false",
        "log_dest stdout",
        "log_type error",
        "log_type warning",
        // Room for a burst to slow subscribers; QoS 0 is not dropped before this.
        "max_queued_messages 100000",
        `listener ${tcp} 127.0.0.1`,
        `listener ${ws} 127.0.0.1`,
        "protocol websockets",
        "",
      ].join("\n"),
    );
    const proc = new Proc("mosquitto", bin, ["-c", conf]);
    await waitFor("mosquitto", async () => {
      if (!proc.running) throw new Error(`mosquitto exited: ${proc.tail()}`);
      const { default: mqtt } = await import("mqtt");
      const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${tcp}`, { reconnectPeriod: 0, connectTimeout: 1_000 });
      await c.endAsync();
      return true;
    });
    return { proc, tcp, ws, dir };
  })();
  return mosquittoShared;
}

async function startTarget(name: TargetName): Promise<Running> {
  switch (name) {
    case "hub":
      return startHub();
    case "hub-direct":
      return startHub(true);
    case "mosquitto":
    case "mosquitto-ws": {
      const m = await startMosquitto();
      const url = name === "mosquitto" ? `mqtt://127.0.0.1:${m.tcp}` : `ws://127.0.0.1:${m.ws}/mqtt`;
      return {
        name,
        target: { kind: "mqtt", url, qos: config.qos },
        stop: async () => {
          await m.proc.stop(3_000);
          rmSync(m.dir, { recursive: true, force: true });
        },
      };
    }
    case "ws-relay": {
      const port = await freePort();
      const proc = nodeProc("relay", [join(ROOT, "bench/dist/relay.mjs"), String(port)]);
      await proc.waitForLine("relay listening", 0, 15_000);
      return { name, target: { kind: "ws", url: `ws://127.0.0.1:${port}` }, stop: async () => void (await proc.stop(3_000)) };
    }
  }
}

// ---------------------------------------------------------------------------
// One scenario against one target
// ---------------------------------------------------------------------------

export type Outcome = {
  scenario: Scenario;
  target: TargetName;
  expected: number;
  delivered: number;
  loss: number;
  duplicates: number;
  outOfOrder: number;
  latencyMs: Latency;
  /** Readings delivered to dashboards per second, first send to last delivery. */
  throughput: number;
  /** storm: ms until every device streams again (NaN if some never did) and the median device. */
  recoveryMs?: { all: number; p50: number; recovered: number; devices: number; phases?: Record<string, { p50: number; max: number }> };
  /** backfill: ms until every dashboard held the whole backlog. */
  drainMs?: number;
  errors: number;
  firstErrors: string[];
  /** Set when the scenario could not finish on this target (clients could not connect, a time-out). */
  failed?: string;
};

function failedOutcome(scenario: Scenario, target: TargetName, failed: string): Outcome {
  const nan = Number.NaN;
  return { scenario, target, expected: 0, delivered: 0, loss: 0, duplicates: 0, outOfOrder: 0, latencyMs: { p50: nan, p99: nan, max: nan, samples: 0 }, throughput: nan, errors: 1, firstErrors: [failed], failed };
}

const ip = (kind: number, i: number) => `10.${kind}.${(i >> 8) & 255}.${(i & 255) + 1}`;

async function provision(run: Running, ids: string[]): Promise<string[]> {
  const hub = run.target as Extract<Target, { kind: "hub" }>;
  const tokens: string[] = [];
  for (let i = 0; i < ids.length; i += 10) {
    const part = await Promise.all(
      ids.slice(i, i + 10).map(async (id, j) => {
        const res = await fetch(`${hub.base}/api/devices`, {
          method: "POST",
          headers: { authorization: `Bearer ${hub.adminToken}`, "content-type": "application/json", "x-real-ip": ip(250, i + j) },
          body: JSON.stringify({ id }),
        });
        if (res.status !== 201) throw new Error(`provision ${id}: ${res.status} ${await res.text()}`);
        return ((await res.json()) as { token: string }).token;
      }),
    );
    tokens.push(...part);
  }
  return tokens;
}

/** With a profiler: profiled from the start of the load (the storm: from the drop) to its end. */
async function runScenario(scenario: Scenario, run: Running, profiler?: Profiler): Promise<Outcome> {
  const shape = {
    fleet: { devices: config.fleet.devices, dashboards: config.fleet.dashboards, rateHz: config.fleet.rateHz },
    burst: { devices: 1, dashboards: config.burst.dashboards, rateHz: 1 },
    storm: { devices: config.storm.devices, dashboards: 1, rateHz: config.storm.rateHz },
    backfill: { devices: 1, dashboards: config.backfill.dashboards, rateHz: config.backfill.liveHz },
  }[scenario];
  const ids = Array.from({ length: shape.devices }, (_, i) => `bench-${runTag}-${scenario}-${i}`);
  const tokens = run.target.kind === "hub" ? await provision(run, ids) : [];
  const devices: DeviceSpec[] = ids.map((id, index) => ({ index, id, ip: ip(1, index), ...(tokens[index] ? { token: tokens[index] } : {}) }));
  const dashboards: DashboardSpec[] = [];
  for (let k = 0; k < shape.dashboards; k++) for (const d of devices) dashboards.push({ device: d.index, id: d.id, ip: ip(2, dashboards.length) });

  const maxSeconds = scenario === "fleet" ? config.fleet.seconds + 10 : scenario === "storm" ? (config.storm.warmMs + config.storm.afterMs) / 1000 + 10 : 130;
  const slots = 2 + (scenario === "burst" ? config.burst.readings : scenario === "backfill" ? config.backfill.readings : 0) + Math.ceil(shape.rateHz * maxSeconds * 1.5);
  const shared = {
    sendAt: new SharedArrayBuffer(8 * slots * shape.devices),
    slots,
    dropAt: new SharedArrayBuffer(8),
    dropSeq: new SharedArrayBuffer(4 * shape.devices),
  };
  const n = Math.max(1, Math.min(config.clients, dashboards.length + devices.length));
  const plans: Plan[] = Array.from({ length: n }, () => ({
    scenario,
    target: run.target,
    devices: [],
    dashboards: [],
    rateHz: shape.rateHz,
    burst: { readings: config.burst.readings, batch: config.burst.batch, window: config.burst.window },
    backlog: { readings: config.backfill.readings, batch: config.backfill.batch },
    shared,
  }));
  // Devices and dashboards round-robin over the workers, so one device's dashboards are spread too.
  devices.forEach((d, i) => plans[i % n]!.devices.push(d));
  dashboards.forEach((d, i) => plans[(i + 1) % n]!.dashboards.push(d));

  const workers = plans.map((plan) => new Worker(join(ROOT, "bench/dist/load.mjs"), { workerData: plan }));
  const inbox = workers.map(() => [] as FromWorker[]);
  const wake = new Set<() => void>();
  workers.forEach((w, i) => {
    w.on("message", (m: FromWorker) => {
      inbox[i]!.push(m);
      for (const f of wake) f();
    });
    w.on("error", (err) => {
      inbox[i]!.push({ type: "failed", error: String(err) });
      for (const f of wake) f();
    });
  });
  const all = (type: FromWorker["type"], timeoutMs: number) =>
    new Promise<boolean>((resolve, reject) => {
      const check = () => {
        const failed = inbox.flat().find((m) => m.type === "failed");
        if (failed && failed.type === "failed") return done(() => reject(new Error(failed.error)));
        if (inbox.every((msgs) => msgs.some((m) => m.type === type))) done(() => resolve(true));
      };
      const timer = setTimeout(() => done(() => resolve(false)), timeoutMs);
      const done = (f: () => void) => {
        clearTimeout(timer);
        wake.delete(check);
        f();
      };
      wake.add(check);
      check();
    });
  const post = (msg: ToWorker) => workers.forEach((w) => w.postMessage(msg));

  try {
    if (!(await all("ready", 120_000))) throw new Error("clients did not connect within 120 s");
    const goAt = now() + 300;
    if (scenario !== "storm") await profiler?.start();
    post({ type: "go", at: goAt });
    switch (scenario) {
      case "fleet":
        await sleep(300 + config.fleet.seconds * 1000);
        post({ type: "stop" });
        await sleep(config.graceMs);
        break;
      case "storm":
        await sleep(300 + config.storm.warmMs);
        await profiler?.start();
        new Float64Array(shared.dropAt)[0] = now();
        post({ type: "drop" });
        await sleep(config.storm.afterMs);
        post({ type: "stop" });
        await sleep(config.graceMs);
        break;
      case "burst":
      case "backfill":
        await all("complete", 120_000);
        post({ type: "stop" });
        await sleep(500);
        break;
    }
    post({ type: "finish" });
    if (!(await all("result", 30_000))) throw new Error("clients did not report within 30 s");
    const results = inbox.map((msgs) => msgs.find((m): m is WorkerResult => m.type === "result")!);
    const sent: Record<number, number> = Object.assign({}, ...results.map((r) => r.sent));
    const expected = dashboards.reduce((s, d) => s + (sent[d.device] ?? 0), 0);
    const delivered = results.reduce((s, r) => s + r.delivered, 0);
    const last = Math.max(...results.map((r) => r.lastDeliveryAt));
    const outcome: Outcome = {
      scenario,
      target: run.name,
      expected,
      delivered,
      loss: expected - delivered,
      duplicates: results.reduce((s, r) => s + r.duplicates, 0),
      outOfOrder: results.reduce((s, r) => s + r.outOfOrder, 0),
      latencyMs: latency(results.map((r) => r.latency)),
      throughput: last > goAt ? delivered / ((last - goAt) / 1000) : 0,
      errors: results.reduce((s, r) => s + r.errors, 0),
      firstErrors: results.flatMap((r) => r.firstErrors).slice(0, 5),
    };
    if (scenario === "storm") {
      const times: number[] = [];
      for (const d of devices) {
        const seen = results.map((r) => r.recovered[d.index]).filter((v): v is number => v !== undefined);
        if (seen.length) times.push(Math.min(...seen));
      }
      times.sort((a, b) => a - b);
      outcome.recoveryMs = {
        all: times.length === devices.length ? times.at(-1)! : Number.NaN,
        p50: percentile(times, 50),
        recovered: times.length,
        devices: devices.length,
      };
      if (run.target.kind === "hub") {
        outcome.recoveryMs.phases = {};
        for (const step of ["ticket", "open", "hello"] as const) {
          const t = results.flatMap((r) => r.phases[step]).sort((a, b) => a - b);
          outcome.recoveryMs.phases[step] = { p50: percentile(t, 50), max: t.at(-1) ?? Number.NaN };
        }
      }
    }
    if (scenario === "backfill") {
      const drained = results.flatMap((r) => r.drained);
      outcome.drainMs = drained.every((t) => t > 0) ? Math.max(...drained) : Number.NaN;
    }
    return outcome;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

// ---------------------------------------------------------------------------
// The agent's own cost at 1 Hz
// ---------------------------------------------------------------------------

export type AgentCost = { seconds: number; rssMb: number; maxRssMb: number; cpuPercent: number; node: string; how: string };

function procStat(pid: number): { rssKb: number; ticks: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { rssKb, ticks: Number(fields[11]) + Number(fields[12]) };
}

async function agentCost(hub: Running): Promise<AgentCost> {
  const dir = mkdtempSync(join(tmpdir(), "bench-agent-"));
  try {
    // The bundle and the flags the systemd unit runs on the Pi.
    const built = spawnSync(process.execPath, [join(ROOT, "scripts/build-device.mjs")], { env: { ...process.env, OUT_DIR: dir }, encoding: "utf8" });
    if (built.status !== 0) throw new Error(`device:build failed: ${built.stderr}`);
    const [token] = await provision(hub, [`bench-${runTag}-agent`]);
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("IOT_")));
    const how = "node --max-semi-space-size=1 iot-agent.mjs --simulate --no-led (as device/iot-agent.service)";
    const agent = new Proc(
      "agent",
      process.execPath,
      ["--max-semi-space-size=1", "--disable-warning=ExperimentalWarning", join(dir, "iot-agent.mjs"), "--simulate", "--no-led", "--endpoint", (hub.target as { base: string }).base, "--state-dir", join(dir, "state"), "--quiet"],
      { env: { ...env, IOT_TOKEN: token! } },
    );
    try {
      await agent.waitForLine("IoT Connected to the Endpoint.", 0, 30_000);
      await sleep(quick ? 500 : 3_000); // past start-up (module loading, the first GC)
      const start = procStat(agent.child.pid!);
      const t0 = now();
      let maxRss = start.rssKb;
      for (let s = 0; s < config.agentSeconds; s++) {
        await sleep(1_000);
        maxRss = Math.max(maxRss, procStat(agent.child.pid!).rssKb);
      }
      const end = procStat(agent.child.pid!);
      const seconds = (now() - t0) / 1000;
      const hz = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
      return {
        seconds: Math.round(seconds),
        rssMb: end.rssKb / 1024,
        maxRssMb: maxRss / 1024,
        cpuPercent: ((end.ticks - start.ticks) / hz / seconds) * 100,
        node: process.version,
        how,
      };
    } finally {
      await agent.stop(5_000);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

const ms = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? "—" : v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`);
const rate = (v: number) => (v >= 10_000 ? `${(v / 1000).toFixed(1)}k/s` : `${v.toFixed(0)}/s`);

/** The one figure each scenario is judged by, and whether higher is better. */
const headline: Record<Scenario, { label: string; value: (o: Outcome) => number; higher: boolean; show: (v: number) => string }> = {
  fleet: { label: "p99 latency", value: (o) => o.latencyMs.p99, higher: false, show: ms },
  burst: { label: "readings/s delivered", value: (o) => o.throughput, higher: true, show: rate },
  storm: { label: "all devices streaming again", value: (o) => o.recoveryMs?.all ?? Number.NaN, higher: false, show: ms },
  backfill: { label: "backlog drained", value: (o) => o.drainMs ?? Number.NaN, higher: false, show: ms },
};

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r, i) => {
    const line = r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ");
    return i === 0 ? `${line}\n${widths.map((w) => "-".repeat(w)).join("  ")}` : line;
  }).join("\n");
}

function report(outcomes: Outcome[]): { detail: string; ratios: string; ratioData: Record<string, Record<string, number>> } {
  const detail = table([
    ["scenario", "target", "delivered/expected", "loss", "dup", "p50", "p99", "max", "throughput", "scenario figure"],
    ...outcomes.map((o) => [
      o.scenario,
      o.target,
      `${o.delivered}/${o.expected}`,
      String(o.loss),
      String(o.duplicates),
      ms(o.latencyMs.p50),
      ms(o.latencyMs.p99),
      ms(o.latencyMs.max),
      rate(o.throughput),
      o.failed
        ? `failed: ${o.failed.slice(0, 60)}`
        : o.recoveryMs
        ? `all back ${ms(o.recoveryMs.all)} (p50 ${ms(o.recoveryMs.p50)}, ${o.recoveryMs.recovered}/${o.recoveryMs.devices})`
        : o.drainMs !== undefined
          ? `drained ${ms(o.drainMs)}`
          : "",
    ]),
  ]);
  const hubs = targetNames.filter((t) => t.startsWith("hub"));
  const peers = targetNames.filter((t) => !t.startsWith("hub"));
  const ratioData: Record<string, Record<string, number>> = {};
  const rows = [["scenario", "judged by", "target", "figure", ...peers.map((p) => `vs ${p}`)]];
  for (const s of scenarios) {
    const h = headline[s];
    for (const hubName of hubs) {
      const hub = outcomes.find((o) => o.scenario === s && o.target === hubName);
      if (!hub) continue;
      const key = hubName === "hub" ? s : `${s} (${hubName})`;
      ratioData[key] = {};
      const hv = h.value(hub);
      rows.push([
        s,
        `${h.label} (${h.higher ? "higher" : "lower"} is better)`,
        hubName,
        h.show(hv),
        ...peers.map((p) => {
          const o = outcomes.find((x) => x.scenario === s && x.target === p);
          if (!o) return "—";
          const pv = h.value(o);
          const ratio = h.higher ? hv / pv : pv / hv;
          ratioData[key]![p] = ratio;
          return Number.isFinite(ratio) ? `${ratio.toFixed(2)}× ${ratio >= 1 ? "ahead" : "behind"} (${h.show(pv)})` : "—";
        }),
      ]);
    }
  }
  return { detail, ratios: table(rows), ratioData };
}

function machine() {
  const version = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    return `${r.stdout}${r.stderr}`.split("\n")[0]!.trim();
  };
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    mosquitto: existsSync("/usr/sbin/mosquitto") ? version("/usr/sbin/mosquitto", ["-h"]) : "not installed",
    wrangler: JSON.parse(readFileSync(join(ROOT, "node_modules/wrangler/package.json"), "utf8")).version as string,
  };
}

// ---------------------------------------------------------------------------

const started = Date.now();
const info = machine();
console.log(`bench: ${quick ? "quick" : "full"} run on ${info.cores} × ${info.cpu}, Node ${info.node}, wrangler ${info.wrangler}, ${info.mosquitto}`);
const running: Running[] = [];
const outcomes: Outcome[] = [];
const profiles: Partial<Record<Scenario, string>> = {};
let agent: AgentCost | undefined;
const stopAll = async () => {
  for (const r of running.splice(0)) await r.stop().catch(() => {});
};
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => void stopAll().then(() => process.exit(130)));
try {
  for (const name of targetNames) {
    process.stdout.write(`bench: starting ${name} … `);
    const t = now();
    try {
      running.push(await startTarget(name));
      console.log(`${((now() - t) / 1000).toFixed(1)} s`);
    } catch (err) {
      // A peer that cannot start here (no Mosquitto and no root to install it) leaves a gap
      // in the table, not the whole run; the hub has to start.
      if (name.startsWith("hub")) throw err;
      console.log(`skipped: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
    }
  }
  for (const scenario of scenarios) {
    for (const run of running) {
      process.stdout.write(`bench: ${scenario} on ${run.name} … `);
      const t = now();
      const profiler = run.inspectorPort ? await Profiler.attach(run.inspectorPort) : undefined;
      let o: Outcome;
      try {
        o = await runScenario(scenario, run, profiler);
      } catch (err) {
        // One scenario that cannot finish on one target is reported as such; the run goes on.
        o = failedOutcome(scenario, run.name, err instanceof Error ? err.message : String(err));
      }
      if (profiler) {
        mkdirSync(opts.profile!, { recursive: true });
        profiles[scenario] = await profiler.stop(join(opts.profile!, `${scenario}.cpuprofile`));
        profiler.close();
      }
      outcomes.push(o);
      if (o.recoveryMs?.phases) {
        const p = o.recoveryMs.phases;
        console.log(`\n  reconnect steps after the drop (p50 / max): ticket ${ms(p.ticket!.p50)} / ${ms(p.ticket!.max)}, socket open ${ms(p.open!.p50)} / ${ms(p.open!.max)}, hello acked ${ms(p.hello!.p50)} / ${ms(p.hello!.max)}`);
      }
      console.log(
        `${((now() - t) / 1000).toFixed(1)} s: ${o.delivered}/${o.expected} delivered, p99 ${ms(o.latencyMs.p99)}, ${rate(o.throughput)}` +
          (o.errors ? `, ${o.errors} errors (${o.firstErrors.join("; ")})` : ""),
      );
    }
  }
  const hub = running.find((r) => r.name === "hub") ?? running.find((r) => r.name === "hub-direct");
  if (hub && !opts["no-agent"]) {
    process.stdout.write(`bench: the agent at 1 Hz for ${config.agentSeconds} s … `);
    agent = await agentCost(hub);
    console.log("done");
  }
} finally {
  await stopAll();
}

const { detail, ratios, ratioData } = report(outcomes);
console.log(`\n${detail}\n\n${ratios}`);
if (agent) {
  console.log(
    `\nagent at 1 Hz (${agent.how}, ${agent.node}, x86-64 here, not a Pi): RSS ${agent.rssMb.toFixed(1)} MB (max ${agent.maxRssMb.toFixed(1)} MB), CPU ${agent.cpuPercent.toFixed(2)}% of one core over ${agent.seconds} s`,
  );
}
for (const [scenario, summary] of Object.entries(profiles)) console.log(`\nhub profile, ${scenario} (self time, Worker isolate):\n${summary}`);
const out = opts.out ?? join(ROOT, "bench/results", `bench-${new Date(started).toISOString().replace(/[:.]/g, "-")}.json`);
mkdirSync(join(out, ".."), { recursive: true });
writeFileSync(out, `${JSON.stringify({ started: new Date(started).toISOString(), quick, machine: info, config, outcomes, ratios: ratioData, agent }, null, 2)}\n`);
console.log(`\nbench: ${((Date.now() - started) / 1000).toFixed(0)} s in all; JSON in ${out}`);
process.exit(0);
