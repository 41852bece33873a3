/**
 * WebSocket upgrades into the rooms. The Worker stays thin: it checks the
 * ticket (signature, expiry, room), the Origin of browser sockets, and hands
 * the request on with the ticket's claims in headers no client can forge
 * (they are overwritten here). The room makes the ticket single-use.
 *
 *   /parties/device/<id>?ticket=…   the device, or a dashboard, in that device's room
 *
 * There is no fleet socket: the fleet view pages `GET /api/devices` (docs/fleet.md).
 */
import { Hono, type Context } from "hono";
import { TICKET_HEADERS } from "../../party/admission";
import { DeviceId } from "../../party/protocol";
import { isOwnOrigin, sessionSecret } from "../auth";
import { room, type AppEnv } from "../env";
import { ApiError } from "../errors";
import { verifyTicket, type TicketClaims } from "../tickets";

async function admit(c: Context<AppEnv>, room: string): Promise<Request> {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new ApiError(426, "upgrade_required", "this path only accepts WebSocket upgrades");
  }
  // Browsers always send Origin on a WebSocket; only our own pages may open one
  // (cross-site WebSocket hijacking). Devices (Node) send none.
  const origin = c.req.header("origin");
  if (origin && !isOwnOrigin(c.req.raw, origin)) throw new ApiError(403, "bad_origin", `origin ${origin} may not open sockets here`);
  const ticket = new URL(c.req.url).searchParams.get("ticket");
  if (!ticket) throw new ApiError(401, "ticket_required", "open sockets with ?ticket= from POST /api/tickets");
  const check = await verifyTicket(sessionSecret(c.env), ticket);
  if (!check.ok) throw new ApiError(401, "bad_ticket", check.reason);
  if (check.claims.room !== room) throw new ApiError(403, "wrong_room", "this ticket is for another room");
  return forward(c.req.raw, check.claims);
}

function forward(request: Request, claims: TicketClaims): Request {
  const headers = new Headers(request.headers);
  headers.set(TICKET_HEADERS.role, claims.role);
  headers.set(TICKET_HEADERS.sub, claims.sub);
  headers.set(TICKET_HEADERS.nonce, claims.nonce);
  headers.set(TICKET_HEADERS.exp, String(claims.exp));
  headers.set(TICKET_HEADERS.iat, String(claims.iat));
  return new Request(request, { headers });
}

export const parties = new Hono<AppEnv>()
  .get("/device/:id", async (c) => {
    const id = DeviceId.safeParse(c.req.param("id"));
    if (!id.success) throw new ApiError(400, "validation_failed", "invalid device id");
    const request = await admit(c, `device:${id.data}`);
    return room(c.env, id.data).fetch(request);
  });
