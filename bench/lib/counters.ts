/**
 * What the hub's rooms did during a scenario, from their own counters:
 * `GET /api/devices/:id/stats` answers `RoomStats` (party/protocol.ts), in
 * memory since the room started. The bench reads every device's room before
 * the load, (in the scale run also just before the kill), and after it, and
 * sums the differences.
 *
 * A room that restarted between two reads (its `since` moved) counts from its
 * restart: what it did before is gone with its memory, and the sum says how
 * many rooms that happened to. The bench's own stats reads are calls into the
 * room too; one per room per interval is taken off (measured, see `selfCalls`).
 */
import { RoomStats } from "../../party/protocol";

export type Snapshot = { at: number; rooms: Map<string, RoomStats> };

/** Summed over the rooms of one scenario, with the figures the report shows. */
export type Counters = {
  rooms: number;
  /** Rooms whose counters restarted inside the window (their earlier counts are lost). */
  restarted: number;
  seconds: number;
  readingsStored: number;
  rowsWritten: number;
  commits: number;
  alarms: number;
  framesIn: number;
  calls: number;
  /** Calls subtracted: the bench's own stats reads. */
  statsCalls: number;
  rowsPerReading: number;
  commitsPerSecond: number;
  /** (framesIn / 20 + alarms + calls) per stored reading: Durable Objects' billed requests. */
  requestsPerReading: number;
};

/** Incoming WebSocket messages are billed 20:1 as requests (see lib/cost.ts for the source). */
export const WS_MESSAGES_PER_REQUEST = 20;

const CONCURRENCY = 20;

/** Every room's counters, or an Error saying why they cannot be read (a 404 before the route exists). */
export async function readStats(base: string, token: string, ids: string[], ip: (i: number) => string): Promise<Snapshot> {
  const rooms = new Map<string, RoomStats>();
  const one = async (id: string, i: number) => {
    const res = await fetch(`${base}/api/devices/${encodeURIComponent(id)}/stats`, {
      headers: { authorization: `Bearer ${token}`, "x-real-ip": ip(i) },
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`GET /api/devices/:id/stats answered ${res.status} ${text.slice(0, 120)}`);
    const parsed = RoomStats.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(`GET /api/devices/:id/stats: not RoomStats (${parsed.error.issues[0]?.message ?? "?"})`);
    rooms.set(id, parsed.data);
  };
  // The first alone: an endpoint without the route answers one 404, not a thousand.
  const at = Date.now();
  if (ids.length) await one(ids[0]!, 0);
  for (let i = 1; i < ids.length; i += CONCURRENCY) await Promise.all(ids.slice(i, i + CONCURRENCY).map((id, j) => one(id, i + j)));
  return { at: (at + Date.now()) / 2, rooms };
}

/**
 * Calls one stats read adds to a room's `calls` (0 or 1): read the first room twice. Whether a
 * read counts itself before or after answering, two reads in a row differ by what one read costs.
 */
export async function selfCalls(base: string, token: string, id: string, ip: (i: number) => string): Promise<number> {
  const a = await readStats(base, token, [id], ip);
  const b = await readStats(base, token, [id], ip);
  const [x, y] = [a.rooms.get(id)!, b.rooms.get(id)!];
  return x.since === y.since ? Math.max(0, Math.min(1, y.calls - x.calls)) : 0;
}

const FIELDS = ["readingsStored", "rowsWritten", "commits", "alarms", "framesIn", "calls"] as const;

/** The sum over rooms of what changed from each snapshot to the next. */
export function sumCounters(snapshots: Snapshot[], perReadCalls: number): Counters {
  const sum = Object.fromEntries(FIELDS.map((f) => [f, 0])) as Record<(typeof FIELDS)[number], number>;
  let restarted = 0;
  let statsCalls = 0;
  const ids = new Set(snapshots.flatMap((s) => [...s.rooms.keys()]));
  for (let k = 1; k < snapshots.length; k++) {
    for (const id of ids) {
      const before = snapshots[k - 1]!.rooms.get(id);
      const after = snapshots[k]!.rooms.get(id);
      if (!after) continue;
      const same = before !== undefined && before.since === after.since;
      if (!same) restarted++;
      for (const f of FIELDS) sum[f] += same ? after[f] - before[f] : after[f];
      statsCalls += perReadCalls;
    }
  }
  sum.calls = Math.max(0, sum.calls - statsCalls);
  const seconds = (snapshots.at(-1)!.at - snapshots[0]!.at) / 1000;
  const per = (n: number) => (sum.readingsStored > 0 ? n / sum.readingsStored : Number.NaN);
  return {
    rooms: ids.size,
    restarted,
    seconds,
    ...sum,
    statsCalls,
    rowsPerReading: per(sum.rowsWritten),
    commitsPerSecond: seconds > 0 ? sum.commits / seconds : Number.NaN,
    requestsPerReading: per(sum.framesIn / WS_MESSAGES_PER_REQUEST + sum.alarms + sum.calls),
  };
}
