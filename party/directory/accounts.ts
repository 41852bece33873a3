/**
 * Named accounts: a name, a role, and the SHA-256 of the account's token (the token itself was
 * shown once, at creation, and is kept nowhere), as a device's credentials are kept in its room.
 * The built-in `admin` and `viewer` accounts are not rows: they are ADMIN_TOKEN and VIEWER_TOKEN,
 * checked by the Worker.
 */
import type { Account, AccountRole } from "../protocol";
import { timingSafeEqualHex } from "../room/credentials";

type AccountRow = { name: string; role: AccountRole; token_hash: string; created_at: number; created_by: string };

export class AccountsStore {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS accounts (name TEXT PRIMARY KEY, role TEXT NOT NULL,
      token_hash TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL)`);
  }

  /** A new account; false if the name is taken. */
  add(name: string, role: AccountRole, tokenHash: string, by: string, now: number): boolean {
    return (
      this.#sql.exec(
        "INSERT OR IGNORE INTO accounts (name, role, token_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
        name,
        role,
        tokenHash,
        now,
        by,
      ).rowsWritten > 0
    );
  }

  remove(name: string): AccountRole | null {
    const row = this.#row(name);
    if (!row) return null;
    this.#sql.exec("DELETE FROM accounts WHERE name = ?", name);
    return row.role;
  }

  /** The account's role if `tokenHash` is its token's, else null (unknown name or wrong token). */
  verify(name: string, tokenHash: string): AccountRole | null {
    const row = this.#row(name);
    return row && timingSafeEqualHex(row.token_hash, tokenHash) ? row.role : null;
  }

  exists(name: string): boolean {
    return this.#row(name) !== null;
  }

  list(): Account[] {
    return this.#sql
      .exec<AccountRow>("SELECT * FROM accounts ORDER BY name")
      .toArray()
      .map((r) => ({ name: r.name, role: r.role, builtin: false, createdAt: r.created_at, createdBy: r.created_by }));
  }

  #row(name: string): AccountRow | null {
    return this.#sql.exec<AccountRow>("SELECT * FROM accounts WHERE name = ?", name).toArray()[0] ?? null;
  }
}
