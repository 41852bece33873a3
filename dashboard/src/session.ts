/**
 * Who is looking: the one module that knows the endpoint's sign-in API.
 *
 *   GET  /api/session  → 200 {role, account, expiresAt?} | 401 (signed out) | 404 (this endpoint has no auth)
 *   POST /api/login    {token} → 200 {role, account, session, expiresAt}, sets an HttpOnly session cookie | 401
 *   POST /api/logout   → 204; the session ends on the server too
 *
 * The cookie is HttpOnly, so the page never holds a secret; it only learns its
 * role. An endpoint without these routes (404) is an open one: everyone may
 * do everything, which is how a local endpoint without auth behaves.
 */
import { ApiError, SessionResponse } from "../../party/protocol";

export type Role = "operator" | "viewer";

export type Session =
  | { kind: "open" }
  /** `expiresAt` comes with a sign-in; `GET /api/session` may leave it out. `account` names the person. */
  | { kind: "signed-in"; role: Role; account?: string; expiresAt?: number }
  | { kind: "signed-out" };

/** The session answer, as party/protocol.ts declares it for both sides. */
const SessionBody = SessionResponse;

type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

/** Anything but a clear answer (network down, 5xx): the caller retries. */
export class SessionUnavailable extends Error {}

export async function loadSession(fetchFn: Fetch = fetch): Promise<Session> {
  const res = await send(fetchFn, "/api/session", { headers: { accept: "application/json" } });
  if (res.status === 404) return { kind: "open" };
  if (res.status === 401) return { kind: "signed-out" };
  if (res.status === 200) return signedIn(await res.json().catch(() => null));
  throw new SessionUnavailable(`GET /api/session answered ${res.status}`);
}

export type LoginResult = { ok: true; session: Session } | { ok: false; message: string };

export async function login(token: string, fetchFn: Fetch = fetch): Promise<LoginResult> {
  const res = await send(fetchFn, "/api/login", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ token }),
  });
  if (res.status === 200) return { ok: true, session: signedIn(await res.json().catch(() => null)) };
  if (res.status === 404) return { ok: true, session: { kind: "open" } };
  const body = ApiError.safeParse(await res.json().catch(() => null));
  if (res.status === 401 || res.status === 403) {
    return { ok: false, message: "That token was not accepted. Check it and try again." };
  }
  if (res.status === 429) return { ok: false, message: "Too many attempts. Wait a minute, then try again." };
  return { ok: false, message: body.success ? body.data.error.message : `Sign-in failed (${res.status}).` };
}

export async function logout(fetchFn: Fetch = fetch): Promise<void> {
  // Whatever it answers, the page forgets the session; a failed logout at worst leaves a cookie that expires.
  await send(fetchFn, "/api/logout", { method: "POST" }).catch(() => undefined);
}

/** Viewers watch; operators (and everyone on an open endpoint) may send commands. */
export function canCommand(session: Session): boolean {
  return session.kind === "open" || (session.kind === "signed-in" && session.role === "operator");
}

export function describeSession(session: Session): string {
  switch (session.kind) {
    case "open":
      return "";
    case "signed-out":
      return "Signed out";
    case "signed-in": {
      const role = session.role === "operator" ? "Operator" : "Viewer (read-only)";
      // The built-in accounts (the shared ADMIN_TOKEN / VIEWER_TOKEN) are their role; a person is named.
      return session.account && !BUILTIN_ACCOUNTS.includes(session.account) ? `${session.account} · ${role}` : role;
    }
  }
}

const BUILTIN_ACCOUNTS = ["admin", "viewer"];

function signedIn(json: unknown): Session {
  const body = SessionBody.safeParse(json);
  if (!body.success) throw new SessionUnavailable("the session answer did not parse");
  const { role, account, expiresAt } = body.data;
  return { kind: "signed-in", role, ...(account === undefined ? {} : { account }), ...(expiresAt === undefined ? {} : { expiresAt }) };
}

async function send(fetchFn: Fetch, path: string, init: RequestInit): Promise<Response> {
  try {
    return await fetchFn(path, { credentials: "same-origin", ...init });
  } catch (err) {
    throw new SessionUnavailable(`${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
