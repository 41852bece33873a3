/**
 * The directory: operators and viewers as people. One Durable Object (`directory`) keeps, in its
 * SQLite storage, the named accounts (party/directory/accounts.ts), their server-side sessions
 * (sessions.ts) and the audit trail of every change (audit.ts).
 *
 * One object for the whole deployment, on purpose: accounts and sessions are few (people, not
 * devices), and the audit trail is one ordered history. What it costs per request:
 *  - a bearer ADMIN_TOKEN / VIEWER_TOKEN: nothing here (the Worker compares them itself);
 *  - a cookie session or a named account's bearer token: one call (`useSession`, `verifyAccount`),
 *    which writes a row at most once a minute per session (`last_used`);
 *  - a change (provision, command, …): one more call, to record it.
 *
 * Every change to the directory's own state writes its audit row in the same transaction, so
 * an account added, a session ended or a sign-in is never without its record.
 */
import { DurableObject } from "cloudflare:workers";
import type { Account, AccountRole, AuditPage, AuditQuery, SessionInfo } from "./protocol";
import { AccountsStore } from "./directory/accounts";
import { AuditStore, type Actor, type NewAuditEntry } from "./directory/audit";
import { SessionsStore, type LiveSession, type NewSession } from "./directory/sessions";

export type { Actor, NewAuditEntry } from "./directory/audit";
export type { LiveSession, NewSession } from "./directory/sessions";

/** The one directory object. */
export function directory(env: Env): DurableObjectStub<Directory> {
  return env.DIRECTORY.getByName("directory");
}

export class Directory extends DurableObject<Env> {
  readonly #accounts: AccountsStore;
  readonly #sessions: SessionsStore;
  readonly #audit: AuditStore;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    this.#accounts = new AccountsStore(sql);
    this.#sessions = new SessionsStore(sql);
    this.#audit = new AuditStore(sql);
  }

  // -------------------------------------------------------------------------
  // Accounts
  // -------------------------------------------------------------------------

  /** A new account with its token's hash; null if the name is taken. */
  addAccount(name: string, role: AccountRole, tokenHash: string, by: Actor): Account | null {
    return this.#change(() => {
      const now = Date.now();
      if (!this.#accounts.add(name, role, tokenHash, by.actor, now)) return null;
      this.#audit.record({ ...by, action: "account.add", target: name, detail: { role } }, now);
      return { name, role, builtin: false, createdAt: now, createdBy: by.actor };
    });
  }

  /** Remove an account and end all its sessions at once; null if there was none. */
  removeAccount(name: string, by: Actor): { name: string; sessionsEnded: number } | null {
    return this.#change(() => {
      const now = Date.now();
      const role = this.#accounts.remove(name);
      if (role === null) return null;
      const sessionsEnded = this.#sessions.endAll(name);
      this.#audit.record({ ...by, action: "account.remove", target: name, detail: { role, sessionsEnded } }, now);
      return { name, sessionsEnded };
    });
  }

  listAccounts(): Account[] {
    return this.#accounts.list();
  }

  /** The role of a named account's bearer token, or null. */
  verifyAccount(name: string, tokenHash: string): AccountRole | null {
    return this.#accounts.verify(name, tokenHash);
  }

  // -------------------------------------------------------------------------
  // Sessions
  // -------------------------------------------------------------------------

  /**
   * Sign a named account in with its token: a session and a `login` row, or a `login.failed`
   * row and null. The reason stays in the audit trail; the caller only learns "wrong token".
   */
  signIn(name: string, tokenHash: string, session: Omit<NewSession, "account" | "role" | "generation">): AccountRole | null {
    return this.#change(() => {
      const now = Date.now();
      const role = this.#accounts.verify(name, tokenHash);
      if (role === null) {
        const reason = this.#accounts.exists(name) ? "wrong token" : "no such account";
        this.#audit.record({ actor: name, role: null, address: session.address, action: "login.failed", detail: { reason } }, now);
        return null;
      }
      this.#open({ ...session, account: name, role, generation: null }, now);
      return role;
    });
  }

  /** A session for a caller the Worker has already verified (the built-in accounts). */
  openSession(session: NewSession): void {
    this.#change(() => this.#open(session, Date.now()));
  }

  /** The session behind a cookie, or null (unknown, ended, expired, wrong secret). */
  useSession(id: string, secretHash: string): LiveSession | null {
    return this.#sessions.use(id, secretHash, Date.now());
  }

  /** Sign out: the cookie's own session ends, with a `logout` row. False if it was not live. */
  logout(id: string, secretHash: string, address: string | null): boolean {
    return this.#change(() => {
      const now = Date.now();
      const session = this.#sessions.verify(id, secretHash, now);
      if (!session) return false;
      this.#sessions.end(id);
      this.#audit.record({ actor: session.account, role: session.role, address, action: "logout", target: `session:${id}` }, now);
      return true;
    });
  }

  /**
   * End one session by id (`DELETE /api/sessions/:id`). `owner` limits it to that account's
   * sessions (a viewer ends only their own); null when there is no such session for them.
   */
  revokeSession(id: string, owner: string | null, by: Actor): SessionInfo | null {
    return this.#change(() => {
      const now = Date.now();
      const session = this.#sessions.get(id);
      if (!session || (owner !== null && session.account !== owner)) return null;
      this.#sessions.end(id);
      this.#audit.record({ ...by, action: "session.revoke", target: `session:${id}`, detail: { account: session.account } }, now);
      return session;
    });
  }

  /** Live sessions: one account's, or everyone's (`account` null). `current` is marked. */
  listSessions(account: string | null, current: string | null): SessionInfo[] {
    return this.#sessions.list(account, current, Date.now());
  }

  // -------------------------------------------------------------------------
  // Audit
  // -------------------------------------------------------------------------

  /** Record a change made elsewhere (a device provisioned, a command sent). */
  record(entry: NewAuditEntry): number {
    return this.#audit.record(entry, Date.now());
  }

  auditPage(query: AuditQuery): AuditPage {
    return this.#audit.page(query);
  }

  #open(session: NewSession, now: number): void {
    this.#sessions.open(session, now);
    this.#audit.record(
      { actor: session.account, role: session.role, address: session.address, action: "login", target: `session:${session.id}` },
      now,
    );
  }

  /** One transaction: a change and its audit row are stored together or not at all. */
  #change<T>(fn: () => T): T {
    return this.ctx.storage.transactionSync(fn);
  }
}
