/**
 * Streams: one per agent outbox. An agent numbers its readings from 1 in its
 * own outbox; the room maps them onto its own monotonic seq by an offset, so
 * an agent whose state was wiped (seq 1 again) continues after everything
 * stored instead of colliding with it. Each new stream id is one row.
 */
import type { Meter } from "./meter";

export type Stream = { id: string; offset: number };

/**
 * Streams remembered per room. A hello with a new stream id is one row; without a bound, a
 * device (or a stolen token) saying hello with a fresh id each time grows the table forever.
 * A stream older than the last KEEP_STREAMS is treated as new if it ever comes back, which
 * only moves its seqs after everything stored (nothing is overwritten or lost).
 */
export const KEEP_STREAMS = 20;

export class StreamsTable {
  readonly #sql: SqlStorage;
  readonly #kv: SyncKvStorage;
  readonly #meter: Meter;

  constructor(sql: SqlStorage, kv: SyncKvStorage, meter: Meter) {
    this.#sql = sql;
    this.#kv = kv;
    this.#meter = meter;
    sql.exec("CREATE TABLE IF NOT EXISTS streams (id TEXT PRIMARY KEY, offset INTEGER NOT NULL, created INTEGER NOT NULL)");
  }

  /** The stream the device last said hello with (it survives a restart of the room). */
  current(): Stream | null {
    const id = this.#kv.get<string>("stream");
    return id ? this.get(id) : null;
  }

  get(id: string): Stream | null {
    const row = this.#sql.exec<{ offset: number }>("SELECT offset FROM streams WHERE id = ?", id).toArray()[0];
    return row ? { id, offset: row.offset } : null;
  }

  /** Record a new stream starting after `offset`. */
  add(id: string, offset: number, now: number): Stream {
    this.#meter.wrote(this.#sql.exec("INSERT INTO streams (id, offset, created) VALUES (?, ?, ?)", id, offset, now));
    this.#meter.wrote(
      this.#sql.exec("DELETE FROM streams WHERE id NOT IN (SELECT id FROM streams ORDER BY created DESC, rowid DESC LIMIT ?)", KEEP_STREAMS),
    );
    return { id, offset };
  }

  /** Remember which stream is current; written only when it changes. */
  makeCurrent(stream: Stream): void {
    if (this.#kv.get<string>("stream") === stream.id) return;
    this.#kv.put("stream", stream.id);
    this.#meter.row();
  }
}
