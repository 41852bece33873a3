/**
 * The audit trail: one row per change — who (an account, a device), when, from which address,
 * what and to which target — in the order they happened (`seq`). Read newest first, in pages.
 *
 * Retention is by count, not by trust in anyone's numbers: the newest AUDIT_KEEP.rows changes,
 * and failed sign-ins separately (the newest AUDIT_KEEP.failedSignIns), so a flood of wrong
 * guesses from many addresses can push out only older failed sign-ins, never the record of
 * what was changed; and nothing older than AUDIT_KEEP.ms. Pruned every PRUNE_EVERY rows, so the
 * table may hold that many more for a moment.
 */
import type { AuditAction, AuditEntry, AuditPage, AuditQuery } from "../protocol";

export const AUDIT_KEEP = {
  rows: 10_000,
  failedSignIns: 1_000,
  ms: 90 * 24 * 3600 * 1000,
};
const PRUNE_EVERY = 100;

/** Who did it, and from where: what the Worker knows about a caller. */
export type Actor = { actor: string; role: AuditEntry["role"]; address: string | null };

export type NewAuditEntry = Actor & {
  action: AuditAction;
  target?: string | null;
  detail?: Record<string, unknown> | null;
};

type AuditRow = {
  seq: number;
  ts: number;
  actor: string;
  role: AuditEntry["role"];
  address: string | null;
  action: AuditAction;
  target: string | null;
  detail: string | null;
};

export class AuditStore {
  readonly #sql: SqlStorage;
  readonly #keep: typeof AUDIT_KEEP;

  constructor(sql: SqlStorage, keep: typeof AUDIT_KEEP = AUDIT_KEEP) {
    this.#sql = sql;
    this.#keep = keep;
    sql.exec(`CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL,
      actor TEXT NOT NULL, role TEXT, address TEXT, action TEXT NOT NULL, target TEXT, detail TEXT)`);
    // The two retention classes, each walkable newest-first without a scan.
    sql.exec("CREATE INDEX IF NOT EXISTS audit_failed ON audit (seq) WHERE action = 'login.failed'");
    sql.exec("CREATE INDEX IF NOT EXISTS audit_changes ON audit (seq) WHERE action <> 'login.failed'");
  }

  record(entry: NewAuditEntry, now: number): number {
    const seq = this.#sql
      .exec<{ seq: number }>(
        "INSERT INTO audit (ts, actor, role, address, action, target, detail) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq",
        now,
        entry.actor,
        entry.role,
        entry.address,
        entry.action,
        entry.target ?? null,
        entry.detail ? JSON.stringify(entry.detail) : null,
      )
      .one().seq;
    if (seq % PRUNE_EVERY === 0) this.prune(now);
    console.log(`audit: ${entry.action} by ${entry.actor}${entry.target ? ` on ${entry.target}` : ""} from ${entry.address ?? "?"}`);
    return seq;
  }

  /** Newest first: up to `limit` rows older than `cursor` (the previous page's last seq). */
  page(query: AuditQuery): AuditPage {
    const rows = this.#sql
      .exec<AuditRow>(
        "SELECT * FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT ?",
        query.cursor ?? Number.MAX_SAFE_INTEGER,
        query.limit + 1,
      )
      .toArray();
    const entries = rows.slice(0, query.limit).map(entryFromRow);
    return { entries, next: rows.length > query.limit ? entries[entries.length - 1]!.seq : null };
  }

  prune(now: number): void {
    const keepFrom = (where: string, keep: number) =>
      this.#sql
        .exec<{ seq: number }>(`SELECT seq FROM audit WHERE ${where} ORDER BY seq DESC LIMIT 1 OFFSET ?`, keep - 1)
        .toArray()[0]?.seq ?? 0;
    const changes = keepFrom("action <> 'login.failed'", this.#keep.rows);
    const failed = keepFrom("action = 'login.failed'", this.#keep.failedSignIns);
    this.#sql.exec("DELETE FROM audit WHERE action <> 'login.failed' AND seq < ?", changes);
    this.#sql.exec("DELETE FROM audit WHERE action = 'login.failed' AND seq < ?", failed);
    // Rows are in time order by seq: the oldest go while they are too old.
    this.#sql.exec("DELETE FROM audit WHERE seq IN (SELECT seq FROM audit WHERE ts < ? ORDER BY seq LIMIT 1000)", now - this.#keep.ms);
  }
}

function entryFromRow(row: AuditRow): AuditEntry {
  let detail: Record<string, unknown> | null = null;
  if (row.detail !== null) {
    try {
      detail = JSON.parse(row.detail) as Record<string, unknown>;
    } catch {
      // Only this store writes the column, always JSON; a damaged row still shows who and what.
      detail = { unreadable: true };
    }
  }
  return {
    seq: row.seq,
    ts: row.ts,
    actor: row.actor,
    role: row.role,
    address: row.address,
    action: row.action,
    target: row.target,
    detail,
  };
}
