/**
 * Socket tickets. Browsers cannot set headers on a WebSocket and proxies log
 * query strings, so a socket is opened with a short-lived ticket obtained over
 * an authenticated REST call, never with a long-lived secret:
 *
 *   POST /api/tickets → {ticket}   then   /parties/device/<id>?ticket=<ticket>
 *
 * A ticket is `base64url(json).base64url(hmac-sha256)` over what it allows:
 * one room, one role, until `exp`. Tickets expire in TICKET_TTL_MS and the
 * room refuses a nonce it has already seen, so a logged URL is worthless.
 */
import { z } from "zod";

export const TICKET_TTL_MS = 60_000;

export const TicketClaims = z.strictObject({
  /** `device:<id>` or `fleet`. */
  room: z.string().max(80),
  role: z.enum(["device", "dashboard"]),
  /** Who asked: `device:<id>`, `operator`, `viewer`. */
  sub: z.string().max(80),
  exp: z.number().int(),
  /** Issued at: a device ticket older than the device's latest credentials is refused. */
  iat: z.number().int(),
  nonce: z.string().max(40),
});
export type TicketClaims = z.infer<typeof TicketClaims>;

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

/**
 * The ticket key: HMAC-SHA256(SESSION_SECRET, "iot-edge/socket-tickets/v1"), not the secret
 * itself, which signs session cookies. One secret to configure, two keys in use, so nothing
 * signed as a cookie is ever a valid ticket (or the other way round).
 */
function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = (async () => {
      const root = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      const derived = await crypto.subtle.sign("HMAC", root, encoder.encode("iot-edge/socket-tickets/v1"));
      return crypto.subtle.importKey("raw", derived, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    })();
    keys.set(secret, key);
  }
  return key;
}

export async function issueTicket(
  secret: string,
  claims: Omit<TicketClaims, "exp" | "iat" | "nonce">,
  now = Date.now(),
): Promise<{ ticket: string; expiresAt: number }> {
  const full: TicketClaims = { ...claims, exp: now + TICKET_TTL_MS, iat: now, nonce: randomToken(12) };
  const body = base64url(encoder.encode(JSON.stringify(full)));
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(body));
  return { ticket: `${body}.${base64url(new Uint8Array(mac))}`, expiresAt: full.exp };
}

export type TicketCheck = { ok: true; claims: TicketClaims } | { ok: false; reason: string };

export async function verifyTicket(secret: string, ticket: string, now = Date.now()): Promise<TicketCheck> {
  const [body, mac, extra] = ticket.split(".");
  if (!body || !mac || extra !== undefined || ticket.length > 1024) return { ok: false, reason: "malformed ticket" };
  let macBytes: Uint8Array;
  let json: unknown;
  try {
    macBytes = fromBase64url(mac);
    const valid = await crypto.subtle.verify("HMAC", await hmacKey(secret), macBytes, encoder.encode(body));
    if (!valid) return { ok: false, reason: "bad ticket signature" };
    json = JSON.parse(new TextDecoder().decode(fromBase64url(body)));
  } catch {
    return { ok: false, reason: "malformed ticket" };
  }
  const claims = TicketClaims.safeParse(json);
  if (!claims.success) return { ok: false, reason: "malformed ticket" };
  if (claims.data.exp <= now) return { ok: false, reason: "ticket expired" };
  return { ok: true, claims: claims.data };
}

export function randomToken(bytes: number): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

export function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64url(text: string): Uint8Array {
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(s, (ch) => ch.charCodeAt(0));
}
