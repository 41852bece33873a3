/**
 * People and what they did, kept by the directory (party/directory.ts):
 *
 *   GET    /api/accounts                    operator → {accounts} (the built-in admin and viewer first)
 *   POST   /api/accounts   {name, role}     operator → {name, role, token} (the token is shown once)
 *   DELETE /api/accounts/:name              operator; its token and every session of it stop at once
 *   GET    /api/sessions                    viewer: their own live sessions; operator: everyone's
 *   DELETE /api/sessions/:id                viewer: one of their own; operator: any
 *   GET    /api/audit                       operator (?cursor=SEQ&limit=N) → {entries, next}, newest first
 */
import { Hono } from "hono";
import { z } from "zod";
import { directory } from "../../party/directory";
import {
  AccountCreateRequest,
  AccountName,
  AuditQuery,
  SessionId,
  type Account,
  type AccountsList,
  type AccountTokenResponse,
  type AuditPage,
  type SessionInfo,
  type SessionsList,
} from "../../party/protocol";
import { actorOf, hashSecret, newAccountToken, requireRole, type AuthEnv, type Principal } from "../auth";
import { ApiError } from "../errors";
import { validate, validateJson } from "../validate";

/** The bootstrap tokens as accounts: configured as secrets, so listed but never added or removed here. */
function builtinAccounts(env: Env): Account[] {
  const builtin = (name: string, role: Account["role"]): Account => ({ name, role, builtin: true, createdAt: null, createdBy: null });
  return env.VIEWER_TOKEN ? [builtin("admin", "operator"), builtin("viewer", "viewer")] : [builtin("admin", "operator")];
}

/** A person's principal (never a device's: devices are refused by requireRole before this). */
function person(p: Principal): Extract<Principal, { account: string }> {
  if (p.role === "device") throw new ApiError(403, "forbidden", "devices have no account");
  return p;
}

export const accounts = new Hono<AuthEnv>()
  .get("/accounts", requireRole("operator"), async (c) =>
    c.json({ accounts: [...builtinAccounts(c.env), ...(await directory(c.env).listAccounts())] } satisfies AccountsList),
  )
  .post("/accounts", requireRole("operator"), validateJson(AccountCreateRequest), async (c) => {
    const { name, role } = c.req.valid("json");
    const { token, secret } = newAccountToken(name);
    const added = await directory(c.env).addAccount(name, role, await hashSecret(secret), actorOf(c));
    if (!added) throw new ApiError(409, "account_exists", `there is already an account ${name}; remove it first to issue a new token`);
    return c.json({ name, role, token } satisfies AccountTokenResponse, 201);
  })
  .delete("/accounts/:name", requireRole("operator"), validate("param", z.object({ name: AccountName })), async (c) => {
    const { name } = c.req.valid("param");
    if (builtinAccounts(c.env).some((a) => a.name === name)) {
      const secret = name === "admin" ? "ADMIN_TOKEN" : "VIEWER_TOKEN (it may be unset)";
      throw new ApiError(409, "builtin_account", `${name} is the bootstrap token ${secret} in the endpoint's secrets: change it there`);
    }
    const removed = await directory(c.env).removeAccount(name, actorOf(c));
    if (!removed) throw new ApiError(404, "unknown_account", `no account ${name}`);
    return c.json(removed);
  })
  .get("/sessions", requireRole("viewer"), async (c) => {
    const me = person(c.get("principal"));
    const sessions: SessionInfo[] = await directory(c.env).listSessions(me.role === "operator" ? null : me.account, me.session ?? null);
    return c.json({ sessions } satisfies SessionsList);
  })
  .delete("/sessions/:id", requireRole("viewer"), validate("param", z.object({ id: SessionId })), async (c) => {
    const me = person(c.get("principal"));
    const { id } = c.req.valid("param");
    const ended = await directory(c.env).revokeSession(id, me.role === "operator" ? null : me.account, actorOf(c));
    // A viewer asking for someone else's session hears the same as for none: ids are not confirmed.
    if (!ended) throw new ApiError(404, "unknown_session", `no live session ${id}${me.role === "operator" ? "" : " of yours"}`);
    return c.json({ id, account: ended.account, revoked: true });
  })
  .get("/audit", requireRole("operator"), validate("query", AuditQuery), async (c) =>
    c.json((await directory(c.env).auditPage(c.req.valid("query"))) satisfies AuditPage),
  );
