/**
 * Server-side sessions. The cookie carries `<id>.<secret>` (signed); a row keeps the id, the
 * secret's SHA-256, whose session it is and from where it was opened. Ending a session deletes
 * its row, so the same cookie replayed afterwards is refused, however long it had left.
 *
 * `generation` is set for the built-in accounts only: the first 16 hex of their token's SHA-256
 * when they signed in, so changing ADMIN_TOKEN or VIEWER_TOKEN ends the sessions made with the old one.
 */
import type { AccountRole, SessionInfo } from "../protocol";
import { timingSafeEqualHex } from "../room/credentials";

type SessionRow = {
  id: string;
  secret_hash: string;
  account: string;
  role: AccountRole;
  generation: string | null;
  created_at: number;
  last_used: number;
  expires_at: number;
  user_agent: string;
  address: string;
};

export type NewSession = {
  id: string;
  secretHash: string;
  account: string;
  role: AccountRole;
  generation: string | null;
  expiresAt: number;
  userAgent: string;
  address: string;
};

/** What a request authenticated by a session learns about it. */
export type LiveSession = { id: string; account: string; role: AccountRole; generation: string | null; expiresAt: number };

/** Live sessions one account may hold; signing in past it ends its least recently used one. */
export const MAX_SESSIONS_PER_ACCOUNT = 20;
/**
 * `last_used` is rewritten at most this often per session: it answers "is this session still in
 * use", which a minute's precision answers, and a row written per request would be billed per request.
 */
export const LAST_USED_PRECISION_MS = 60_000;

export class SessionsStore {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL,
      account TEXT NOT NULL, role TEXT NOT NULL, generation TEXT, created_at INTEGER NOT NULL,
      last_used INTEGER NOT NULL, expires_at INTEGER NOT NULL, user_agent TEXT NOT NULL, address TEXT NOT NULL)`);
    sql.exec("CREATE INDEX IF NOT EXISTS sessions_account ON sessions (account, last_used)");
  }

  /** Open a session; expired ones go first, and the account's oldest beyond the cap. */
  open(s: NewSession, now: number): void {
    this.#sql.exec("DELETE FROM sessions WHERE expires_at <= ?", now);
    this.#sql.exec(
      `DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE account = ?
        ORDER BY last_used DESC LIMIT -1 OFFSET ?)`,
      s.account,
      MAX_SESSIONS_PER_ACCOUNT - 1,
    );
    this.#sql.exec(
      `INSERT INTO sessions (id, secret_hash, account, role, generation, created_at, last_used, expires_at, user_agent, address)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      s.id,
      s.secretHash,
      s.account,
      s.role,
      s.generation,
      now,
      now,
      s.expiresAt,
      s.userAgent,
      s.address,
    );
  }

  /** The session if `secretHash` matches and it has not expired; marks it used. */
  use(id: string, secretHash: string, now: number): LiveSession | null {
    const row = this.#row(id);
    if (!row || row.expires_at <= now || !timingSafeEqualHex(row.secret_hash, secretHash)) return null;
    if (now - row.last_used >= LAST_USED_PRECISION_MS) {
      this.#sql.exec("UPDATE sessions SET last_used = ? WHERE id = ?", now, id);
    }
    return { id: row.id, account: row.account, role: row.role, generation: row.generation, expiresAt: row.expires_at };
  }

  /** Whether `secretHash` is this live session's secret (without marking it used). */
  verify(id: string, secretHash: string, now: number): SessionInfo | null {
    const row = this.#row(id);
    return row && row.expires_at > now && timingSafeEqualHex(row.secret_hash, secretHash) ? info(row, null) : null;
  }

  get(id: string): SessionInfo | null {
    const row = this.#row(id);
    return row ? info(row, null) : null;
  }

  end(id: string): boolean {
    return this.#sql.exec("DELETE FROM sessions WHERE id = ?", id).rowsWritten > 0;
  }

  endAll(account: string): number {
    return this.#sql.exec("DELETE FROM sessions WHERE account = ?", account).rowsWritten;
  }

  /** Live sessions, most recently used first: one account's, or everyone's (`account` null). */
  list(account: string | null, current: string | null, now: number): SessionInfo[] {
    const rows =
      account === null
        ? this.#sql.exec<SessionRow>("SELECT * FROM sessions WHERE expires_at > ? ORDER BY last_used DESC, id", now)
        : this.#sql.exec<SessionRow>(
            "SELECT * FROM sessions WHERE account = ? AND expires_at > ? ORDER BY last_used DESC, id",
            account,
            now,
          );
    return rows.toArray().map((r) => info(r, current));
  }

  #row(id: string): SessionRow | null {
    return this.#sql.exec<SessionRow>("SELECT * FROM sessions WHERE id = ?", id).toArray()[0] ?? null;
  }
}

function info(row: SessionRow, current: string | null): SessionInfo {
  return {
    id: row.id,
    account: row.account,
    role: row.role,
    createdAt: row.created_at,
    lastUsed: row.last_used,
    expiresAt: row.expires_at,
    userAgent: row.user_agent,
    address: row.address,
    current: row.id === current,
  };
}
