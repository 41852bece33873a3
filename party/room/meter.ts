/**
 * What a room costs, counted as Cloudflare bills a SQLite-backed Durable
 * Object: rows written (every row an INSERT, UPDATE or DELETE touches, a KV
 * put, and an alarm set: "each setAlarm is billed as a single row written",
 * Durable Objects pricing), requests (RPC calls, HTTP requests, alarm invocations, and
 * WebSocket messages received at 20:1). In memory only: a wake from
 * hibernation starts the count afresh (`since` says when).
 *
 * The bench reads these through `GET /api/devices/:id/stats` to report rows
 * written and requests per stored reading.
 */
import type { RoomStats } from "../protocol";

export class Meter {
  readonly since = Date.now();
  readingsStored = 0;
  rowsWritten = 0;
  commits = 0;
  alarms = 0;
  framesIn = 0;
  calls = 0;

  /** Count the rows a write statement touched; returns the cursor for chaining. */
  wrote<T extends Record<string, SqlStorageValue>>(cursor: SqlStorageCursor<T>): SqlStorageCursor<T> {
    this.rowsWritten += cursor.rowsWritten;
    return cursor;
  }

  /** A KV put or an alarm set: one row each. */
  row(n = 1): void {
    this.rowsWritten += n;
  }

  stats(extra: Pick<RoomStats, "watchers" | "batchingMs">): RoomStats {
    return {
      since: this.since,
      readingsStored: this.readingsStored,
      rowsWritten: this.rowsWritten,
      commits: this.commits,
      alarms: this.alarms,
      framesIn: this.framesIn,
      calls: this.calls,
      ...extra,
    };
  }
}
