/**
 * `npm run bench`: the hub against the peers a user would pick instead, same
 * load, same clients, same run.
 *
 *   hub           the endpoint as `npm start` and the container run it (Miniflare directly, workerd)
 *   hub-dev       the same under wrangler dev (`npm run dev`: its proxy Worker in front)
 *   mosquitto     Mosquitto from Debian's packages, MQTT over TCP
 *   mosquitto-ws  the same broker, MQTT over WebSockets
 *   ws-relay      a minimal Node `ws` relay (bench/relay.ts)
 *
 * Scenarios: fleet, burst, reconnect storm, backfill, unwatched (hub only),
 * and with --scale a thousand watched devices and an endpoint restart (see
 * --help), then the agent's own cost at 1 Hz; `--scenarios outbox` (not in the default
 * run: ≥ 10 min) measures the agent's disk writes per reading (bench/lib/outbox.ts). On the hub every scenario also
 * reads the rooms' own counters (rows written, commits, billed requests) and
 * turns them into $ per device-month. Prints the tables and the issue's goals,
 * met or not, and writes the same as JSON to bench/results/. Nothing here is a
 * test: no number fails anything. docs/performance.md explains the figures.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { startEndpoint, type Endpoint } from "../test/support/endpoint";
import { freePort, nodeProc, Proc, ROOT, sleep, waitFor } from "../test/support/processes";
import { dollars, PRICES } from "./lib/cost";
import { readStats, selfCalls, sumCounters, type Counters, type Snapshot } from "./lib/counters";
import { FsyncCounter, workerdPids, type FsyncCount } from "./lib/fsync";
import { outboxTable, outboxWrites, type OutboxResult } from "./lib/outbox";
import { Profiler } from "./lib/cpuprofile";
import { costCases, goals, judgedHub, type CostCase, type Goal } from "./lib/judge";
import { latency, percentile, type Latency } from "./lib/stats";
import type { DashboardSpec, DeviceAuth, DeviceSpec, FromWorker, Plan, Scenario, Target, ToWorker, WorkerResult } from "./load";

const HELP = `npm run bench [-- options]

  --quick                 a smaller run that finishes in about a minute (targets: hub, mosquitto, mosquitto-ws)
  --scenarios LIST        fleet,burst,storm,backfill,unwatched,scale,outbox (default: all but scale and outbox)
                          outbox: the agent's disk writes per reading (/proc/PID/io), memory first and
                          strict, watched, unwatched and offline, 1 Hz for --outbox-seconds; hub only
  --outbox-seconds S      outbox: the measured window (default 600)
  --outbox-spill-ms MS    outbox: --spill-ms of the memory-first agents (default: theirs, 30000)
  --outbox-spill-unwatched-ms MS
                          outbox: --spill-unwatched-ms of the memory-first agents (default: theirs, 150000)
  --scale                 the scale run alone: 1,000 devices x 1 Hz x 1 dashboard, then an endpoint
                          restart (targets: hub, mosquitto, mosquitto-ws unless --targets)
  --targets LIST          hub,hub-dev,mosquitto,mosquitto-ws,ws-relay (default: all)
  --clients N             load-generating worker threads (default 2)
  --devices N             devices of fleet, storm, unwatched and scale (default 100, 100, 100, 1000; quick 30, 30, 10)
  --dashboards N          fleet dashboards per device (default 5; quick 3)
  --rate HZ               fleet and storm readings a second per device (default 2)
  --seconds S             fleet duration (default 20; quick 2)
  --burst N               burst readings, 1 device -> 10 dashboards (default 20000; quick 5000)
  --batch N               readings per burst frame, every target alike (default 100)
  --window N              burst frames in flight (hub: unacked, MQTT: unwritten; default 8)
  --unwatched-ms MS       unwatched: the rooms' batching interval, set with PUT /api/devices/:id/batching
                          (default 5000; quick 2000)
  --unwatched-seconds S   unwatched: how long the devices stream (default 30; quick 4)
  --scale-seconds S       scale: the steady phase before the restart (default 15)
  --qos 0|1               MQTT QoS for Mosquitto (default 0)
  --hub-var NAME:VALUE    a Worker var for the hub, as wrangler dev --var (repeatable)
  --strace                count the hub's fsync/fdatasync in every scenario (strace slows workerd;
                          without it they are counted only in unwatched, where no latency is measured)
  --billed-ms MS          cost model: billed wall clock per event a room handles (default 10)
  --no-agent              skip measuring the agent's own cost
  --out FILE              where the JSON goes (default bench/results/bench-<time>.json)
  --profile DIR           CPU-profile hub-dev's Worker isolate during each scenario (DevTools
                          inspector): DIR/<scenario>.cpuprofile and the top functions printed
  --help                  this`;

const OPTIONS = {
  quick: { type: "boolean", default: false },
  scale: { type: "boolean", default: false },
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
  "unwatched-ms": { type: "string" },
  "unwatched-seconds": { type: "string" },
  "scale-seconds": { type: "string" },
  "outbox-seconds": { type: "string" },
  "outbox-spill-ms": { type: "string" },
  "outbox-spill-unwatched-ms": { type: "string" },
  qos: { type: "string" },
  "hub-var": { type: "string", multiple: true },
  strace: { type: "boolean", default: false },
  "billed-ms": { type: "string" },
  "no-agent": { type: "boolean", default: false },
  out: { type: "string" },
  profile: { type: "string" },
  help: { type: "boolean", default: false },
} as const;

const ALL_SCENARIOS: Scenario[] = ["fleet", "burst", "storm", "backfill", "unwatched", "scale"];
const ALL_TARGETS = ["hub", "hub-dev", "mosquitto", "mosquitto-ws", "ws-relay"] as const;
type TargetName = (typeof ALL_TARGETS)[number];

function num(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${value}`);
  return n;
}

function pick<T extends string>(list: string | undefined, all: readonly T[], name: string): T[] {
  if (!list) return [...all];
  const chosen = list.split(",").map((s) => s.trim());
  for (const c of chosen) if (!all.includes(c as T)) throw new Error(`--${name}: unknown ${c} (one of ${all.join(", ")})`);
  return chosen as T[];
}

/** A Worker var the rooms run with (ms): a --hub-var, else wrangler.toml's [vars], else `fallback`. */
function hubSetting(name: string, fallback: number, fallbackFrom: string, hubVars: string[]): { ms: number; from: string } {
  const v = hubVars.find((x) => x.startsWith(`${name}:`));
  if (v) return { ms: num(v.slice(name.length + 1), fallback, `hub-var ${name}`), from: `--hub-var ${name}` };
  const m = new RegExp(`^\\s*${name}\\s*=\\s*"?(\\d+)"?`, "m").exec(readFileSync(join(ROOT, "wrangler.toml"), "utf8"));
  return m ? { ms: Number(m[1]), from: `wrangler.toml ${name}` } : { ms: fallback, from: fallbackFrom };
}

/** Options, checked once: a bad one ends the run with one line and the usage, not a stack trace. */
function options() {
  const { values: opts } = parseArgs({ options: OPTIONS });
  const quick = opts.quick;
  const devices = (fallback: number) => num(opts.devices, fallback, "devices");
  const config = {
    clients: num(opts.clients, 2, "clients"),
    fleet: {
      devices: devices(quick ? 30 : 100),
      dashboards: num(opts.dashboards, quick ? 3 : 5, "dashboards"),
      rateHz: num(opts.rate, 2, "rate"),
      seconds: num(opts.seconds, quick ? 2 : 20, "seconds"),
    },
    burst: { readings: num(opts.burst, quick ? 5_000 : 20_000, "burst"), batch: num(opts.batch, 100, "batch"), window: num(opts.window, 8, "window"), dashboards: 10 },
    storm: { devices: devices(quick ? 30 : 100), rateHz: num(opts.rate, 2, "rate"), warmMs: quick ? 1_000 : 3_000, afterMs: quick ? 1_500 : 10_000 },
    backfill: { readings: 3_600, batch: 500, dashboards: quick ? 3 : 5, liveHz: 1 },
    /** Nobody watches: the rooms tell the devices to batch, every `unwatchedMs`. */
    unwatched: { devices: devices(quick ? 10 : 100), rateHz: 1, seconds: num(opts["unwatched-seconds"], quick ? 4 : 30, "unwatched-seconds"), unwatchedMs: num(opts["unwatched-ms"], quick ? 2_000 : 5_000, "unwatched-ms") },
    /** A thousand watched devices, then the endpoint killed and started again on the same state. */
    scale: { devices: devices(1_000), rateHz: 1, steadySeconds: num(opts["scale-seconds"], 15, "scale-seconds"), markBeforeKillMs: 1_000, recoverTimeoutMs: 60_000, afterMs: 3_000 },
    agentSeconds: quick ? 2 : 30,
    outboxSeconds: num(opts["outbox-seconds"], 600, "outbox-seconds"),
    outboxSpillMs: opts["outbox-spill-ms"] === undefined ? undefined : num(opts["outbox-spill-ms"], 30_000, "outbox-spill-ms"),
    outboxSpillUnwatchedMs:
      opts["outbox-spill-unwatched-ms"] === undefined ? undefined : num(opts["outbox-spill-unwatched-ms"], 150_000, "outbox-spill-unwatched-ms"),
    /** After the last send, how long late readings may still arrive before they count as lost. */
    graceMs: quick ? 800 : 3_000,
    qos: opts.qos === "1" ? (1 as const) : (0 as const),
    /** The cost model's duration assumption: ms of billed wall clock per event a room handles. */
    billedMsPerEvent: num(opts["billed-ms"], 10, "billed-ms"),
    /** The rooms' default unwatched interval: the unwatched cost is also projected to it. */
    plannedUnwatched: hubSetting("UNWATCHED_BATCH_MS", 60_000, "issue 10's planned default", opts["hub-var"] ?? []),
    /** Heartbeats the cost model charges: the agent's every HEARTBEAT_MS, a dashboard's every 10 s (dashboard/src/socket.ts). */
    pings: { device: 1000 / hubSetting("HEARTBEAT_MS", 5_000, "the agent's default", opts["hub-var"] ?? []).ms, dashboard: 1 / 10 },
  };
  if (opts.qos !== undefined && opts.qos !== "0" && opts.qos !== "1") throw new Error(`--qos must be 0 or 1, got ${opts.qos}`);
  const defaultScenarios = opts.scale ? (["scale"] as Scenario[]) : ALL_SCENARIOS.filter((s) => s !== "scale");
  // outbox is the agent's own step (10+ minutes), never in the default run.
  const listed = opts.scenarios?.split(",").map((s) => s.trim());
  const outboxRun = listed?.includes("outbox") ?? false;
  const others = listed?.filter((s) => s !== "outbox");
  const scenarios = others ? (others.length ? pick(others.join(","), ALL_SCENARIOS, "scenarios") : []) : defaultScenarios;
  // --quick keeps the hub and the peers the goals name, to stay near a minute; --targets has the rest.
  const defaultTargets =
    scenarios.length === 0 ? (["hub"] as TargetName[]) : scenarios.every((s) => s === "scale") || quick ? (["hub", "mosquitto", "mosquitto-ws"] as TargetName[]) : [...ALL_TARGETS];
  const targetNames = opts.targets ? pick(opts.targets, ALL_TARGETS, "targets") : defaultTargets;
  for (const v of opts["hub-var"] ?? []) if (v.indexOf(":") < 1) throw new Error(`--hub-var NAME:VALUE, got ${v}`);
  return { opts, quick, config, scenarios, targetNames, outboxRun };
}

let parsed: ReturnType<typeof options>;
try {
  parsed = options();
} catch (err) {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}\n\n${HELP}`);
  process.exit(2);
}
const { opts, quick, config, scenarios, targetNames, outboxRun } = parsed;
if (opts.help) {
  console.log(HELP);
  process.exit(0);
}

/** Which targets run a scenario: unwatched is the hub's own (the peers store nothing); scale runs the hub and Mosquitto. */
function runsOn(scenario: Scenario, name: TargetName): boolean {
  if (scenario === "unwatched") return name.startsWith("hub");
  if (scenario === "scale") return name !== "ws-relay";
  return true;
}

const now = () => performance.timeOrigin + performance.now();
const runTag = Date.now().toString(36);

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

type Running = {
  name: TargetName;
  target: Target;
  stop(): Promise<void>;
  hub?: Endpoint;
  inspectorPort?: number;
  /** scale: kill the server (no goodbye to anyone) and start it again on the same ports and state. */
  restart?(): Promise<{ killedAt: number; upAt: number }>;
};

/** The endpoint as `npm start` runs it (Miniflare directly), or `dev`: under wrangler dev, as `npm run dev`. */
async function startHub(dev = false): Promise<Running> {
  const vars: Record<string, string> = {
    // Every simulated client gets an address of its own (X-Real-IP, trusted as behind our nginx),
    // as a fleet's devices and dashboards have: the per-address REST limit is for one client, not all.
    TRUST_PROXY: "true",
  };
  for (const v of opts["hub-var"] ?? []) {
    const at = v.indexOf(":");
    vars[v.slice(0, at)] = v.slice(at + 1);
  }
  const inspectorPort = opts.profile && dev ? await freePort() : undefined;
  const hub = await startEndpoint({ vars, direct: !dev, args: inspectorPort ? ["--inspector-port", String(inspectorPort)] : [] });
  return {
    name: dev ? "hub-dev" : "hub",
    hub,
    inspectorPort,
    target: { kind: "hub", base: hub.url, adminToken: hub.adminToken },
    stop: () => hub.close(),
    restart: async () => {
      const killedAt = now();
      // SIGKILL to the whole group (node and its workerd): a crash or a power cut, nothing flushed.
      hub.proc!.signal("SIGKILL");
      await hub.proc!.exited;
      hub.proc!.killGroup();
      // Start only once nothing answers on the port any more (the old workerd is gone).
      await waitFor("the old endpoint to go", () => fetch(`${hub.url}/api/session`, { signal: AbortSignal.timeout(500) }).then(() => false, () => true), 10_000, 20);
      await hub.start();
      return { killedAt, upAt: now() };
    },
  };
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

/** One broker for both MQTT targets; `restart` kills it and starts it again on the same ports. */
type Broker = { proc: Proc; tcp: number; ws: number; dir: string; restart(): Promise<{ killedAt: number; upAt: number }> };
let mosquittoShared: Promise<Broker> | undefined;
function startMosquitto(): Promise<Broker> {
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
    const launch = async () => {
      const proc = new Proc("mosquitto", bin, ["-c", conf]);
      await waitFor("mosquitto", async () => {
        if (!proc.running) throw new Error(`mosquitto exited: ${proc.tail()}`);
        const { default: mqtt } = await import("mqtt");
        const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${tcp}`, { reconnectPeriod: 0, connectTimeout: 1_000 });
        await c.endAsync();
        return true;
      }, 30_000, 20);
      return proc;
    };
    const broker: Broker = {
      proc: await launch(),
      tcp,
      ws,
      dir,
      restart: async () => {
        const killedAt = now();
        broker.proc.signal("SIGKILL");
        await broker.proc.exited;
        broker.proc = await launch();
        return { killedAt, upAt: now() };
      },
    };
    return broker;
  })();
  return mosquittoShared;
}

async function startTarget(name: TargetName): Promise<Running> {
  switch (name) {
    case "hub":
      return startHub();
    case "hub-dev":
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
        restart: () => m.restart(),
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
  /** scale: of the steady phase before the restart. */
  expected: number;
  delivered: number;
  loss: number;
  duplicates: number;
  outOfOrder: number;
  latencyMs: Latency;
  /** Readings delivered to dashboards per second, first send to last delivery. */
  throughput: number;
  /** storm and scale: ms from the drop (the kill) until every device streams again (NaN if some never did), and the median device. */
  recoveryMs?: { all: number; p50: number; recovered: number; devices: number; phases?: Record<string, { p50: number; max: number }> };
  /** scale: the restart itself, ms from the kill until the server answered again, and the clients' failed attempts by reason. */
  restart?: { downMs: number; allBackAfterUpMs: number; failedAttempts: Record<string, number> };
  /** backfill: ms until every dashboard held the whole backlog. */
  drainMs?: number;
  /** hub: the rooms' own counters over the scenario (scale: its steady phase), or why there are none. */
  counters?: Counters | { unavailable: string };
  /** scale on the hub: the counters over the whole run, the restart and the reconnects included. */
  countersWithRestart?: Counters | { unavailable: string };
  /** hub: fsync + fdatasync of workerd over the scenario (the scale run: its steady phase). */
  fsync?: FsyncCount;
  /** unwatched and scale on the hub: every reading made is stored (acked, and the room's ackedSeq agrees). */
  stored?: { readings: number; unacked: number; behindInRoom: number | string };
  /** unwatched: the interval asked for with PUT …/batching, and what came of it. */
  batching?: { unwatchedMs: number; note?: string; frames: number };
  /** hub: how the device sockets were opened. */
  deviceAuth?: DeviceAuth;
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

/** `count` requests at a time, each with its index. */
async function inBatches<T, R>(items: T[], count: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += count) out.push(...(await Promise.all(items.slice(i, i + count).map((item, j) => fn(item, i + j)))));
  return out;
}

async function provision(run: Running, ids: string[]): Promise<string[]> {
  const hub = run.target as Extract<Target, { kind: "hub" }>;
  return inBatches(ids, 10, async (id, i) => {
    const res = await fetch(`${hub.base}/api/devices`, {
      method: "POST",
      headers: { authorization: `Bearer ${hub.adminToken}`, "content-type": "application/json", "x-real-ip": ip(250, i) },
      body: JSON.stringify({ id }),
    });
    if (res.status !== 201) throw new Error(`provision ${id}: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { token: string }).token;
  });
}

/** unwatched: each room's batching interval (PUT /api/devices/:id/batching); a note instead when the route is missing. */
async function setBatching(run: Running, ids: string[], unwatchedMs: number): Promise<string | undefined> {
  const hub = run.target as Extract<Target, { kind: "hub" }>;
  const put = async (id: string, i: number) => {
    const res = await fetch(`${hub.base}/api/devices/${encodeURIComponent(id)}/batching`, {
      method: "PUT",
      headers: { authorization: `Bearer ${hub.adminToken}`, "content-type": "application/json", "x-real-ip": ip(249, i) },
      body: JSON.stringify({ unwatchedMs }),
    });
    if (!res.ok) throw new Error(`PUT /api/devices/:id/batching answered ${res.status} ${(await res.text()).slice(0, 100)}`);
  };
  try {
    await put(ids[0]!, 0);
  } catch (err) {
    return `${err instanceof Error ? err.message : String(err)}: the rooms batch at their default, if at all`;
  }
  await inBatches(ids.slice(1), 20, (id, i) => put(id, i + 1));
  return undefined;
}

/** The room's own view: readings made but not in its ackedSeq (GET /api/devices/:id), summed; or why it cannot say. */
async function behindInRoom(run: Running, ids: string[], made: number[]): Promise<number | string> {
  const hub = run.target as Extract<Target, { kind: "hub" }>;
  try {
    const behind = await inBatches(ids, 20, async (id, i) => {
      const res = await fetch(`${hub.base}/api/devices/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${hub.adminToken}`, "x-real-ip": ip(248, i) } });
      if (!res.ok) throw new Error(`GET /api/devices/:id answered ${res.status}`);
      const state = (await res.json()) as { ackedSeq: number };
      return Math.max(0, made[i]! - state.ackedSeq);
    });
    return behind.reduce((a, b) => a + b, 0);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * The rooms' counters around a scenario: read before the load and after it (and before a kill).
 * Unavailable (an endpoint without the stats route) once is unavailable for the rest of the scenario.
 */
class RoomCounters {
  readonly #snapshots: Snapshot[] = [];
  #unavailable: string | undefined;
  #perRead = 0;
  readonly #hub: Extract<Target, { kind: "hub" }>;
  readonly #ids: string[];

  constructor(run: Running, ids: string[]) {
    this.#hub = run.target as Extract<Target, { kind: "hub" }>;
    this.#ids = ids;
  }

  async read(first = false): Promise<void> {
    if (this.#unavailable) return;
    try {
      if (first) this.#perRead = await selfCalls(this.#hub.base, this.#hub.adminToken, this.#ids[0]!, (i) => ip(247, i));
      this.#snapshots.push(await readStats(this.#hub.base, this.#hub.adminToken, this.#ids, (i) => ip(247, i)));
    } catch (err) {
      this.#unavailable = `n/a: ${err instanceof Error ? err.message : String(err)}`;
    }
  }

  /** Summed from snapshot `from` to snapshot `to` (default: all of them). */
  result(from = 0, to = this.#snapshots.length - 1): Counters | { unavailable: string } {
    if (this.#unavailable) return { unavailable: this.#unavailable };
    if (to <= from || to >= this.#snapshots.length) return { unavailable: "n/a: the scenario ended before the counters were read twice" };
    return sumCounters(this.#snapshots.slice(from, to + 1), this.#perRead);
  }
}

/** With a profiler: profiled from the start of the load (the storm: from the drop) to its end. */
async function runScenario(scenario: Scenario, run: Running, profiler?: Profiler): Promise<Outcome> {
  const shape = {
    fleet: { devices: config.fleet.devices, dashboards: config.fleet.dashboards, rateHz: config.fleet.rateHz },
    burst: { devices: 1, dashboards: config.burst.dashboards, rateHz: 1 },
    storm: { devices: config.storm.devices, dashboards: 1, rateHz: config.storm.rateHz },
    backfill: { devices: 1, dashboards: config.backfill.dashboards, rateHz: config.backfill.liveHz },
    unwatched: { devices: config.unwatched.devices, dashboards: 0, rateHz: config.unwatched.rateHz },
    scale: { devices: config.scale.devices, dashboards: 1, rateHz: config.scale.rateHz },
  }[scenario];
  const isHub = run.target.kind === "hub";
  const ids = Array.from({ length: shape.devices }, (_, i) => `bench-${runTag}-${scenario}-${i}`);
  const tokens = isHub ? await provision(run, ids) : [];
  const batchingNote = isHub && scenario === "unwatched" ? await setBatching(run, ids, config.unwatched.unwatchedMs) : undefined;
  const devices: DeviceSpec[] = ids.map((id, index) => ({ index, id, ip: ip(1, index), ...(tokens[index] ? { token: tokens[index] } : {}) }));
  const dashboards: DashboardSpec[] = [];
  for (let k = 0; k < shape.dashboards; k++) for (const d of devices) dashboards.push({ device: d.index, id: d.id, ip: ip(2, dashboards.length) });

  const maxSeconds = {
    fleet: config.fleet.seconds + 10,
    storm: (config.storm.warmMs + config.storm.afterMs) / 1000 + 10,
    burst: 130,
    backfill: 130,
    unwatched: config.unwatched.seconds + 10,
    scale: config.scale.steadySeconds + (config.scale.markBeforeKillMs + config.scale.recoverTimeoutMs + config.scale.afterMs) / 1000 + 30,
  }[scenario];
  const slots = 2 + (scenario === "burst" ? config.burst.readings : scenario === "backfill" ? config.backfill.readings : 0) + Math.ceil(shape.rateHz * maxSeconds * 1.5);
  const shared = {
    sendAt: new SharedArrayBuffer(8 * slots * shape.devices),
    slots,
    dropAt: new SharedArrayBuffer(16),
    dropSeq: new SharedArrayBuffer(4 * shape.devices),
  };
  const marks = new Float64Array(shared.dropAt);
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
  const inbox: FromWorker[][] = workers.map(() => []);
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
  const counters = isHub ? new RoomCounters(run, ids) : undefined;
  // strace stops workerd at every system call: only where asked, or where no latency is measured.
  const countFsync = isHub && (opts.strace || scenario === "unwatched");
  let fsyncCounter: FsyncCounter | { unavailable: string } | undefined;
  let fsync: FsyncCount | undefined = isHub ? { unavailable: "not measured (--strace counts it here)" } : undefined;
  const stopFsync = async () => {
    if (fsyncCounter) fsync = fsyncCounter instanceof FsyncCounter ? await fsyncCounter.stop() : fsyncCounter;
    fsyncCounter = undefined;
  };
  let flushed: { unacked: number } | undefined;
  const flush = async () => {
    if (!isHub) return;
    post({ type: "flush" });
    if (!(await all("flushed", 30_000))) throw new Error("devices did not report their last frames acked within 30 s");
    flushed = { unacked: inbox.flat().reduce((u, m) => u + (m.type === "flushed" ? m.unacked : 0), 0) };
  };
  let restart: { killedAt: number; upAt: number } | undefined;

  try {
    if (!(await all("ready", 180_000))) throw new Error("clients did not connect within 180 s");
    await counters?.read(true);
    if (countFsync) fsyncCounter = await FsyncCounter.start(workerdPids(run.hub!.proc!.child.pid!));
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
        marks[0] = now();
        post({ type: "drop" });
        await sleep(config.storm.afterMs);
        post({ type: "stop" });
        await sleep(config.graceMs);
        break;
      case "burst":
      case "backfill":
        // A hub that stalls shows as what it delivered by then; --quick does not wait two minutes for it.
        await all("complete", quick ? 30_000 : 120_000);
        post({ type: "stop" });
        await sleep(500);
        break;
      case "unwatched":
        await sleep(300 + config.unwatched.seconds * 1000);
        post({ type: "stop" });
        // Frames in flight are stored; what devices still hold is not yet due and is not counted.
        await sleep(config.graceMs);
        break;
      case "scale": {
        await sleep(300 + config.scale.steadySeconds * 1000);
        // The steady phase ends here (every reading sent before it is judged for delivery and
        // latency); a second later, with the counters read once more, the server is killed.
        marks[1] = now();
        await sleep(config.scale.markBeforeKillMs);
        await counters?.read();
        await stopFsync();
        marks[0] = now();
        post({ type: "restart" });
        restart = await run.restart!();
        await all("recovered", config.scale.recoverTimeoutMs);
        await sleep(config.scale.afterMs);
        post({ type: "stop" });
        await sleep(config.graceMs);
        break;
      }
    }
    await counters?.read();
    await stopFsync();
    // Readings held for the next batching frame go now; the hub acks them all, or says what it did not.
    if (scenario === "unwatched" || scenario === "scale") await flush();
    post({ type: "finish" });
    if (!(await all("result", 30_000))) throw new Error("clients did not report within 30 s");
    const results = inbox.map((msgs) => msgs.find((m): m is WorkerResult => m.type === "result")!);
    const sent: Record<number, number> = Object.assign({}, ...results.map((r) => r.sent));
    const steady = scenario === "scale";
    const expected = steady ? results.reduce((s, r) => s + r.steady.expected, 0) : dashboards.reduce((s, d) => s + (sent[d.device] ?? 0), 0);
    const delivered = results.reduce((s, r) => s + (steady ? r.steady.delivered : r.delivered), 0);
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
      throughput: last > goAt ? results.reduce((s, r) => s + r.delivered, 0) / ((last - goAt) / 1000) : 0,
      errors: results.reduce((s, r) => s + r.errors, 0),
      firstErrors: results.flatMap((r) => r.firstErrors).slice(0, 5),
    };
    if (isHub) {
      // The scale run's cost is its steady phase's; the restart (every device's hello again) is shown apart.
      outcome.counters = scenario === "scale" ? counters!.result(0, 1) : counters!.result();
      if (scenario === "scale") outcome.countersWithRestart = counters!.result();
      outcome.fsync = fsync;
      outcome.deviceAuth = results.map((r) => r.deviceAuth).find((a) => a !== undefined);
    }
    if (scenario === "storm" || scenario === "scale") {
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
      if (scenario === "storm" && isHub) {
        outcome.recoveryMs.phases = {};
        for (const step of ["ticket", "open", "hello"] as const) {
          const t = results.flatMap((r) => r.phases[step]).sort((a, b) => a - b);
          outcome.recoveryMs.phases[step] = { p50: percentile(t, 50), max: t.at(-1) ?? Number.NaN };
        }
      }
      if (scenario === "scale") {
        // How long the clients took to be connected again (their back-off included), apart from the first new reading.
        outcome.recoveryMs.phases = {};
        for (const who of ["device", "dashboard"] as const) {
          const t = results.flatMap((r) => r.back[who]).sort((a, b) => a - b);
          outcome.recoveryMs.phases[`${who}s connected`] = { p50: percentile(t, 50), max: t.at(-1) ?? Number.NaN };
        }
      }
      if (restart) {
        const downMs = restart.upAt - restart.killedAt;
        const failedAttempts: Record<string, number> = {};
        for (const r of results) for (const [why, count] of Object.entries(r.retries)) failedAttempts[why] = (failedAttempts[why] ?? 0) + count;
        outcome.restart = { downMs, allBackAfterUpMs: outcome.recoveryMs.all - (restart.killedAt - marks[0]!) - downMs, failedAttempts };
      }
    }
    if (scenario === "backfill") {
      const drained = results.flatMap((r) => r.drained);
      outcome.drainMs = drained.every((t) => t > 0) ? Math.max(...drained) : Number.NaN;
    }
    if (isHub && (scenario === "unwatched" || scenario === "scale")) {
      const made = devices.map((d) => sent[d.index] ?? 0);
      outcome.stored = { readings: made.reduce((a, b) => a + b, 0), unacked: flushed?.unacked ?? Number.NaN, behindInRoom: await behindInRoom(run, ids, made) };
    }
    if (scenario === "unwatched") {
      outcome.batching = { unwatchedMs: config.unwatched.unwatchedMs, frames: results.reduce((s, r) => s + r.frames, 0), ...(batchingNote ? { note: batchingNote } : {}) };
    }
    return outcome;
  } finally {
    await stopFsync().catch(() => {});
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
  unwatched: { label: "rows written per reading", value: (o) => countersOf(o)?.rowsPerReading ?? Number.NaN, higher: false, show: (v) => fixed(v, 3) },
  scale: { label: "all streaming again, from the kill", value: (o) => o.recoveryMs?.all ?? Number.NaN, higher: false, show: ms },
};

const fixed = (v: number | undefined, digits: number) => (v === undefined || Number.isNaN(v) ? "—" : v.toFixed(digits));
const countersOf = (o: Outcome | undefined): Counters | undefined => (o?.counters && !("unavailable" in o.counters) ? o.counters : undefined);

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
      scenarioFigure(o),
    ]),
  ]);
  const hubs = targetNames.filter((t) => t.startsWith("hub"));
  const peers = targetNames.filter((t) => !t.startsWith("hub"));
  const ratioData: Record<string, Record<string, number>> = {};
  const rows = [["scenario", "judged by", "target", "figure", ...peers.map((p) => `vs ${p}`)]];
  for (const s of scenarios.filter((x) => x !== "unwatched")) {
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
          if (!o || o.failed) return "—";
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

function scenarioFigure(o: Outcome): string {
  if (o.failed) return `failed: ${o.failed.slice(0, 60)}`;
  const stored = o.stored ? `, stored ${o.stored.readings - (Number.isNaN(o.stored.unacked) ? 0 : o.stored.unacked)}/${o.stored.readings}` : "";
  if (o.scenario === "scale" && o.recoveryMs) {
    const r = o.recoveryMs;
    const restart = o.restart ? `${ms(o.restart.allBackAfterUpMs)} after the restart (down ${ms(o.restart.downMs)}), ` : "";
    return `all back ${restart}${ms(r.all)} after the kill (${r.recovered}/${r.devices})${stored}`;
  }
  if (o.recoveryMs) return `all back ${ms(o.recoveryMs.all)} (p50 ${ms(o.recoveryMs.p50)}, ${o.recoveryMs.recovered}/${o.recoveryMs.devices})`;
  if (o.drainMs !== undefined) return `drained ${ms(o.drainMs)}`;
  if (o.batching) return `${o.batching.frames} frames, held ${o.batching.unwatchedMs / 1000} s${stored}`;
  return "";
}

/** The hub's own counters per scenario: what the rooms wrote and were billed for. */
function countersTable(outcomes: Outcome[]): string {
  const rows = [["scenario", "target", "rooms", "stored", "rows/reading", "commits/s", "billed req/reading", "fsync+fdatasync", "note"]];
  for (const o of outcomes.filter((x) => x.counters)) {
    const c = countersOf(o);
    const f = o.fsync;
    const fsync = !f ? "—" : "unavailable" in f ? f.unavailable : `${f.calls} (${(f.calls / f.seconds).toFixed(0)}/s${c?.readingsStored ? `, ${(f.calls / c.readingsStored).toFixed(3)}/reading` : ""})`;
    const notes = [
      o.deviceAuth ? `devices: ${o.deviceAuth}` : "",
      c?.restarted ? `${c.restarted} room counters restarted inside the window (their earlier counts are lost)` : "",
      c && c.readingsStored === 0 ? "nothing committed in the window (group commits wait up to GROUP_COMMIT_MS)" : "",
      o.batching?.note ?? "",
      o.stored && typeof o.stored.behindInRoom === "number" && o.stored.behindInRoom > 0 ? `${o.stored.behindInRoom} readings beyond the rooms' ackedSeq` : "",
      o.stored && typeof o.stored.behindInRoom === "string" ? `ackedSeq: ${o.stored.behindInRoom}` : "",
    ].filter(Boolean);
    if (!c) {
      rows.push([o.scenario, o.target, "n/a", "n/a", "n/a", "n/a", "n/a", fsync, [(o.counters as { unavailable: string }).unavailable, ...notes].join("; ")]);
      continue;
    }
    rows.push([o.scenario === "scale" ? "scale, steady" : o.scenario, o.target, String(c.rooms), String(c.readingsStored), fixed(c.rowsPerReading, 3), fixed(c.commitsPerSecond, 1), fixed(c.requestsPerReading, 4), fsync, notes.join("; ")]);
    const w = countersOf({ ...o, counters: o.countersWithRestart });
    if (w) {
      const note = `the whole run: ${w.restarted} room counters restarted with the endpoint (what they counted between the last read and the kill is lost)`;
      rows.push(["scale, all", o.target, String(w.rooms), String(w.readingsStored), fixed(w.rowsPerReading, 3), fixed(w.commitsPerSecond, 1), fixed(w.requestsPerReading, 4), "—", note]);
    }
  }
  return rows.length > 1 ? table(rows) : "";
}

function costTable(cases: CostCase[]): string {
  const rows = [["device at 1 Hz", "measured in", "rows/reading", "billed req/reading", "rows", "requests**", "duration*", "$ / device-month", "steady***"]];
  for (const c of cases) {
    rows.push([c.case, c.from, fixed(c.per.rows, 4), fixed(c.per.requests, 4), dollars(c.month.rows), dollars(c.month.requests), dollars(c.month.duration), dollars(c.month.total), dollars(c.month.steady)]);
  }
  const never = cases[0]?.month.neverIdle ?? Number.NaN;
  return [
    table(rows),
    `Durable Objects list prices read ${PRICES.read} from ${PRICES.url}: rows written $${PRICES.rowsWrittenPerMillion.toFixed(2)}/M, rows read $${PRICES.rowsReadPerMillion}/M (not counted: rooms do not count rows read),`,
    `requests $${PRICES.requestsPerMillion}/M (incoming WebSocket messages ${PRICES.wsMessagesPerRequest}:1), duration $${PRICES.gbSecondsPerMillion}/M GB-s at ${PRICES.memoryGb * 1024} MB; 30-day month; included amounts and storage (GB-month) left out.`,
    `* duration assumes ${config.billedMsPerEvent} ms of billed wall clock per event a room handles (frame, alarm, call; --billed-ms) and the room hibernation-eligible in between;`,
    `  an object never eligible (a timer always pending, e.g. a group commit waiting) pays ${dollars(never)} a month in duration alone.`,
    `** with heartbeat pings at 20:1 (the room never sees them: the runtime answers them): the device's every ${(1 / config.pings.device).toFixed(0)} s, and a watching dashboard's every 10 s.`,
    `*** once history is full, retention deletes each chunk once: one more row per chunk committed.`,
  ].join("\n");
}

function goalsTable(list: Goal[]): string {
  return table([["goal (issue 10)", "measured", "verdict"], ...list.map((g) => [g.goal, g.measured, g.verdict])]);
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
let outbox: OutboxResult | undefined;
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
    for (const run of running.filter((r) => runsOn(scenario, r.name))) {
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
      if (o.scenario === "scale" && o.recoveryMs?.phases) {
        const p = o.recoveryMs.phases;
        const step = (k: string) => `${k} ${ms(p[k]?.p50)} / ${ms(p[k]?.max)}`;
        console.log(`\n  after the kill (p50 / max): ${step("devices connected")}, ${step("dashboards connected")}, first new reading at its dashboard ${ms(o.recoveryMs.p50)} / ${ms(o.recoveryMs.all)}`);
        const failed = Object.entries(o.restart?.failedAttempts ?? {}).sort((a, b) => b[1] - a[1]);
        if (failed.length) console.log(`  failed reconnect attempts: ${failed.slice(0, 4).map(([why, n]) => `${n} × ${why}`).join("; ")}`);
      } else if (o.recoveryMs?.phases) {
        const p = o.recoveryMs.phases;
        const ticket = Number.isNaN(p.ticket!.p50) ? "no ticket (bearer upgrade)" : `ticket ${ms(p.ticket!.p50)} / ${ms(p.ticket!.max)}`;
        console.log(`\n  reconnect steps after the drop (p50 / max): ${ticket}, socket open ${ms(p.open!.p50)} / ${ms(p.open!.max)}, hello acked ${ms(p.hello!.p50)} / ${ms(p.hello!.max)}`);
      }
      const c = countersOf(o);
      console.log(
        `${((now() - t) / 1000).toFixed(1)} s: ${o.delivered}/${o.expected} delivered, p99 ${ms(o.latencyMs.p99)}, ${rate(o.throughput)}` +
          (o.restart ? `, endpoint down ${ms(o.restart.downMs)}, all back ${ms(o.restart.allBackAfterUpMs)} after` : "") +
          (o.stored ? `, stored ${o.stored.readings - (o.stored.unacked || 0)}/${o.stored.readings}` : "") +
          (c ? `, ${fixed(c.rowsPerReading, 3)} rows and ${fixed(c.requestsPerReading, 4)} billed requests per reading` : o.counters ? `, counters ${(o.counters as { unavailable: string }).unavailable}` : "") +
          (o.errors ? `, ${o.errors} errors (${o.firstErrors.join("; ")})` : ""),
      );
    }
  }
  const hub = running.find((r) => r.name === "hub") ?? running.find((r) => r.name === "hub-dev");
  if (hub && !opts["no-agent"] && scenarios.length > 0) {
    process.stdout.write(`bench: the agent at 1 Hz for ${config.agentSeconds} s … `);
    try {
      agent = await agentCost(hub);
      console.log("done");
    } catch (err) {
      // The agent is measured, not tested here: a broken build leaves its line out, not the run.
      console.log(`failed: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
    }
  }
  if (hub && outboxRun) {
    process.stdout.write(`bench: the agent's outbox, 6 agents at 1 Hz for ${config.outboxSeconds} s … `);
    const h = hub.target as Extract<Target, { kind: "hub" }>;
    try {
      outbox = await outboxWrites({ base: h.base, adminToken: h.adminToken, provision: (ids) => provision(hub, ids), tag: runTag, seconds: config.outboxSeconds, spillMs: config.outboxSpillMs, spillUnwatchedMs: config.outboxSpillUnwatchedMs });
      console.log("done");
    } catch (err) {
      console.log(`failed: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
    }
  }
} finally {
  await stopAll();
}

const { detail, ratios, ratioData } = report(outcomes);
console.log(`\n${detail}\n\n${ratios}`);
const countersText = countersTable(outcomes);
if (countersText) console.log(`\nhub rooms' own counters (GET /api/devices/:id/stats, summed over the scenario's rooms):\n${countersText}`);
const judgeInput = { outcomes, billedMsPerEvent: config.billedMsPerEvent, fleetRateHz: config.fleet.rateHz, unwatchedMs: config.unwatched.unwatchedMs, plannedUnwatched: config.plannedUnwatched, pings: config.pings };
const cost = costCases(judgeInput);
console.log(`\ncost per device-month on Cloudflare (Durable Objects), from the counters above:\n${cost.length ? costTable(cost) : "n/a: no hub scenario with room counters (the rooms must answer GET /api/devices/:id/stats)"}`);
const goalList = goals(judgeInput, cost);
console.log(`\ngoals, judged on ${judgedHub(outcomes)}:\n${goalsTable(goalList)}`);
if (agent) {
  console.log(
    `\nagent at 1 Hz (${agent.how}, ${agent.node}, x86-64 here, not a Pi): RSS ${agent.rssMb.toFixed(1)} MB (max ${agent.maxRssMb.toFixed(1)} MB), CPU ${agent.cpuPercent.toFixed(2)}% of one core over ${agent.seconds} s`,
  );
}
if (outbox) {
  console.log(
    `\nagent outbox: bytes written to disk per reading at 1 Hz over ${outbox.seconds} s, memory first spilling after ${(outbox.spillMs ?? 30_000) / 1000} s, ${(outbox.spillUnwatchedMs ?? 150_000) / 1000} s while the room batches (/proc/PID/io; ${outbox.how}, ${outbox.node}; state on ${outbox.stateFs}):\n${outboxTable(outbox)}`,
  );
}
for (const [scenario, summary] of Object.entries(profiles)) console.log(`\nhub profile, ${scenario} (self time, Worker isolate):\n${summary}`);
const out = opts.out ?? join(ROOT, "bench/results", `bench-${new Date(started).toISOString().replace(/[:.]/g, "-")}.json`);
mkdirSync(join(out, ".."), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify({ started: new Date(started).toISOString(), argv: process.argv.slice(2), quick, machine: info, config, outcomes, ratios: ratioData, prices: PRICES, cost, goals: goalList, agent, outbox }, null, 2)}\n`,
);
console.log(`\nbench: ${((Date.now() - started) / 1000).toFixed(0)} s in all; JSON in ${out}`);
process.exit(0);
