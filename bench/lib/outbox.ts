/**
 * `npm run bench -- --scenarios outbox`: what the agent's outbox costs the SD card
 * (issue 13, "an outbox an SD card survives"). Real agent processes (the bundle, as
 * the systemd unit runs it) sample at 1 Hz side by side for `seconds` (≥ 10 min by
 * default), each with its own state directory on a real disk:
 *
 *   memory, watched     memory first (the default), a dashboard open: acks within ~15 s
 *   memory, unwatched   memory first, nobody watching: the room batches (UNWATCHED_BATCH_MS)
 *   memory, offline     memory first, no endpoint at all
 *   strict, …           the same three with --outbox strict (every reading written: the old outbox)
 *
 * Bytes per reading come from /proc/PID/io between two reads after a warm-up:
 * `write_bytes` (what reached the block layer: the SD card's wear) and, for
 * reference, `wchar`/`rchar` (every write()/read() call, pipes and sockets included:
 * the agent's stdout lines and its WebSocket frames are in them). Readings are the
 * agent's own `Temperature:` lines in the window. Off the default run: it takes
 * `seconds` plus a minute.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { PING } from "../../party/protocol";
import { freePort, Proc, ROOT, sleep } from "../../test/support/processes";

export type OutboxCase = {
  name: string;
  mode: "memory" | "strict";
  link: "watched" | "unwatched" | "offline";
  seconds: number;
  readings: number;
  writeBytes: number;
  wchar: number;
  rchar: number;
  /** write_bytes per reading: the figure judged. */
  writePerReading: number;
};
export type OutboxResult = { seconds: number; spillMs: number | null; spillUnwatchedMs: number | null; stateFs: string; node: string; how: string; cases: OutboxCase[] };

export type OutboxDeps = {
  base: string;
  adminToken: string;
  /** Provision these device ids on the hub; their tokens in the same order. */
  provision: (ids: string[]) => Promise<string[]>;
  tag: string;
  seconds: number;
  /** --spill-ms for the memory-first agents (default: the agent's own, 30 s). */
  spillMs?: number;
  /** --spill-unwatched-ms for the memory-first agents (default: the agent's own). */
  spillUnwatchedMs?: number;
  log?: (line: string) => void;
};

/** The targets from issue 13, per reading: online ≤ 200 bytes, offline ≤ 2 KB. */
export const OUTBOX_GOALS = { onlineBytes: 200, offlineBytes: 2_048 };

const TMPFS_MAGIC = 0x01021994;

/** A state directory on a disk that counts: on tmpfs nothing reaches a block device and write_bytes stays 0. */
function stateRoot(): { dir: string; fs: string } {
  for (const parent of [tmpdir(), join(ROOT, "bench/results")]) {
    mkdirSync(parent, { recursive: true });
    const s = statfsSync(parent);
    if (s.type !== TMPFS_MAGIC) return { dir: mkdtempSync(join(parent, "bench-outbox-")), fs: `${parent} (statfs type 0x${s.type.toString(16)})` };
  }
  throw new Error("no directory on a real disk for the outbox state (both tmpdir and bench/results are tmpfs)");
}

function procIo(pid: number): { writeBytes: number; wchar: number; rchar: number } {
  const text = readFileSync(`/proc/${pid}/io`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? Number.NaN);
  return { writeBytes: field("write_bytes"), wchar: field("wchar"), rchar: field("rchar") };
}

const readingsIn = (p: Proc) => p.lines.filter((l) => l.startsWith("Temperature: ")).length;

/** A dashboard socket on the device's room, so the room says `batching 0` (watched); pings like the dashboard's. */
async function watch(base: string, adminToken: string, id: string): Promise<() => void> {
  const res = await fetch(`${base}/api/tickets`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ device: id, role: "dashboard" }),
  });
  if (!res.ok) throw new Error(`dashboard ticket for ${id}: ${res.status} ${await res.text()}`);
  const { ticket, path } = (await res.json()) as { ticket: string; path: string };
  const ws = new WebSocket(`${base.replace(/^http/, "ws")}${path}?ticket=${encodeURIComponent(ticket)}`, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  ws.on("message", () => {}); // live readings: not needed, only the room's count of dashboards
  const ping = setInterval(() => ws.send(PING), 10_000);
  return () => {
    clearInterval(ping);
    ws.close();
  };
}

export async function outboxWrites(deps: OutboxDeps): Promise<OutboxResult> {
  const log = deps.log ?? (() => {});
  const bundle = mkdtempSync(join(tmpdir(), "bench-outbox-bundle-"));
  const state = stateRoot();
  const procs: Proc[] = [];
  const unwatch: (() => void)[] = [];
  try {
    const built = spawnSync(process.execPath, [join(ROOT, "scripts/build-device.mjs")], { env: { ...process.env, OUT_DIR: bundle }, encoding: "utf8" });
    if (built.status !== 0) throw new Error(`device:build failed: ${built.stderr}`);
    const shapes = (["memory", "strict"] as const).flatMap((mode) => (["watched", "unwatched", "offline"] as const).map((link) => ({ mode, link, name: `${mode}, ${link}` })));
    const online = shapes.filter((s) => s.link !== "offline");
    const ids = shapes.map((s) => `bench-${deps.tag}-outbox-${s.mode}-${s.link}`);
    const tokens = await deps.provision(online.map((s) => ids[shapes.indexOf(s)]!));
    const nowhere = `http://127.0.0.1:${await freePort()}`; // nothing listens: the link never comes up
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("IOT_")));
    const agents = shapes.map((s, i) => {
      const token = s.link === "offline" ? undefined : tokens[online.indexOf(s)];
      const args = [
        "--max-semi-space-size=1", "--disable-warning=ExperimentalWarning", join(bundle, "iot-agent.mjs"),
        "--simulate", "--no-led", "--no-quiet", "--interval-ms", "1000", "--outbox", s.mode,
        "--endpoint", s.link === "offline" ? nowhere : deps.base,
        "--id", ids[i]!, "--state-dir", join(state.dir, `${s.mode}-${s.link}`),
        ...(s.mode === "memory" && deps.spillMs !== undefined ? ["--spill-ms", String(deps.spillMs)] : []),
        ...(s.mode === "memory" && deps.spillUnwatchedMs !== undefined ? ["--spill-unwatched-ms", String(deps.spillUnwatchedMs)] : []),
      ];
      const p = new Proc(`agent ${s.name}`, process.execPath, args, { env: { ...env, ...(token ? { IOT_TOKEN: token } : {}) } });
      procs.push(p);
      return p;
    });
    for (const [i, s] of shapes.entries()) {
      if (s.link !== "offline") await agents[i]!.waitForLine("IoT Connected to the Endpoint.", 0, 60_000);
      if (s.link === "watched") unwatch.push(await watch(deps.base, deps.adminToken, ids[i]!));
    }
    // Past start-up: the file made, the stream written, the first batching decision.
    await sleep(10_000);
    const start = agents.map((a) => ({ io: procIo(a.child.pid!), readings: readingsIn(a), at: performance.now() }));
    log(`outbox: ${shapes.length} agents at 1 Hz for ${deps.seconds} s (state on ${state.fs})`);
    await sleep(deps.seconds * 1000);
    const cases = agents.map((a, i) => {
      const end = procIo(a.child.pid!);
      if (!a.running) throw new Error(`${a.name} exited: ${a.output().slice(-500)}`);
      const readings = readingsIn(a) - start[i]!.readings;
      const writeBytes = end.writeBytes - start[i]!.io.writeBytes;
      return {
        name: shapes[i]!.name,
        mode: shapes[i]!.mode,
        link: shapes[i]!.link,
        seconds: Math.round((performance.now() - start[i]!.at) / 1000),
        readings,
        writeBytes,
        wchar: end.wchar - start[i]!.io.wchar,
        rchar: end.rchar - start[i]!.io.rchar,
        writePerReading: readings > 0 ? writeBytes / readings : Number.NaN,
      };
    });
    return { seconds: deps.seconds, spillMs: deps.spillMs ?? null, spillUnwatchedMs: deps.spillUnwatchedMs ?? null, stateFs: state.fs, node: process.version, how: "node --max-semi-space-size=1 iot-agent.mjs --simulate --no-led (the bundle, as device/iot-agent.service)", cases };
  } finally {
    for (const u of unwatch) u();
    await Promise.all(procs.map((p) => p.stop(10_000)));
    rmSync(bundle, { recursive: true, force: true });
    rmSync(state.dir, { recursive: true, force: true });
  }
}

const kb = (n: number) => (n >= 10_240 ? `${(n / 1024).toFixed(1)} KB` : `${Math.round(n)} B`);

/** The table `npm run bench` prints, with the goals judged on the memory-first cases. */
export function outboxTable(r: OutboxResult): string {
  const rows = [["outbox, link", "readings", "write_bytes", "per reading", "wchar/reading", "rchar/reading", "goal"]];
  for (const c of r.cases) {
    const goal = c.mode === "strict" ? "(before)" : c.link === "offline" ? OUTBOX_GOALS.offlineBytes : OUTBOX_GOALS.onlineBytes;
    const met = typeof goal === "number" ? `≤ ${kb(goal)}: ${c.writePerReading <= goal ? "met" : "NOT met"}` : goal;
    rows.push([c.name, String(c.readings), kb(c.writeBytes), kb(c.writePerReading), kb(c.wchar / c.readings), kb(c.rchar / c.readings), met]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ")).join("\n");
}
