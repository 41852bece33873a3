/**
 * The room side of socket tickets (worker/tickets.ts makes and checks them).
 * The Worker has already verified the signature, expiry and room; it passes
 * the claims in headers only it can set. Here the room makes each ticket
 * single-use: a nonce it has seen is refused, so a ticket copied from a log
 * or a proxy cannot open a second socket.
 */
export const TICKET_HEADERS = {
  role: "x-iot-role",
  sub: "x-iot-sub",
  nonce: "x-iot-ticket-nonce",
  exp: "x-iot-ticket-exp",
  iat: "x-iot-ticket-iat",
  /** The client's address as the Worker keys rate limits on it (worker/rate-limit.ts): for the audit trail. */
  address: "x-iot-address",
} as const;

/**
 * A device that opened its socket with its token (no ticket): the Worker puts
 * the token's SHA-256 here, and the room compares it with its own. The Worker
 * deletes any client-sent value first, on every path.
 */
export const CREDENTIAL_HEADER = "x-iot-credential-sha256";

export type Admission = { role: string; sub: string; nonce: string; exp: number; iat: number };

export function ensureNonceTable(sql: SqlStorage): void {
  sql.exec("CREATE TABLE IF NOT EXISTS ticket_nonces (nonce TEXT PRIMARY KEY, exp INTEGER NOT NULL)");
}

/** Read the claims the Worker forwarded; null if they are missing (a request that did not come through it). */
export function readAdmission(request: Request): Admission | null {
  const h = (name: string) => request.headers.get(name);
  const role = h(TICKET_HEADERS.role);
  const sub = h(TICKET_HEADERS.sub);
  const nonce = h(TICKET_HEADERS.nonce);
  const exp = Number(h(TICKET_HEADERS.exp));
  const iat = Number(h(TICKET_HEADERS.iat));
  if (!role || !sub || !nonce || !Number.isFinite(exp) || !Number.isFinite(iat)) return null;
  return { role, sub, nonce, exp, iat };
}

/** Record the nonce; false if it was already used. Expired nonces are swept as we go. */
export function consumeNonce(sql: SqlStorage, nonce: string, exp: number, now = Date.now()): boolean {
  sql.exec("DELETE FROM ticket_nonces WHERE exp < ?", now);
  return sql.exec("INSERT OR IGNORE INTO ticket_nonces (nonce, exp) VALUES (?, ?)", nonce, exp).rowsWritten > 0;
}

/**
 * Admit a WebSocket upgrade: null lets it through to partyserver, a Response
 * refuses it. `check` adds what only this room knows (a device's credentials).
 */
export function admitSocket(request: Request, sql: SqlStorage, check?: (admission: Admission) => Response | null): Response | null {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return null;
  const admission = readAdmission(request);
  if (!admission) return refuse(401, "ticket_required", "sockets are opened through the Worker with a ticket");
  if (!consumeNonce(sql, admission.nonce, admission.exp)) {
    return refuse(401, "ticket_used", "this ticket was already used; get a new one");
  }
  return check?.(admission) ?? null;
}

export function refuse(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
