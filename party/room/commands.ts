/**
 * Commands: what operators asked a device to do, with their lifecycle
 * queued → delivered → applied / failed / timed-out. One row per command,
 * the latest KEEP_COMMANDS kept for the dashboard's history.
 *
 * A queued command (device offline) waits without a deadline: the device gets
 * it when it returns, so "timed out" would be false. The time-out runs from
 * delivery, for as long as the deadline given at insert allowed.
 */
import type { CommandBody, CommandRecord, CommandStatus } from "../protocol";
import type { Meter } from "./meter";

/** Commands kept for the dashboard's history; older ones are pruned. */
export const KEEP_COMMANDS = 50;

type CommandRow = {
  id: string;
  body: string;
  status: string;
  error: string | null;
  created: number;
  updated: number;
  delivered: number | null;
  /** When the device says it applied it (its `result.appliedAt`); NULL for older agents and rows. */
  applied: number | null;
};

const COLUMNS = "id, body, status, error, created, updated, delivered, applied";

export class CommandsStore {
  readonly #sql: SqlStorage;
  readonly #meter: Meter;
  /** A command was inserted since the last prune (in memory: a wake prunes once, harmlessly). */
  #added = true;
  /** The earliest open deadline, once asked (undefined: ask SQLite); every change forgets it. */
  #nextDeadline: number | null | undefined;

  constructor(sql: SqlStorage, meter: Meter) {
    this.#sql = sql;
    this.#meter = meter;
    sql.exec(`CREATE TABLE IF NOT EXISTS commands (
      id TEXT PRIMARY KEY, body TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
      created INTEGER NOT NULL, updated INTEGER NOT NULL, deadline INTEGER NOT NULL, delivered INTEGER, applied INTEGER)`);
    // Rooms made before the delivery (then the device's apply) time was kept: add the column (NULL: not known for older rows).
    for (const column of ["delivered", "applied"]) {
      if (sql.exec("SELECT 1 FROM pragma_table_info('commands') WHERE name = ?", column).toArray().length === 0) {
        sql.exec(`ALTER TABLE commands ADD COLUMN ${column} INTEGER`);
      }
    }
  }

  get(id: string): CommandRecord | undefined {
    const row = this.#sql
      .exec<CommandRow>(`SELECT ${COLUMNS} FROM commands WHERE id = ?`, id)
      .toArray()[0];
    return row && commandFromRow(row);
  }

  /** Newest first. */
  recent(): CommandRecord[] {
    return this.#sql
      .exec<CommandRow>(`SELECT ${COLUMNS} FROM commands ORDER BY created DESC, rowid DESC LIMIT ?`, KEEP_COMMANDS)
      .toArray()
      .map(commandFromRow);
  }

  /** Oldest first: the order they go to a device that reconnects (a scan of the ≤ 50 kept rows). */
  queued(): CommandRecord[] {
    return this.#sql
      .exec<CommandRow>(`SELECT ${COLUMNS} FROM commands WHERE status = 'queued' ORDER BY created, rowid`)
      .toArray()
      .map(commandFromRow);
  }

  insert(id: string, command: CommandBody, now: number, deadline: number): void {
    this.#meter.wrote(
      this.#sql.exec(
        "INSERT INTO commands (id, body, status, error, created, updated, deadline) VALUES (?, ?, 'queued', NULL, ?, ?, ?)",
        id,
        JSON.stringify(command),
        now,
        now,
        deadline,
      ),
    );
    this.#added = true;
    this.#nextDeadline = undefined;
  }

  /** `appliedAt`: the device's own time of applying it, from its `result` (kept as given; the room cannot check it). */
  setStatus(id: string, status: CommandStatus, error: string | undefined, now: number, appliedAt?: number): CommandRecord | undefined {
    this.#nextDeadline = undefined;
    // Delivery starts the time-out (deadline − created is how long it may take) and is the trace's second step.
    const delivered = status === "delivered";
    this.#meter.wrote(
      this.#sql.exec(
        `UPDATE commands SET status = ?, error = ?, updated = ?,
           delivered = CASE WHEN ? THEN ? ELSE delivered END,
           applied = COALESCE(?, applied),
           deadline = CASE WHEN ? THEN ? + (deadline - created) ELSE deadline END
         WHERE id = ?`,
        status,
        error ?? null,
        now,
        delivered ? 1 : 0,
        now,
        appliedAt ?? null,
        delivered ? 1 : 0,
        now,
        id,
      ),
    );
    return this.get(id);
  }

  /** Ids of commands delivered and not answered by their deadline (queued ones wait for the device). */
  overdue(now: number): string[] {
    return this.#sql
      .exec<{ id: string }>("SELECT id FROM commands WHERE status = 'delivered' AND deadline <= ?", now)
      .toArray()
      .map((r) => r.id);
  }

  /** The earliest deadline of a delivered command still unanswered, or null. */
  nextDeadline(): number | null {
    if (this.#nextDeadline === undefined) {
      this.#nextDeadline = this.#sql
        .exec<{ d: number | null }>("SELECT MIN(deadline) AS d FROM commands WHERE status = 'delivered'")
        .one().d;
    }
    return this.#nextDeadline;
  }

  /** Keep only the latest commands (only after new ones came: otherwise nothing to prune). */
  prune(): void {
    if (!this.#added) return;
    this.#added = false;
    this.#meter.wrote(
      this.#sql.exec("DELETE FROM commands WHERE id NOT IN (SELECT id FROM commands ORDER BY created DESC, rowid DESC LIMIT ?)", KEEP_COMMANDS),
    );
  }
}

function commandFromRow(row: CommandRow): CommandRecord {
  return {
    id: row.id,
    command: JSON.parse(row.body) as CommandBody, // written by insert() from a parsed CommandBody
    status: row.status as CommandStatus,
    ...(row.error ? { error: row.error } : {}),
    createdAt: row.created,
    ...(row.delivered !== null ? { deliveredAt: row.delivered } : {}),
    ...(row.applied !== null ? { appliedAt: row.applied } : {}),
    updatedAt: row.updated,
  };
}
