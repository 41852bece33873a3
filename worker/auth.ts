/**
 * Who is calling, and what they may do.
 *
 * Three kinds of caller:
 *  - a device: `Authorization: Bearer <id>.<secret>`; the secret was shown once
 *    at provisioning, and only its SHA-256 is stored, in the device's own room;
 *  - a person, as an account with a role (operator or viewer): a named account's token
 *    `@<name>.<secret>` (shown once at creation, only its SHA-256 kept in the directory),
 *    or one of the bootstrap tokens ADMIN_TOKEN / VIEWER_TOKEN (the built-in accounts
 *    `admin` and `viewer`), sent as `Authorization: Bearer …`, or the session cookie
 *    `POST /api/login` set with one of them (a row in the directory: party/directory.ts);
 *  - nobody: 401.
 *
 * Middleware factories check their options once and return a named function,
 * as Hono's own do. Secrets are compared through HMAC + timingSafeEqual so a
 * wrong guess costs the same time however much of it was right.
 */
import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, getSignedCookie, setSignedCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import { directory, type Actor } from "../party/directory";
import { fleetFor } from "../party/fleet";
import { DeviceId, toPrintable, type AccountRole } from "../party/protocol";
import { room, type AppEnv } from "./env";
import { ApiError } from "./errors";
import { clientIp } from "./rate-limit";
import { base64url } from "./tickets";

export type Principal =
  | { role: AccountRole; account: string; /** set for a cookie session */ session?: string; expiresAt?: number }
  | { role: "device"; id: string };
export type Role = Principal["role"];

export type AuthEnv = AppEnv & { Variables: { principal: Principal } };

export const SESSION_COOKIE = "iot_session";
/** A signed-in browser stays signed in for a working day. */
export const SESSION_TTL_MS = 12 * 3600 * 1000;

const encoder = new TextEncoder();

/** SHA-256 of a device secret, hex. What the room stores and compares. */
export async function hashSecret(secret: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(secret));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Equal strings, in time that does not depend on where they differ. */
export async function safeEqual(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(a)),
    crypto.subtle.digest("SHA-256", encoder.encode(b)),
  ]);
  return crypto.subtle.timingSafeEqual(da, db);
}

/** A fresh device token: `<id>.<43 chars of base64url = 256 random bits>`. */
export function newDeviceSecret(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** `<id>.<secret>` → parts, or null if it cannot be a device token. */
export function splitDeviceToken(token: string): { id: string; secret: string } | null {
  const dot = token.lastIndexOf(".");
  if (dot <= 0) return null;
  const id = token.slice(0, dot);
  const secret = token.slice(dot + 1);
  if (!DeviceId.safeParse(id).success || !/^[A-Za-z0-9_-]{32,128}$/.test(secret)) return null;
  return { id, secret };
}

/** The token of an `Authorization: Bearer <token>` header; null without one, 401 when malformed. */
export function parseBearer(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer ([\x21-\x7e]{1,256})$/i.exec(header.trim());
  if (!m) throw new ApiError(401, "unauthorized", "Authorization must be `Bearer <token>`");
  return m[1]!;
}

function bearer(c: Context): string | null {
  return parseBearer(c.req.header("authorization"));
}

/** Configured secrets, checked once per request (misconfiguration is a 500 with a clear message). */
function secrets(env: Env): { session: string; admin: string; viewer: string | null } {
  const problems: string[] = [];
  if (!env.SESSION_SECRET || env.SESSION_SECRET.length < 32) problems.push("SESSION_SECRET (≥ 32 characters)");
  if (!env.ADMIN_TOKEN || env.ADMIN_TOKEN.length < 24) problems.push("ADMIN_TOKEN (≥ 24 characters)");
  if (env.VIEWER_TOKEN && env.VIEWER_TOKEN.length < 24) problems.push("VIEWER_TOKEN (≥ 24 characters, or unset)");
  if (problems.length) {
    throw new ApiError(500, "misconfigured", `set the secrets ${problems.join(", ")}: see docs/security.md`);
  }
  return { session: env.SESSION_SECRET, admin: env.ADMIN_TOKEN, viewer: env.VIEWER_TOKEN || null };
}

export function sessionSecret(env: Env): string {
  return secrets(env).session;
}

/** The built-in account a bootstrap token (ADMIN_TOKEN, VIEWER_TOKEN) stands for; null if it is neither. */
export async function builtinAccount(env: Env, token: string): Promise<{ role: AccountRole; account: string } | null> {
  const s = secrets(env);
  if (await safeEqual(token, s.admin)) return { role: "operator", account: "admin" };
  if (s.viewer && (await safeEqual(token, s.viewer))) return { role: "viewer", account: "viewer" };
  return null;
}

/** A fresh account token: `@<name>.<43 chars of base64url = 256 random bits>`. */
export function newAccountToken(name: string): { token: string; secret: string } {
  const secret = base64url(crypto.getRandomValues(new Uint8Array(32)));
  return { token: `@${name}.${secret}`, secret };
}

/**
 * `@<name>.<secret>` → parts, or null if it cannot be an account token. The `@` keeps it apart
 * from device tokens (`<id>.<secret>`): no device id starts with one.
 */
export function splitAccountToken(token: string): { name: string; secret: string } | null {
  const m = /^@([a-z][a-z0-9_-]{0,31})\.([A-Za-z0-9_-]{43})$/.exec(token);
  return m ? { name: m[1]!, secret: m[2]! } : null;
}

/**
 * Whether a device id was provisioned, asked of its fleet shard (which exists anyway) before
 * its room is touched: a room is a Durable Object with its own storage, and a made-up id in a
 * token (`ghost-7.<43 chars>`) must cost no storage, not even an empty database.
 */
export async function isKnownDevice(env: Env, id: string): Promise<boolean> {
  if (knownDevices.has(id)) return true;
  const known = (await fleetFor(env, id).get(id)) !== null;
  if (known) {
    // A device once known has a room already: remembering it only spares a reconnect storm a
    // shard round trip per device. Its token is still checked in its room every time.
    if (knownDevices.size >= KNOWN_DEVICES_MAX) knownDevices.clear();
    knownDevices.add(id);
  }
  return known;
}

/** Ids this isolate has seen provisioned (bounded; cleared when full). */
const knownDevices = new Set<string>();
const KNOWN_DEVICES_MAX = 10_000;

async function resolve(c: Context<AuthEnv>): Promise<Principal | null> {
  const token = bearer(c);
  if (token !== null) {
    const device = splitDeviceToken(token);
    if (device) {
      const ok = (await isKnownDevice(c.env, device.id)) && (await room(c.env, device.id).verifyCredential(await hashSecret(device.secret)));
      if (!ok) throw new ApiError(401, "unauthorized", "unknown, rotated or revoked device token");
      return { role: "device", id: device.id };
    }
    const named = splitAccountToken(token);
    if (named) {
      // One directory call: a removed account's token stops working at once, with no cache to outlive it.
      const role = await directory(c.env).verifyAccount(named.name, await hashSecret(named.secret));
      if (!role) throw new ApiError(401, "unauthorized", "unknown or removed account token");
      return { role, account: named.name };
    }
    const builtin = await builtinAccount(c.env, token);
    if (!builtin) throw new ApiError(401, "unauthorized", "invalid token");
    return builtin;
  }
  const session = await cookieSession(c);
  if (session) {
    checkSameOrigin(c);
    return { role: session.role, account: session.account, session: session.id, expiresAt: session.expiresAt };
  }
  return null;
}

/** The cookie's `<session id>.<secret>`, if it carries a validly signed one. */
async function sessionCookie(c: Context): Promise<{ id: string; secret: string } | null> {
  const value = await getSignedCookie(c, sessionSecret(c.env), SESSION_COOKIE);
  const m = value ? /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/.exec(value) : null;
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

/**
 * The live session behind the cookie: one directory call (its row must still exist, so a
 * session ended by sign-out, revocation or account removal is refused at once). A built-in
 * account's session also ends when its token changes.
 */
async function cookieSession(c: Context) {
  const cookie = await sessionCookie(c);
  if (!cookie) return null;
  const session = await directory(c.env).useSession(cookie.id, await hashSecret(cookie.secret));
  if (!session) return null;
  if (session.generation !== null && session.generation !== (await tokenGeneration(c.env, session.role))) return null;
  return session;
}

/**
 * Cookie-authenticated requests must come from our own pages: SameSite=Strict
 * already keeps the cookie off cross-site requests; this refuses the rest
 * (an older browser, a sibling subdomain, an http page on our https host) when
 * they change something. Browsers send Origin on every cross-site POST, PUT and
 * DELETE (and on same-origin ones too; Sec-Fetch-Site where Origin is missing),
 * so a change with neither is not from our page: a `text/plain` form post or a
 * script replaying a copied cookie. API clients send `Authorization: Bearer`
 * and never get here.
 */
function checkSameOrigin(c: Context): void {
  if (c.req.method === "GET" || c.req.method === "HEAD") return;
  const origin = c.req.header("origin");
  if (origin === undefined) {
    if (c.req.header("sec-fetch-site") === "same-origin") return;
    throw new ApiError(403, "origin_required", "a change made with the session cookie must come from this dashboard (Origin header); API clients send Authorization: Bearer");
  }
  if (!isOwnOrigin(c.req.raw, origin)) {
    throw new ApiError(403, "bad_origin", `origin ${origin} may not use this session`);
  }
}

/**
 * Our own origin as the browser sees it: scheme and host. Behind a proxy the
 * Host header must be passed through with its port (nginx: `proxy_set_header
 * Host $http_host`) and the scheme in X-Forwarded-Proto (nginx sets it): a
 * page at http://host is another origin than https://host, and on an https
 * endpoint it is whatever a network attacker injects into plain http.
 */
export function isOwnOrigin(request: Request, origin: string): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  const own = request.headers.get("host") ?? new URL(request.url).host;
  const forwarded = request.headers.get("x-forwarded-proto")?.toLowerCase();
  const scheme = forwarded === "https" || forwarded === "http" ? `${forwarded}:` : new URL(request.url).protocol;
  return url.host === own && url.protocol === scheme;
}

/**
 * Require a caller with one of `roles`. Operators may do whatever viewers may.
 *
 * @example app.post("/api/devices/:id/commands", requireRole("operator"), handler)
 */
export function requireRole(...roles: Role[]): MiddlewareHandler<AuthEnv> {
  if (roles.length === 0) throw new Error("requireRole: name at least one role");
  const allowed = new Set<Role>(roles);
  if (allowed.has("viewer")) allowed.add("operator");
  return createMiddleware<AuthEnv>(async function requireRoleMiddleware(c, next) {
    const principal = await resolve(c);
    if (!principal) throw new ApiError(401, "unauthorized", "sign in, or send Authorization: Bearer <token>");
    if (!allowed.has(principal.role)) {
      throw new ApiError(403, "forbidden", `a ${principal.role} may not do this`);
    }
    c.set("principal", principal);
    await next();
  });
}

/** The calling device's id, behind `requireRole("device")`. */
export function callingDevice(c: Context<AuthEnv>): string {
  const principal = c.get("principal");
  if (principal.role !== "device") throw new ApiError(403, "forbidden", "only a device may call this");
  return principal.id;
}

/**
 * A built-in account's session belongs to its token as it is now: the session row keeps the first
 * 16 hex of the token's SHA-256, so changing ADMIN_TOKEN or VIEWER_TOKEN ends every session signed
 * in with the old one (null: that role has no token configured).
 */
async function tokenGeneration(env: Env, role: "operator" | "viewer"): Promise<string | null> {
  const s = secrets(env);
  const token = role === "operator" ? s.admin : s.viewer;
  return token ? (await hashSecret(token)).slice(0, 16) : null;
}

/** What the directory keeps about where a session was opened (shown in the sessions list). */
function sessionOrigin(c: Context): { userAgent: string; address: string } {
  return { userAgent: toPrintable(c.req.header("user-agent") ?? "", 200), address: clientIp(c).slice(0, 64) };
}

/**
 * Sign in with a token: a server-side session and its cookie, or null for a wrong token.
 * Every attempt is in the audit trail (`login` or `login.failed`), in the same directory call.
 */
export async function signIn(
  c: Context<AuthEnv>,
  token: string,
): Promise<{ role: AccountRole; account: string; session: string; expiresAt: number } | null> {
  const id = base64url(crypto.getRandomValues(new Uint8Array(16)));
  const secret = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const expiresAt = Date.now() + SESSION_TTL_MS;
  const origin = sessionOrigin(c);
  const session = { id, secretHash: await hashSecret(secret), expiresAt, ...origin };
  const dir = directory(c.env);
  let who: { role: AccountRole; account: string } | null;
  const named = splitAccountToken(token);
  if (named) {
    const role = await dir.signIn(named.name, await hashSecret(named.secret), session);
    who = role && { role, account: named.name };
  } else {
    who = await builtinAccount(c.env, token);
    if (who) await dir.openSession({ ...session, ...who, generation: await tokenGeneration(c.env, who.role) });
    // Nothing of a token that names no account is kept: it may be a password typed into the wrong box.
    else await dir.record({ actor: "unknown", role: null, address: origin.address, action: "login.failed", detail: { reason: "not a known token" } });
  }
  if (!who) return null;
  await setSignedCookie(c, SESSION_COOKIE, `${id}.${secret}`, sessionSecret(c.env), {
    httpOnly: true,
    sameSite: "Strict",
    secure: isHttps(c),
    path: "/",
    maxAge: SESSION_TTL_MS / 1000,
  });
  return { ...who, session: id, expiresAt };
}

/** Sign out: the cookie's session row is deleted (a `logout` audit row), and the browser drops the cookie. */
export async function endSession(c: Context): Promise<void> {
  const cookie = await sessionCookie(c);
  if (cookie) await directory(c.env).logout(cookie.id, await hashSecret(cookie.secret), clientIp(c).slice(0, 64));
  deleteCookie(c, SESSION_COOKIE, { path: "/", secure: isHttps(c) });
}

/** Who the audit trail names for this request's caller, and from where. */
export function actorOf(c: Context<AuthEnv>): Actor {
  const p = c.get("principal");
  const address = clientIp(c).slice(0, 64);
  return p.role === "device" ? { actor: `device:${p.id}`, role: "device", address } : { actor: p.account, role: p.role, address };
}

/** TLS as the browser sees it: directly, or at the proxy in front (X-Forwarded-Proto). */
function isHttps(c: Context): boolean {
  return new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https";
}
