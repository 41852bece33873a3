/**
 * The outbox: every reading is numbered before it is sent, and stays until the
 * room acks it (DESIGN.md, contract 1).
 *
 * Storage: Node 22's built-in SQLite (`node:sqlite`), one file per device:
 *  - no dependency and no native addon to build on the Pi;
 *  - every write is one transaction: a reading is in the file whole or not at
 *    all, whatever moment a `kill -9` or a power cut strikes;
 *  - WAL journal with `synchronous = FULL`: each commit fsyncs the WAL before it
 *    returns, so a committed reading survives a power cut (unless the SD card
 *    acknowledges a flush it has not written);
 *  - `seq` is `INTEGER PRIMARY KEY AUTOINCREMENT`: SQLite never hands out a
 *    value twice, even after the rows below it are pruned.
 *
 * Memory first (the default; issue 13, "an outbox an SD card survives"). Writing
 * every reading cost ~21 KB of SD-card writes per reading (insert, fsync, delete,
 * fsync, checkpoints: ~1.9 GB a day at 1 Hz) for readings the room acks within
 * seconds. So a new reading is held in memory, and only what is not acked within
 * `spillMs` (30 s; `spillUnwatchedMs`, 150 s, while the room batches), or once
 * `spillMax` (300) readings wait, is *spilled*: everything
 * memory holds, in seq order, in one transaction. An ack removes readings from
 * memory or disk, whichever holds them; a clean stop (`close`) spills what is left.
 *  - Why 30 s: the room acks after its group commit, at most GROUP_COMMIT_MS (15 s)
 *    after a reading arrives while watched (docs/write-path.md); 30 s is twice that,
 *    the sender's ACK_TIMEOUT_MS, so a watched, connected device spills nothing.
 *    Offline: groups of 30 s, deleted after the catch-up.
 *  - Unwatched (the link up, the room batching): the sender holds readings for the
 *    room's delay (5 min by default), so none can be acked sooner. Every spill costs a
 *    file-system journal commit of several KB (≥ 8 KB on ext4) whatever it holds, so
 *    spilling every 30 s cost 553 B per reading, above the 200 B online target. The
 *    sender says so (`setBatching`) and the bound is then `spillUnwatchedMs` (150 s):
 *    one or two spills per 5-minute batch instead of ten; sending the batch at every spill
 *    instead would multiply the room's frames and row writes. Watched again, or
 *    offline: back to `spillMs`.
 *  - What a power cut (or `kill -9`) can lose: the readings held only in memory,
 *    at most the last spill bound's worth of readings (`spillMs`, or `spillUnwatchedMs`
 *    while batching) and never more than `spillMax`, and of those only the ones the
 *    room had not received (a live reading reaches the room at once; it commits what
 *    a closed socket sent; a reading held for a batch has not reached it). `strict`
 *    (spillMs 0) writes every reading before it is sent, as before: nothing committed
 *    is lost, whatever the link.
 *  - Seqs are never given twice: a reading acked from memory never touches the disk,
 *    so the highest seq handed out is written now and then (`issued`, every
 *    ISSUED_EVERY readings, one small write); after a crash numbering resumes after
 *    it, and the room's ack on `hello` (past anything it stored) moves it further
 *    (see `ack`). Readings lost from memory leave no gap: their seqs are given to the
 *    next readings unless the room holds them.
 *
 * Seqs in the outbox are always contiguous (only a prefix is ever removed: by
 * ack, or by the drop-oldest policy), so its size is `next - oldest`.
 *
 * Bound: at most `maxReadings` readings (default 1,000,000: 11.5 days at 1 Hz, about
 * 26 MB on disk). When full, the oldest readings are dropped to make room, counted in
 * `dropped` (persisted, reported to the room as `state.dropped`) and logged.
 * The room learns what is gone from `hello.oldest` and counts it as lost.
 *
 * The same file keeps the agent's small persisted state (desired scale and
 * interval) in `meta`, so a restarted device comes back in the scale it was told.
 *
 * A full (or failing, or read-only) disk never stops the agent and never costs a
 * reading that can still be sent (issue 13, item 5). SD cards fill up (journals, logs):
 *  - the file is opened with `locking_mode = EXCLUSIVE`, so the WAL index lives in
 *    this process's memory instead of an `-shm` file: creating and mapping that file
 *    is what failed at start on a full disk (`disk I/O error`, SQLITE_IOERR_SHMSIZE);
 *    an existing outbox opens and reads with no free byte. The price: no other
 *    process can read the file while the agent runs (stop it first, or read the room);
 *  - a write the disk refuses (SQLITE_FULL, an I/O error, a read-only remount) leaves
 *    the reading numbered and held in memory instead, at most `memoryMax` (5,000: 83
 *    minutes at 1 Hz, ~0.5 MB of heap); it is sent like any other, and an ack
 *    removes it from memory without it ever touching the disk. Past that bound the
 *    newest readings are refused (counted, not numbered, so seqs stay contiguous);
 *  - the cause is named (`no space left on device (SQLITE_FULL) in <dir>`), logged
 *    once per change and exposed as `problem` (the agent reports it to the room as
 *    `state.storageProblem`);
 *  - every `retryMs` (10 s) a write tries the disk again; the first that succeeds
 *    writes the held readings to the file, in seq order, in one transaction, with
 *    the acks and drops that could not be written meanwhile.
 *  What a crash in that state costs: the readings held only in memory (never on disk).
 *  Their seqs are then numbered again after the restart; when the room had stored and
 *  acked some of them, its ack on the next `hello` is past `next`, and the outbox
 *  continues after it (see `ack`), so no seq is given twice to what the room keeps.
 *  A room that stored them but had not yet committed (its group-commit window, at
 *  most ~15 s) takes the renumbered readings as duplicates: that window is the one
 *  loss a crash on a full disk can add.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, renameSync, statfsSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { z } from "zod";
import { LIMITS, SensorKind, type Reading } from "../party/protocol.ts";
import { errorText, throttle, type Logger } from "./log.ts";

export const DEFAULT_OUTBOX_MAX = 1_000_000;
/** Readings held in memory while the disk refuses writes (83 min at 1 Hz; ~100 bytes of heap each, measured: 480 KB for 5,000). */
export const DEFAULT_MEMORY_MAX = 5_000;
/** While the disk refuses writes, it is tried again at most this often. */
export const STORAGE_RETRY_MS = 10_000;
/**
 * Readings not acked this long are written to disk (twice the room's 15 s group commit;
 * see the top of this file). 0 is strict: every reading written before it is sent.
 */
export const DEFAULT_SPILL_MS = 30_000;
/**
 * The bound while the room batches (the link up, nobody watching). 150 s: one spill and one delete
 * per 5-minute batch, 116 B per reading over 10 minutes against the 200 B online target; 120 s (two
 * spills) measured 157-164 B, too little margin when two runs of the same case differ by a quarter.
 * The second spill is due a second after the batch goes: when the ack comes later it is written
 * too, costing what 120 s costs. bench --scenarios outbox; docs/device.md.
 */
export const DEFAULT_SPILL_UNWATCHED_MS = 150_000;
/** ...and at most this many wait in memory (30 s at the fastest sample interval, 100 ms). */
export const DEFAULT_SPILL_MAX = 300;
/** The highest seq handed out reaches the disk at least every this many readings (~17 min at 1 Hz). */
export const ISSUED_EVERY = 1_000;

export type OutboxOptions = {
  maxReadings?: number;
  /** Readings held in memory while the disk refuses writes (default DEFAULT_MEMORY_MAX). */
  memoryMax?: number;
  /** How often a refused disk is tried again (default STORAGE_RETRY_MS). */
  retryMs?: number;
  /** Unacked readings older than this are written to disk (default DEFAULT_SPILL_MS; 0: strict, every reading written at once). */
  spillMs?: number;
  /** While the room batches (see setBatching): unacked readings older than this are written (default DEFAULT_SPILL_UNWATCHED_MS; ignored when strict). */
  spillUnwatchedMs?: number;
  /** ...or once this many wait in memory (default DEFAULT_SPILL_MAX). */
  spillMax?: number;
  log: Logger;
  /** Injectable clock (ms) for the throttles and the spill deadline. */
  now?: () => number;
};

export type NewReading = Omit<Reading, "seq">;

/** The disk refuses writes and memory holds `memoryMax` readings already: this one is not kept (already logged). */
export class ReadingRefused extends Error {
  override name = "ReadingRefused";
}

type Statements = {
  insert: StatementSync;
  readAfter: StatementSync;
  deleteBelow: StatementSync;
  setMeta: StatementSync;
  getMeta: StatementSync;
};

export class Outbox {
  readonly path: string;
  readonly maxReadings: number;
  readonly memoryMax: number;
  /** 0: strict (every reading written at once). */
  readonly spillMs: number;
  /** The bound while the room batches (setBatching(true)); strict ignores it. */
  readonly spillUnwatchedMs: number;
  readonly spillMax: number;
  /** The room batches and the link is up: readings are held for the batch, so `spillUnwatchedMs` applies. */
  #batching = false;
  #stream: string;
  #db: DatabaseSync | null = null;
  #st: Statements | null = null;
  #log: Logger;
  #dropLogGate: () => boolean;
  #retryGate: () => boolean;
  #droppedSinceLog = 0;
  /** Lowest seq still held, or `#next` when empty. Rows below it may linger on disk while `#pruneDue`. */
  #oldest = 1;
  #next = 1;
  #dropped = 0;
  #closed = false;
  /** Numbered readings not on disk (not spilled yet, or refused by the disk): contiguous seqs, all above every row on disk. */
  #memory: Reading[] = [];
  /** When each reading in `#memory` was appended (`#now`), for the spill deadline. */
  #memoryAt: number[] = [];
  /** The highest seq the file knows was handed out (its sqlite_sequence or `issued`). */
  #diskIssued = 0;
  #spillTimer: ReturnType<typeof setTimeout> | undefined;
  /** The `issued` value in `#pendingMeta`, if any (it counts once written). */
  #pendingIssued: string | undefined;
  #now: () => number;
  /** Meta values (desired state, the drop count) the disk refused, written with the next good write. */
  #pendingMeta = new Map<string, string>();
  /** Acks or drops moved `#oldest` but their DELETE has not reached the disk yet. */
  #pruneDue = false;
  /** Why the disk refuses writes (undefined while it takes them). */
  #problem: string | undefined;
  /** Readings refused because the disk and the memory bound were both full. */
  #refused = 0;
  /** The error behind `#problem`, to rename it when memory fills. */
  #problemCause: unknown;

  constructor(path: string, opts: OutboxOptions) {
    this.path = path;
    this.maxReadings = opts.maxReadings ?? DEFAULT_OUTBOX_MAX;
    this.memoryMax = opts.memoryMax ?? DEFAULT_MEMORY_MAX;
    this.spillMs = opts.spillMs ?? DEFAULT_SPILL_MS;
    this.spillUnwatchedMs = opts.spillUnwatchedMs ?? DEFAULT_SPILL_UNWATCHED_MS;
    // Memory holds at most memoryMax while the disk refuses writes; a spill comes before that.
    this.spillMax = Math.min(opts.spillMax ?? DEFAULT_SPILL_MAX, this.memoryMax);
    for (const [name, v] of [["maxReadings", this.maxReadings], ["memoryMax", this.memoryMax], ["spillMax", this.spillMax]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`outbox: ${name} must be a positive integer, got ${v}`);
    }
    for (const [name, v] of [["spillMs", this.spillMs], ["spillUnwatchedMs", this.spillUnwatchedMs]] as const) {
      if (!Number.isInteger(v) || v < 0) throw new Error(`outbox: ${name} must be a whole number of ms ≥ 0, got ${v}`);
    }
    this.#now = opts.now ?? (() => performance.now());
    this.#log = opts.log;
    this.#dropLogGate = throttle(60_000, opts.now);
    this.#retryGate = throttle(opts.retryMs ?? STORAGE_RETRY_MS, opts.now);
    this.#retryGate(); // the first retry comes one interval after the first failure, not at once
    // A stream id for this run in case the file cannot be read; replaced by the file's own below.
    this.#stream = randomBytes(12).toString("base64url");
    this.#open();
  }

  /** Random id made with this outbox; the room maps it to its seq range (`hello.stream`). */
  get stream(): string {
    return this.#stream;
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

  /** Why the disk refuses writes (no space, read-only, I/O error), or undefined. */
  get problem(): string | undefined {
    return this.#problem;
  }

  /** Readings held only in memory now (numbered, not yet on disk: not spilled yet, or refused by the disk). */
  get inMemory(): number {
    return this.#memory.length;
  }

  /** How long an unacked reading waits in memory now: 0 when strict, `spillUnwatchedMs` while batching, else `spillMs`. */
  get spillAfterMs(): number {
    return this.spillMs === 0 ? 0 : this.#batching ? this.spillUnwatchedMs : this.spillMs;
  }

  /**
   * The sender says why readings wait: true while the link is up and the room batches
   * (readings are held for its delay, not lost in an ack), false while live or offline.
   * The new bound applies at once to what memory holds, deadlines counted from each
   * reading's append: shortened, readings already past it are written now.
   */
  setBatching(batching: boolean): void {
    if (batching === this.#batching) return;
    this.#batching = batching;
    if (this.#closed) return;
    clearTimeout(this.#spillTimer);
    this.#spillTimer = undefined;
    if (this.#problem === undefined && this.#spillDue()) this.#tryWrite(() => this.#commitPending());
    this.#armSpill();
  }

  /** Readings refused since start because the disk and the memory bound were full. */
  get refused(): number {
    return this.#refused;
  }

  /**
   * Number a reading and hold it in memory; strict (spillMs 0), or once a spill is
   * due, write memory to disk in one fsynced transaction. When the disk refuses,
   * memory holds it (at most memoryMax). When the outbox is full the oldest
   * readings go first. Throws ReadingRefused only when the disk refuses and memory is full.
   */
  append(reading: NewReading): Reading {
    const overflow = this.size + 1 - this.maxReadings;
    if (overflow > 0) this.#dropOldest(overflow);
    const stored: Reading = { seq: this.#next, ...reading };
    if (this.#problem !== undefined && this.#retryGate()) this.#recover();
    if (this.#problem !== undefined && this.#memory.length >= this.memoryMax) {
      this.#refused++;
      if (this.#refused === 1) this.#log.error(`Outbox: memory full too (${this.memoryMax} readings): new readings are lost until the disk takes writes again`);
      this.#problem = this.#describe(this.#problemCause);
      throw new ReadingRefused(this.#problem);
    }
    this.#memory.push(stored);
    this.#memoryAt.push(this.#now());
    this.#next = stored.seq + 1;
    if (this.#problem === undefined) {
      if (this.#spillDue()) this.#tryWrite(() => this.#commitPending());
      else if (stored.seq - this.#diskIssued >= ISSUED_EVERY) this.#markIssued();
    }
    this.#armSpill();
    return stored;
  }

  /** Up to `limit` readings with seq > `after`, in seq order (≤ LIMITS.maxBatch by default): disk first, then memory. */
  readAfter(after: number, limit: number = LIMITS.maxBatch): Reading[] {
    const from = Math.max(after, this.#oldest - 1);
    const firstInMemory = this.#memory[0]?.seq ?? this.#next;
    let rows: Reading[] = [];
    if (this.#st && from + 1 < firstInMemory) {
      try {
        rows = this.#st.readAfter.all(from, Math.min(limit, firstInMemory - 1 - from)) as Reading[];
      } catch (err) {
        // An unreadable file: what memory holds still goes; the rest is tried again next time.
        this.#refusedBy(err);
      }
    }
    // Memory seqs are contiguous, so the first one wanted is found by arithmetic.
    const start = Math.max(0, from + 1 - firstInMemory);
    for (let i = start; i < this.#memory.length && rows.length < limit; i++) rows.push(this.#memory[i]!);
    return rows;
  }

  /**
   * The room stored every seq ≤ `seq`: prune them. Returns how many were removed.
   *
   * An ack at or past `next` means the room holds seqs this outbox no longer knows:
   * readings numbered in memory (the disk was full) by a run that ended before they
   * reached the disk. Numbering goes on after them, so a new reading never reuses a
   * seq the room keeps (it would be taken for a duplicate and lost). Only as far as a
   * memory-held run could have gone: a wild ack is not followed to the end of the seq range.
   */
  ack(seq: number): number {
    if (seq >= this.#next) {
      // A crash loses at most memoryMax readings held for a full disk, or those numbered since `issued` was last written.
      if (seq < this.#next + this.memoryMax + ISSUED_EVERY) {
        this.#log.warn(`Outbox: the room acked seq ${seq}, past this outbox's last (${this.#next - 1}); numbering continues after it`);
        this.#next = seq + 1;
      } else {
        seq = this.#next - 1;
      }
    }
    if (seq < this.#oldest) return 0;
    const removed = seq - this.#oldest + 1;
    // Rows on disk are the seqs below the first in memory: an ack that reaches none of them costs no write.
    if (this.#oldest < (this.#memory[0]?.seq ?? this.#next)) this.#pruneDue = true;
    this.#oldest = seq + 1;
    this.#forgetBelow(this.#oldest);
    if (this.#problem !== undefined && this.#retryGate()) this.#recover();
    if (this.#problem === undefined && this.#pruneDue && this.#tryWrite(() => this.#st!.deleteBelow.run(this.#oldest))) this.#pruneDue = false;
    return removed;
  }

  /**
   * The source of this outbox's readings (`hello.source`): one outbox, one stream, one
   * source. A file from before `--sensor` has none and becomes the first one's that opens it.
   * False when the file already belongs to the other source (the agent then uses another file).
   */
  claimSource(source: SensorKind): boolean {
    const recorded = this.#meta("source");
    if (recorded !== undefined) return recorded === source;
    this.#pendingMeta.set("source", source);
    if (this.#problem === undefined) this.#tryWrite(() => this.#commitPending(false));
    return true;
  }

  /** The source claimed for this outbox (undefined before claimSource). */
  get source(): SensorKind | undefined {
    const recorded = SensorKind.safeParse(this.#meta("source"));
    return recorded.success ? recorded.data : undefined;
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

  /** Persisted with the next write the disk takes, if it refuses this one; read back at once either way. */
  setJson(key: string, value: unknown): void {
    this.#pendingMeta.set(`json:${key}`, JSON.stringify(value));
    // Meta only: readings held in memory are not due because the desired state changed.
    if (this.#problem === undefined) this.#tryWrite(() => this.#commitPending(false));
  }

  close(): void {
    // Own flag rather than DatabaseSync#isOpen, which Node 22.13 (the oldest this supports) lacks.
    if (this.#closed) return;
    clearTimeout(this.#spillTimer);
    // A clean stop loses nothing: what memory holds goes to disk (space may also have come back
    // since the last try); then say what is lost.
    if (this.#problem !== undefined) this.#recover();
    else if (this.#memory.length > 0 && this.#st) this.#tryWrite(() => this.#commitPending());
    // Readings acked from memory never reached the file: it learns the last seq, so the next run numbers after it.
    if (this.#problem === undefined && this.#st && this.#next - 1 > this.#diskIssued) this.#markIssued();
    this.#closed = true;
    if (this.#memory.length > 0) {
      this.#log.error(`Outbox: ${this.#memory.length} readings held in memory (seq ${this.#memory[0]!.seq}-${this.#next - 1}) are lost: ${this.#problem}`);
    }
    this.#db?.close();
  }

  // -------------------------------------------------------------------------
  // The file
  // -------------------------------------------------------------------------

  /** Open (or create) the file and take its stream, seqs and drop count. False when the disk refuses. */
  #open(): boolean {
    let db: DatabaseSync | undefined;
    try {
      if (this.path !== ":memory:") mkdirSync(dirname(this.path), { recursive: true });
      db = new DatabaseSync(this.path);
      // Before the first access, so SQLite never makes the -shm file (see the top of this file).
      db.exec("PRAGMA locking_mode = EXCLUSIVE");
      // Memory first: 1 KB pages (a new file only; an existing one keeps its size). A spill of
      // 30 readings fits one leaf page, so a group is a few KB of WAL frames: 8-11 KB of
      // write_bytes per spill measured, against 12 KB with 4 KB pages (bench --scenarios outbox).
      // Strict keeps SQLite's 4 KB: today's file, byte for byte.
      if (this.spillMs > 0) db.exec("PRAGMA page_size = 1024");
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = FULL");
      // A second agent on the same state directory waits, then fails with "database is locked".
      db.exec("PRAGMA busy_timeout = 5000");
      const has = (table: string) => db!.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
      // CREATE only when missing: on a full disk an existing outbox must open without a write.
      if (!has("readings")) {
        db.exec(`CREATE TABLE readings (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          ts INTEGER NOT NULL,
          temperature REAL NOT NULL,
          scale TEXT NOT NULL)`);
      }
      if (!has("meta")) db.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      const st: Statements = {
        setMeta: db.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
        getMeta: db.prepare("SELECT value FROM meta WHERE key = ?"),
        insert: db.prepare("INSERT INTO readings (seq, ts, temperature, scale) VALUES (?, ?, ?, ?)"),
        readAfter: db.prepare("SELECT seq, ts, temperature, scale FROM readings WHERE seq > ? ORDER BY seq LIMIT ?"),
        deleteBelow: db.prepare("DELETE FROM readings WHERE seq < ?"),
      };
      const fileStream = (st.getMeta.get("stream") as { value: string } | undefined)?.value;
      const inserted = (db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'readings'").get() as { seq: number } | undefined)?.seq ?? 0;
      // Memory first: readings acked from memory never became rows; `issued` says how far numbering went.
      const last = Math.max(inserted, Number((st.getMeta.get("issued") as { value: string } | undefined)?.value ?? 0));
      this.#diskIssued = last;
      const min = (db.prepare("SELECT MIN(seq) AS m FROM readings").get() as { m: number | null }).m;
      // Seqs given out before the file opened (it could not be read at start) are this run's stream.
      const started = this.#next > 1;
      if (started && fileStream !== undefined && fileStream !== this.#stream) {
        // This run began without the file (unreadable then) and numbered its readings in a stream
        // of its own; the file is another stream. Kept aside for a person, and a fresh one made.
        db.close();
        db = undefined;
        const aside = `${this.path}.set-aside-${Date.now()}`;
        renameSync(this.path, aside);
        this.#log.warn(`Outbox: ${this.path} could not be read when the agent started; moved to ${aside}`);
        return this.#open();
      }
      if (!started) {
        this.#dropped = Number((st.getMeta.get("dropped") as { value: string } | undefined)?.value ?? 0);
        this.#next = last + 1;
        this.#oldest = min ?? this.#next;
      }
      if (fileStream === undefined) this.#pendingMeta.set("stream", this.#stream);
      else this.#stream = fileStream;
      this.#db = db;
      this.#st = st;
      // A new file's stream id, and whatever was refused before it opened.
      if (this.#pendingMeta.size > 0 || this.#memory.length > 0) this.#commitPending();
      return true;
    } catch (err) {
      if (db && this.#db !== db) db.close();
      this.#refusedBy(err);
      return false;
    }
  }

  /** Try the disk again: open the file if it never opened, then write what memory holds. */
  #recover(): void {
    if (this.#closed && this.#db === null) return;
    if (this.#db === null && !this.#open()) return;
    const held = this.#memory;
    if (!this.#tryWrite(() => this.#commitPending())) return;
    const was = this.#problem;
    this.#problem = undefined;
    this.#problemCause = undefined;
    this.#refused = 0;
    this.#log.info(
      `Outbox: writing to disk again (was: ${was}); ${held.length} readings held in memory are now in ${this.path}`,
    );
  }

  /**
   * One transaction: the prune and the meta values not written yet (drop count, desired
   * state, `issued`), then every reading memory holds, in seq order: a spill, and what
   * a disk that refused writes gets once it takes them again.
   * Throws (nothing written) when the disk refuses.
   */
  #commitPending(withReadings = true): void {
    const st = this.#st!;
    const readings = withReadings ? this.#memory : [];
    this.#transaction(() => {
      if (this.#pruneDue) st.deleteBelow.run(this.#oldest);
      for (const [key, value] of this.#pendingMeta) st.setMeta.run(key, value);
      // Seq given explicitly: after an ack past `next` (see ack) SQLite's own counter is behind.
      for (const r of readings) st.insert.run(r.seq, r.ts, r.temperature, r.scale);
    });
    this.#pruneDue = false;
    this.#pendingMeta.clear();
    const issued = Math.max(readings.at(-1)?.seq ?? 0, Number(this.#pendingIssued ?? 0));
    if (issued > this.#diskIssued) this.#diskIssued = issued;
    this.#pendingIssued = undefined;
    if (withReadings) {
      this.#memory = [];
      this.#memoryAt = [];
    }
  }

  /** Due: the oldest reading in memory has waited the spill bound unacked (always, when strict), or `spillMax` wait. */
  #spillDue(): boolean {
    const first = this.#memoryAt[0];
    return first !== undefined && (this.#memory.length >= this.spillMax || this.#now() - first >= this.spillAfterMs);
  }

  /**
   * A timer for the oldest reading's deadline, so readings are spilled on time even when
   * no new one comes (a sensor gone missing) and nothing is acked (the link down).
   */
  #armSpill(): void {
    if (this.#spillTimer !== undefined || this.#closed || this.#memoryAt.length === 0 || this.#problem !== undefined) return;
    const wait = Math.max(0, this.#memoryAt[0]! + this.spillAfterMs - this.#now());
    this.#spillTimer = setTimeout(() => {
      this.#spillTimer = undefined;
      if (this.#closed || this.#problem !== undefined) return;
      if (this.#spillDue()) this.#tryWrite(() => this.#commitPending());
      this.#armSpill();
    }, wait);
    // The timer never keeps a process alive: close() spills whatever is left.
    this.#spillTimer.unref?.();
  }

  /** One small write: the highest seq handed out, so a crash never makes the next run reuse a seq the room keeps. */
  #markIssued(): void {
    this.#pendingIssued = String(this.#next - 1);
    this.#pendingMeta.set("issued", this.#pendingIssued);
    // Meta only: the readings in memory stay there (they are not due).
    this.#tryWrite(() => this.#commitPending(false));
  }

  /**
   * Run a write; true when the disk took it. What fills a small disk first is often the
   * WAL itself (SQLite lets it grow to ~4 MB before it checkpoints): on a refusal the WAL
   * is checkpointed into the file's free pages (acked rows leave them) and truncated,
   * and the write tried once more, before the outbox turns to memory.
   */
  #tryWrite(write: () => void): boolean {
    try {
      write();
      return true;
    } catch (err) {
      if (!isStorageError(err)) throw err;
      if (this.#checkpoint()) {
        try {
          write();
          return true;
        } catch (again) {
          this.#refusedBy(again);
          return false;
        }
      }
      this.#refusedBy(err);
      return false;
    }
  }

  /** PRAGMA wal_checkpoint(TRUNCATE): true when the WAL was emptied into the file. */
  #checkpoint(): boolean {
    try {
      const result = this.#db?.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get() as { busy: number } | undefined;
      return result?.busy === 0;
    } catch {
      // The file itself could not grow to take the WAL's pages: the disk is really full.
      return false;
    }
  }

  #transaction(fn: () => void): void {
    const db = this.#db!;
    db.exec("BEGIN IMMEDIATE");
    try {
      fn();
      db.exec("COMMIT");
    } catch (err) {
      // SQLite rolls a transaction back by itself on SQLITE_FULL and some I/O errors; a second
      // ROLLBACK then fails with "no transaction is active", which used to hide the real cause.
      try {
        db.exec("ROLLBACK");
      } catch {
        // Already rolled back by SQLite: nothing to undo, and the error worth reporting is `err`.
      }
      throw err;
    }
  }

  #meta(key: string): string | undefined {
    const pending = this.#pendingMeta.get(key);
    if (pending !== undefined || !this.#st) return pending;
    try {
      return (this.#st.getMeta.get(key) as { value: string } | undefined)?.value;
    } catch (err) {
      this.#refusedBy(err);
      return undefined;
    }
  }

  /** A write (or read) failed: a storage error puts the outbox in memory mode and names why; anything else is a bug and throws. */
  #refusedBy(err: unknown): void {
    if (!isStorageError(err)) throw err;
    const first = this.#problem === undefined;
    this.#problemCause = err;
    const problem = this.#describe(err);
    if (problem !== this.#problem) {
      this.#problem = problem;
      const free = freeBytes(dirname(this.path));
      const cause = `${storageCause(err, free)}${free === null ? "" : `, ${Math.floor(free / 1024)} KB free`} [${errorText(err)}]`;
      this.#log.error(
        first
          ? `Outbox: cannot write ${this.path}: ${cause}; readings are held in memory (at most ${this.memoryMax}) and written to it when it takes writes again`
          : `Outbox: still cannot write ${this.path}: ${cause}`,
      );
    }
  }

  /** The problem as the room hears it: stable while nothing changes (no byte counts), at most 200 characters. */
  #describe(err: unknown): string {
    const cause = storageCause(err, freeBytes(dirname(this.path)));
    const where = dirname(this.path);
    const tail =
      this.#refused > 0
        ? `memory full (${this.memoryMax} readings): newer readings are lost`
        : `readings held in memory (up to ${this.memoryMax})`;
    return `${cause} in ${where}: ${tail}`.slice(0, 200);
  }

  #dropOldest(count: number): void {
    const from = this.#oldest;
    this.#dropped += count;
    this.#oldest += count;
    this.#forgetBelow(this.#oldest);
    this.#pruneDue = true;
    this.#pendingMeta.set("dropped", String(this.#dropped));
    this.#droppedSinceLog += count;
    if (this.#dropLogGate()) {
      this.#log.warn(
        `Outbox full (${this.maxReadings} readings): dropped the oldest ${this.#droppedSinceLog} (latest up to seq ${from + count - 1}); ${this.#dropped} dropped in all`,
      );
      this.#droppedSinceLog = 0;
    }
  }

  /** Memory-held readings below `seq` are acked or dropped: they never need the disk. */
  #forgetBelow(seq: number): void {
    let n = 0;
    while (n < this.#memory.length && this.#memory[n]!.seq < seq) n++;
    if (n > 0) {
      this.#memory = this.#memory.slice(n);
      this.#memoryAt = this.#memoryAt.slice(n);
    }
  }
}

// ---------------------------------------------------------------------------
// Naming a storage failure
// ---------------------------------------------------------------------------

/** SQLite primary result codes and errno codes that mean "the disk will not take this write (now)". */
const SQLITE_CODES: Record<number, string> = { 8: "SQLITE_READONLY", 10: "SQLITE_IOERR", 13: "SQLITE_FULL", 14: "SQLITE_CANTOPEN" };
const ERRNO_CODES = new Set(["ENOSPC", "EDQUOT", "EROFS", "EIO", "EACCES", "EPERM"]);

export function isStorageError(err: unknown): boolean {
  const e = err as { errcode?: unknown; code?: unknown } | null;
  if (typeof e?.errcode === "number") return (e.errcode & 0xff) in SQLITE_CODES;
  return typeof e?.code === "string" && ERRNO_CODES.has(e.code);
}

/** "no space left on device (SQLITE_FULL)": the cause a person can act on, then the code. */
export function storageCause(err: unknown, free: number | null): string {
  const e = err as { errcode?: number; code?: string };
  const code = typeof e.errcode === "number" ? (SQLITE_CODES[e.errcode & 0xff] ?? `SQLite ${e.errcode}`) : (e.code ?? "error");
  // An I/O error on a file system with (next to) nothing free is a full disk: SQLite says
  // "disk I/O error" when it cannot grow its files, which hid the real cause before.
  if (code === "SQLITE_FULL" || code === "ENOSPC" || code === "EDQUOT" || (free !== null && free < 64 * 1024)) {
    return `no space left on device (${code})`;
  }
  if (code === "SQLITE_READONLY" || code === "EROFS") return `read-only file system (${code})`;
  if (code === "SQLITE_CANTOPEN" || code === "EACCES" || code === "EPERM") return `cannot open the outbox file: check the state directory's owner and permissions (${code})`;
  return `disk I/O error (${code})`;
}

/** Bytes an unprivileged process may still write on the file system holding `dir` (null: unknown). */
export function freeBytes(dir: string): number | null {
  try {
    const s = statfsSync(existsSync(dir) ? dir : dirname(dir));
    return s.bavail * s.bsize;
  } catch {
    // No such directory yet, or statfs unsupported: the cause is named from the error alone.
    return null;
  }
}
