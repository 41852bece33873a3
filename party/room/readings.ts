/**
 * A device's readings: live in memory first, durable in groups, stored in
 * chunks (many readings per row). The room's one place where a reading is
 * stored. Read in the order a reading travels:
 *
 *  1. add(): a frame's readings (room seqs). Those not held yet (not durable,
 *     not pending) are kept in memory as pending and returned as fresh, for
 *     the room to fan out to dashboards at once and log.
 *  2. flush(): every pending reading becomes part of a chunk row — one row
 *     per contiguous run of seqs — in the event's one implicit transaction.
 *     Only then does the ack move: the room sends it after flush(), and the
 *     runtime's output gate holds that message until the commit is on disk,
 *     so an ack never runs ahead of durable storage. If the room is evicted
 *     before a flush, the pending readings are gone from here but not from
 *     the agent, which still holds everything unacked and resends it.
 *  3. page() / latest(): reads over chunks and pending alike.
 *  4. retain(): drops whole oldest chunks while the count of readings kept
 *     stays at or above the bound. It counts stored readings, never trusts a
 *     device's seq numbers, so one absurd seq cannot erase real history.
 *
 * Why chunks: Cloudflare bills every SQLite row written. One row per reading
 * at 1 Hz is ~2.6 M rows a device-month; one row per group of ten (watched)
 * or per frame of a hundred and twenty (unwatched) is 10–100× fewer. A chunk
 * holds one contiguous run [first, last], so whether a seq is stored is a
 * range check, and a gap filled later is simply its own chunk.
 */
import type { Reading, Scale } from "../protocol";
import type { Meter } from "./meter";

/** Readings per chunk row at most (~20 bytes each encoded, so ≤ ~20 KB a row). */
export const CHUNK_MAX = 1000;
/**
 * The ack is rebuilt from chunks on start; persisting it now and then bounds that walk
 * (and retention only drops chunks at or below the persisted ack, so the walk never
 * meets a hole that retention made). Once an hour: a row per 3,600 readings at 1 Hz.
 */
const ACK_PERSIST_MS = 60 * 60_000;

type Run = { first: number; last: number };
type ChunkRow = { first: number; last: number; data: string };

export class ReadingsStore {
  readonly #sql: SqlStorage;
  readonly #kv: SyncKvStorage;
  readonly #meter: Meter;
  /** Every seq ≤ acked is durable, or was given up as lost on the agent's word. */
  #acked: number;
  #lost: number;
  #persisted: { acked: number; lost: number; at: number };
  /** Readings in durable storage. */
  #stored: number;
  /** Highest seq in durable storage. */
  #durableMax: number;
  /** Durable runs above the ack (readings stored beyond a gap), in seq order. Usually empty. */
  #islands: Run[] = [];
  /** Readings forwarded live and not yet durable. */
  #pending = new Map<number, Reading>();
  #pendingSince: number | null = null;
  /** When the newest chunk was committed: a last-seen the room gets without a write of its own. */
  #lastCommitAt: number | null;

  constructor(sql: SqlStorage, kv: SyncKvStorage, meter: Meter) {
    this.#sql = sql;
    this.#kv = kv;
    this.#meter = meter;
    // first is the rowid (INTEGER PRIMARY KEY): a chunk insert writes one row and no index.
    sql.exec(`CREATE TABLE IF NOT EXISTS chunks (
      first INTEGER PRIMARY KEY, last INTEGER NOT NULL, ts_min INTEGER NOT NULL, ts_max INTEGER NOT NULL,
      committed INTEGER NOT NULL, data TEXT NOT NULL)`);
    this.#migrateRowPerReading();
    this.#acked = kv.get<number>("acked") ?? 0;
    this.#lost = kv.get<number>("lost") ?? 0;
    const totals = sql
      .exec<{ n: number; m: number | null; c: number | null }>(
        "SELECT COALESCE(SUM(last - first + 1), 0) AS n, MAX(last) AS m, MAX(committed) AS c FROM chunks",
      )
      .one();
    this.#stored = totals.n;
    this.#durableMax = totals.m ?? 0;
    this.#lastCommitAt = totals.c;
    // Chunks committed after the ack was last persisted move it on now.
    for (const { first, last } of sql.exec<Run>("SELECT first, last FROM chunks WHERE last > ? ORDER BY first", this.#acked)) {
      this.#addIsland({ first: Math.max(first, this.#acked + 1), last });
    }
    this.#advance();
    this.#persisted = { acked: this.#acked, lost: this.#lost, at: Date.now() };
  }

  get acked(): number {
    return this.#acked;
  }
  get lost(): number {
    return this.#lost;
  }
  /** Readings held: durable and pending. */
  get stored(): number {
    return this.#stored + this.#pending.size;
  }
  get pendingCount(): number {
    return this.#pending.size;
  }
  /** When the oldest pending reading arrived (null when none is pending). */
  get pendingSince(): number | null {
    return this.#pendingSince;
  }
  get lastCommitAt(): number | null {
    return this.#lastCommitAt;
  }
  /** Highest seq held, durable or pending: a new stream continues after it. */
  get maxSeq(): number {
    let max = this.#durableMax;
    for (const seq of this.#pending.keys()) if (seq > max) max = seq;
    return max;
  }

  /** Keep the readings not held yet (durable or pending); return them, in seq order, as fresh. */
  add(readings: readonly Reading[], now: number): Reading[] {
    const fresh: Reading[] = [];
    for (const r of readings) {
      if (this.#holds(r.seq)) continue;
      this.#pending.set(r.seq, r);
      fresh.push(r);
    }
    if (fresh.length === 0) return fresh;
    this.#pendingSince ??= now;
    fresh.sort((a, b) => a.seq - b.seq);
    return fresh;
  }

  /**
   * Write every pending reading as chunk rows (one per contiguous run of at
   * most CHUNK_MAX) and move the ack. Returns how many were written.
   */
  flush(now: number): number {
    const n = this.#pending.size;
    if (n === 0) return 0;
    const sorted = [...this.#pending.values()].sort((a, b) => a.seq - b.seq);
    let start = 0;
    for (let i = 1; i <= sorted.length; i++) {
      const runEnds = i === sorted.length || sorted[i]!.seq !== sorted[i - 1]!.seq + 1 || i - start === CHUNK_MAX;
      if (!runEnds) continue;
      const run = sorted.slice(start, i);
      this.#writeChunk(run, now);
      this.#addIsland({ first: run[0]!.seq, last: run[run.length - 1]!.seq });
      start = i;
    }
    this.#pending.clear();
    this.#pendingSince = null;
    this.#stored += n;
    this.#durableMax = Math.max(this.#durableMax, sorted[sorted.length - 1]!.seq);
    this.#lastCommitAt = now;
    this.#meter.commits++;
    this.#meter.readingsStored += n;
    this.#advance();
    if (now - this.#persisted.at >= ACK_PERSIST_MS) this.persistCounters(now);
    return n;
  }

  /** Readings after seq `after` (and from `since`, by their own timestamps), in seq order. */
  page(after: number, since: number | undefined, limit: number): Reading[] {
    const out: Reading[] = [];
    const rows =
      since === undefined
        ? this.#sql.exec<ChunkRow>("SELECT first, last, data FROM chunks WHERE last > ? ORDER BY first", after)
        : this.#sql.exec<ChunkRow>("SELECT first, last, data FROM chunks WHERE last > ? AND ts_max >= ? ORDER BY first", after, since);
    outer: for (const row of rows) {
      for (const r of decodeChunk(row)) {
        if (r.seq <= after || (since !== undefined && r.ts < since)) continue;
        out.push(r);
        if (out.length >= limit) break outer;
      }
    }
    const pending = this.#sortedPending().filter((r) => r.seq > after && (since === undefined || r.ts >= since));
    return mergeBySeq(out, pending).slice(0, limit);
  }

  /** The newest `n` readings held, in seq order. */
  latest(n: number): Reading[] {
    const newest: Reading[] = [];
    for (const row of this.#sql.exec<ChunkRow>("SELECT first, last, data FROM chunks ORDER BY first DESC")) {
      const rs = decodeChunk(row);
      for (let i = rs.length - 1; i >= 0 && newest.length < n; i--) newest.push(rs[i]!);
      if (newest.length >= n) break;
    }
    newest.reverse();
    const merged = mergeBySeq(newest, this.#sortedPending());
    return merged.slice(Math.max(0, merged.length - n));
  }

  /**
   * The agent says every seq ≤ `floor` has left its outbox. What is not held
   * of that will never come: count it as lost and ack past it, or the agent
   * would wait forever for an ack it cannot earn. Flushes first, so the
   * count is of durable readings. Returns how many were newly counted lost.
   */
  giveUpTo(floor: number, now: number): number {
    if (floor <= this.#acked) return 0;
    this.flush(now);
    const missing = floor - this.#acked - this.#heldAbove(this.#acked, floor);
    this.#lost += missing;
    this.#acked = floor;
    this.#islands = this.#islands
      .filter((run) => run.last > floor)
      .map((run) => ({ first: Math.max(run.first, floor + 1), last: run.last }));
    this.#advance();
    this.persistCounters(now);
    return missing;
  }

  /**
   * Drop whole oldest chunks while at least `keep` readings remain (and only at or below the
   * persisted ack). Each dropped chunk is one row written: at steady state every chunk is
   * written once and deleted once. Returns readings dropped.
   */
  retain(keep: number, now: number): number {
    // Wait for 1 % over the bound, then drop in one go: the ack written first (one row)
    // is then paid once per 1 % of the bound, not once per alarm.
    if (this.#stored <= keep + Math.floor(keep / 100)) return 0;
    this.persistCounters(now);
    let drop = 0;
    let upTo = -1;
    for (const { first, last } of this.#sql.exec<Run>("SELECT first, last FROM chunks ORDER BY first")) {
      const n = last - first + 1;
      // Not past the persisted ack: a restart rebuilds the ack by walking up from it.
      if (this.#stored - drop - n < keep || last > this.#persisted.acked) break;
      drop += n;
      upTo = first;
    }
    if (upTo < 0) return 0;
    this.#meter.wrote(this.#sql.exec("DELETE FROM chunks WHERE first <= ?", upTo));
    this.#stored -= drop;
    // Normally all below the ack; a run stored beyond a gap that retention reached is gone for good.
    if (this.#islands.some((run) => run.first <= upTo)) {
      this.#islands = this.#islands.filter((run) => run.first > upTo);
    }
    return drop;
  }

  /** Write the ack and lost count if they moved (on jumps, now and then, and on alarms). */
  persistCounters(now: number): void {
    if (this.#acked !== this.#persisted.acked) {
      this.#kv.put("acked", this.#acked);
      this.#meter.row();
    }
    if (this.#lost !== this.#persisted.lost) {
      this.#kv.put("lost", this.#lost);
      this.#meter.row();
    }
    this.#persisted = { acked: this.#acked, lost: this.#lost, at: now };
  }

  // ---------------------------------------------------------------------------

  #holds(seq: number): boolean {
    if (seq <= this.#acked || this.#pending.has(seq)) return true;
    for (const run of this.#islands) if (seq >= run.first && seq <= run.last) return true;
    return false;
  }

  /** Seqs held (durable above the ack, or pending) in (from, to]. */
  #heldAbove(from: number, to: number): number {
    let n = 0;
    for (const run of this.#islands) n += Math.max(0, Math.min(run.last, to) - Math.max(run.first, from + 1) + 1);
    for (const seq of this.#pending.keys()) if (seq > from && seq <= to) n++;
    return n;
  }

  #addIsland(run: Run): void {
    if (run.last <= this.#acked) return;
    this.#islands.push(run);
    this.#islands.sort((a, b) => a.first - b.first);
  }

  /** Move the ack over islands that now touch it. */
  #advance(): void {
    while (this.#islands.length > 0 && this.#islands[0]!.first <= this.#acked + 1) {
      const run = this.#islands.shift()!;
      if (run.last > this.#acked) this.#acked = run.last;
    }
  }

  #writeChunk(run: Reading[], now: number): void {
    let tsMin = run[0]!.ts;
    let tsMax = tsMin;
    for (const r of run) {
      if (r.ts < tsMin) tsMin = r.ts;
      if (r.ts > tsMax) tsMax = r.ts;
    }
    this.#meter.wrote(
      this.#sql.exec(
        "INSERT INTO chunks (first, last, ts_min, ts_max, committed, data) VALUES (?, ?, ?, ?, ?, ?)",
        run[0]!.seq,
        run[run.length - 1]!.seq,
        tsMin,
        tsMax,
        now,
        encodeChunk(run),
      ),
    );
  }

  #sortedPending(): Reading[] {
    if (this.#pending.size === 0) return [];
    return [...this.#pending.values()].sort((a, b) => a.seq - b.seq);
  }

  /**
   * Rooms created before chunks kept one row per reading in `readings`: move
   * them into chunks once, in seq order, then drop the old table.
   */
  #migrateRowPerReading(): void {
    const old = this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'readings'").one().n;
    if (old === 0) return;
    let run: Reading[] = [];
    const now = Date.now();
    for (const r of this.#sql.exec<Reading>("SELECT seq, ts, temperature, scale FROM readings ORDER BY seq")) {
      const prev = run[run.length - 1];
      if (prev && (r.seq !== prev.seq + 1 || run.length === CHUNK_MAX)) {
        this.#writeChunk(run, now);
        run = [];
      }
      run.push({ seq: r.seq, ts: r.ts, temperature: r.temperature, scale: r.scale });
    }
    if (run.length) this.#writeChunk(run, now);
    this.#sql.exec("DROP TABLE readings");
  }
}

/**
 * A chunk's readings as compact JSON: timestamps as deltas from the previous
 * one (1000, 1000, … at 1 Hz), temperatures as numbers, scales as one string
 * of F/C. Seqs are implicit: first, first + 1, … (a chunk is one run).
 */
export function encodeChunk(run: readonly Reading[]): string {
  const t: number[] = [];
  const v: number[] = [];
  let s = "";
  let prev = 0;
  for (const r of run) {
    t.push(r.ts - prev);
    prev = r.ts;
    v.push(r.temperature);
    s += r.scale;
  }
  return JSON.stringify({ t, v, s });
}

export function decodeChunk(row: { first: number; data: string }): Reading[] {
  // Written only by encodeChunk above, from readings validated at the edge.
  const { t, v, s } = JSON.parse(row.data) as { t: number[]; v: number[]; s: string };
  const out: Reading[] = new Array(t.length);
  let ts = 0;
  for (let i = 0; i < t.length; i++) {
    ts += t[i]!;
    out[i] = { seq: row.first + i, ts, temperature: v[i]!, scale: s[i] as Scale };
  }
  return out;
}

/** Merge two seq-ordered lists with no seq in common. */
function mergeBySeq(a: Reading[], b: Reading[]): Reading[] {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const out: Reading[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]!.seq < b[j]!.seq)) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return out;
}
