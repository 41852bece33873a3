/**
 * The outbox: every reading is numbered and written to disk before it is
 * sent, and stays until the room acks it (DESIGN.md, contract 1).
 *
 * Storage: Node 22's built-in SQLite (`node:sqlite`), one file per device:
 *  - no dependency and no native addon to build on the Pi;
 *  - every append is one transaction: a reading is in the file whole or not at
 *    all, whatever moment a `kill -9` or a power cut strikes;
 *  - WAL journal with `synchronous = FULL`: each commit fsyncs the WAL before
 *    `append` returns, so a committed reading survives a power cut. What a
 *    power cut may lose is the one reading being written at that instant
 *    (its transaction rolls back on the next open), plus whatever an SD card
 *    that acknowledges a flush before it has written it throws away. At 1 Hz
 *    that is one small fsync a second, well within an SD card's means.
 *  - `seq` is `INTEGER PRIMARY KEY AUTOINCREMENT`: SQLite never hands out a
 *    value twice, even after the rows below it are pruned, so seqs stay
 *    monotonic across restarts without a separate counter.
 *
 * Seqs in the outbox are always contiguous (only a prefix is ever removed: by
 * ack, or by the drop-oldest policy), so its size is `next - oldest`.
 *
 * Bound: at most `maxReadings` rows (default 1,000,000: 11.5 days at 1 Hz, about
 * 26 MB on disk). When full, the oldest readings are dropped to make room, counted in
 * `dropped` (persisted, reported to the room as `state.dropped`) and logged.
 * The room learns what is gone from `hello.oldest` and counts it as lost.
 *
 * The same file keeps the agent's small persisted state (desired scale and
 * interval) in `meta`, so a restarted device comes back in the scale it was told.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { z } from "zod";
import { LIMITS, type Reading } from "../party/protocol.ts";
import { throttle, type Logger } from "./log.ts";

export const DEFAULT_OUTBOX_MAX = 1_000_000;

export type OutboxOptions = {
  maxReadings?: number;
  log: Logger;
  /** Injectable clock for the drop log's throttle. */
  now?: () => number;
};

export type NewReading = Omit<Reading, "seq">;

export class Outbox {
  readonly path: string;
  /** Random id made with this outbox; the room maps it to its seq range (`hello.stream`). */
  readonly stream: string;
  readonly maxReadings: number;
  #db: DatabaseSync;
  #log: Logger;
  #dropLogGate: () => boolean;
  #droppedSinceLog = 0;
  /** Lowest seq still held, or `#next` when empty. */
  #oldest: number;
  #next: number;
  #dropped: number;
  #closed = false;
  #insert: StatementSync;
  #readAfter: StatementSync;
  #deleteUpTo: StatementSync;
  #setMeta: StatementSync;
  #getMeta: StatementSync;

  constructor(path: string, opts: OutboxOptions) {
    this.path = path;
    this.maxReadings = opts.maxReadings ?? DEFAULT_OUTBOX_MAX;
    if (!Number.isInteger(this.maxReadings) || this.maxReadings < 1) {
      throw new Error(`outbox: maxReadings must be a positive integer, got ${this.maxReadings}`);
    }
    this.#log = opts.log;
    this.#dropLogGate = throttle(60_000, opts.now);
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const db = new DatabaseSync(path);
    this.#db = db;
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    // A reader (a test, an operator with the sqlite3 shell) must not make the agent fail a write.
    db.exec("PRAGMA busy_timeout = 5000");
    db.exec(`CREATE TABLE IF NOT EXISTS readings (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      ts INTEGER NOT NULL,
      temperature REAL NOT NULL,
      scale TEXT NOT NULL)`);
    db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    this.#setMeta = db.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    this.#getMeta = db.prepare("SELECT value FROM meta WHERE key = ?");
    this.#insert = db.prepare("INSERT INTO readings (ts, temperature, scale) VALUES (?, ?, ?)");
    this.#readAfter = db.prepare("SELECT seq, ts, temperature, scale FROM readings WHERE seq > ? ORDER BY seq LIMIT ?");
    this.#deleteUpTo = db.prepare("DELETE FROM readings WHERE seq <= ?");

    // The stream id is made once, with the outbox, and lives as long as its file.
    let stream = this.#meta("stream");
    if (!stream) {
      stream = randomBytes(12).toString("base64url");
      this.#setMeta.run("stream", stream);
    }
    this.stream = stream;
    this.#dropped = Number(this.#meta("dropped") ?? 0);
    const last = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'readings'").get() as { seq: number } | undefined;
    this.#next = (last?.seq ?? 0) + 1;
    const min = db.prepare("SELECT MIN(seq) AS m FROM readings").get() as { m: number | null };
    this.#oldest = min.m ?? this.#next;
  }

  /** Lowest seq still in the outbox, or the next seq when it is empty (`hello.oldest`). */
  get oldest(): number {
    return this.#oldest;
  }

  /** The seq the next reading will get. */
  get next(): number {
    return this.#next;
  }

  get size(): number {
    return this.#next - this.#oldest;
  }

  /** Readings dropped by the bound since this outbox was created (`state.dropped`). */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Number a reading and make it durable (one fsynced transaction). When the
   * outbox is full the oldest readings go first, in the same transaction.
   */
  append(reading: NewReading): Reading {
    const overflow = this.size + 1 - this.maxReadings;
    let stored!: Reading;
    this.#transaction(() => {
      if (overflow > 0) {
        this.#deleteUpTo.run(this.#oldest + overflow - 1);
        this.#setMeta.run("dropped", String(this.#dropped + overflow));
      }
      const { lastInsertRowid } = this.#insert.run(reading.ts, reading.temperature, reading.scale);
      stored = { seq: Number(lastInsertRowid), ...reading };
    });
    if (overflow > 0) this.#noteDropped(overflow);
    this.#next = stored.seq + 1;
    if (this.#oldest > stored.seq) this.#oldest = stored.seq;
    return stored;
  }

  /** Up to `limit` readings with seq > `after`, in seq order (≤ LIMITS.maxBatch by default). */
  readAfter(after: number, limit: number = LIMITS.maxBatch): Reading[] {
    return this.#readAfter.all(after, limit) as Reading[];
  }

  /** The room stored every seq ≤ `seq`: prune them. Returns how many were removed. */
  ack(seq: number): number {
    const upTo = Math.min(seq, this.#next - 1);
    if (upTo < this.#oldest) return 0;
    const { changes } = this.#deleteUpTo.run(upTo);
    this.#oldest = upTo + 1;
    return Number(changes);
  }

  /** Small persisted values (the desired state), validated on the way out. */
  getJson<T extends z.ZodType>(key: string, schema: T): z.infer<T> | undefined {
    const raw = this.#meta(`json:${key}`);
    if (raw === undefined) return undefined;
    try {
      const parsed = schema.safeParse(JSON.parse(raw));
      if (parsed.success) return parsed.data;
    } catch {
      // Unparseable (hand-edited?) value: treated as absent, and overwritten on the next set.
    }
    this.#log.warn(`outbox: ignoring an invalid stored ${key}`);
    return undefined;
  }

  setJson(key: string, value: unknown): void {
    this.#setMeta.run(`json:${key}`, JSON.stringify(value));
  }

  close(): void {
    // Own flag rather than DatabaseSync#isOpen, which Node 22.13 (the oldest this supports) lacks.
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  #meta(key: string): string | undefined {
    return (this.#getMeta.get(key) as { value: string } | undefined)?.value;
  }

  #noteDropped(count: number): void {
    const from = this.#oldest;
    this.#dropped += count;
    this.#oldest += count;
    this.#droppedSinceLog += count;
    if (this.#dropLogGate()) {
      this.#log.warn(
        `Outbox full (${this.maxReadings} readings): dropped the oldest ${this.#droppedSinceLog} (latest up to seq ${from + count - 1}); ${this.#dropped} dropped in all`,
      );
      this.#droppedSinceLog = 0;
    }
  }

  #transaction(fn: () => void): void {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      fn();
      this.#db.exec("COMMIT");
    } catch (err) {
      this.#db.exec("ROLLBACK");
      throw err;
    }
  }
}
