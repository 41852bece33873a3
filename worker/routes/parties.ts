/**
 * WebSocket upgrades into the rooms. The Worker stays thin: it checks the
 * ticket (signature, expiry, room), the Origin of browser sockets, and hands
 * the request on with the ticket's claims in headers no client can forge
 * (they are overwritten here). The room makes the ticket single-use.
 *
 *   /parties/device/<id>?ticket=…   the device, or a dashboard, in that device's room
 *   /parties/device/<id>             a device, with `Authorization: Bearer <its token>` on the
 *                                    upgrade: no ticket request first, so a reconnect is one
 *                                    round trip; the room checks the token's hash in the same
 *                                    hop. Browsers cannot set headers on a WebSocket, so they
 *                                    keep tickets.
 *
 * There is no fleet socket: the fleet view pages `GET /api/devices` (docs/fleet.md).
 */
import { Hono, type Context } from "hono";
import { CREDENTIAL_HEADER, TICKET_HEADERS } from "../../party/admission";
import { DeviceId } from "../../party/protocol";
import { hashSecret, isKnownDevice, isOwnOrigin, parseBearer, sessionSecret, splitDeviceToken } from "../auth";
import { room, type AppEnv } from "../env";
import { ApiError } from "../errors";
import { clientIp } from "../rate-limit";
import { verifyTicket, type TicketClaims } from "../tickets";

function requireUpgrade(c: Context<AppEnv>): void {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new ApiError(426, "upgrade_required", "this path only accepts WebSocket upgrades");
  }
}

async function admit(c: Context<AppEnv>, room: string): Promise<Request> {
  requireUpgrade(c);
  // Browsers always send Origin on a WebSocket; only our own pages may open one
  // (cross-site WebSocket hijacking). Devices (Node) send none.
  const origin = c.req.header("origin");
  if (origin && !isOwnOrigin(c.req.raw, origin)) throw new ApiError(403, "bad_origin", `origin ${origin} may not open sockets here`);
  const ticket = new URL(c.req.url).searchParams.get("ticket");
  if (!ticket) throw new ApiError(401, "ticket_required", "open sockets with ?ticket= from POST /api/tickets");
  const check = await verifyTicket(sessionSecret(c.env), ticket);
  if (!check.ok) throw new ApiError(401, "bad_ticket", check.reason);
  if (check.claims.room !== room) throw new ApiError(403, "wrong_room", "this ticket is for another room");
  return forward(c.req.raw, check.claims, clientIp(c));
}

/**
 * A device socket opened with the device's own token. Only its SHA-256 goes
 * on, in a header the client cannot set (see forward()); the room compares it
 * with the hash it keeps, so a wrong, rotated or revoked token is refused there.
 */
async function admitDevice(c: Context<AppEnv>, id: string, authorization: string): Promise<Request> {
  requireUpgrade(c);
  const bearer = parseBearer(authorization);
  const token = bearer ? splitDeviceToken(bearer) : null;
  if (!token) throw new ApiError(401, "unauthorized", "Authorization must be `Bearer <device token>`");
  if (token.id !== id) throw new ApiError(403, "wrong_room", "this token is for another device");
  // An id nobody provisioned never reaches (and so never creates) a room.
  if (!(await isKnownDevice(c.env, id))) throw new ApiError(401, "unauthorized", "unknown, rotated or revoked device token");
  // Limited per address like every request (the app's IP limiter); not also per device: a
  // reconnect storm is 1,000s of upgrades at once, and each limiter call is a round trip
  // (locally, into one Durable Object). A wrong token costs one hash compare in its room.
  const now = Date.now();
  const request = forward(c.req.raw, { role: "device", sub: id, nonce: "token", exp: now, iat: now, room: `device:${id}` }, clientIp(c));
  request.headers.set(CREDENTIAL_HEADER, await hashSecret(token.secret));
  return request;
}

function forward(request: Request, claims: TicketClaims, address: string): Request {
  const headers = new Headers(request.headers);
  // Only this Worker speaks for the client in these headers: drop anything it sent.
  for (const name of [...Object.values(TICKET_HEADERS), CREDENTIAL_HEADER]) headers.delete(name);
  headers.set(TICKET_HEADERS.role, claims.role);
  headers.set(TICKET_HEADERS.sub, claims.sub);
  headers.set(TICKET_HEADERS.nonce, claims.nonce);
  headers.set(TICKET_HEADERS.exp, String(claims.exp));
  headers.set(TICKET_HEADERS.iat, String(claims.iat));
  headers.set(TICKET_HEADERS.address, address.slice(0, 64));
  return new Request(request, { headers });
}

export const parties = new Hono<AppEnv>()
  .get("/device/:id", async (c) => {
    const id = DeviceId.safeParse(c.req.param("id"));
    if (!id.success) throw new ApiError(400, "validation_failed", "invalid device id");
    const authorization = c.req.header("authorization");
    const request =
      authorization && !new URL(c.req.url).searchParams.has("ticket")
        ? await admitDevice(c, id.data, authorization)
        : await admit(c, `device:${id.data}`);
    return room(c.env, id.data).fetch(request);
  });
