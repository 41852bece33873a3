/**
 * WebSocket upgrades into the rooms. The Worker stays thin: it checks the
 * ticket, tells the room the caller's role in a header no client can forge
 * (it is overwritten here), and hands the request to the room.
 *
 *   /parties/device/<id>?ticket=…   the device, or a dashboard, in that device's room
 *   /parties/fleet/main?ticket=…    the fleet view
 */
import { Hono } from "hono";
import { getServerByName } from "partyserver";
import { DeviceId } from "../../party/protocol";
import { ROLE_HEADER } from "../../party/device-room";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { verifyTicket } from "../tickets";
import { ticketSecret } from "./api";

async function claimsFor(c: { req: { url: string; header(name: string): string | undefined }; env: Env }, room: string) {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new ApiError(426, "upgrade_required", "this path only accepts WebSocket upgrades");
  }
  const ticket = new URL(c.req.url).searchParams.get("ticket");
  if (!ticket) throw new ApiError(401, "ticket_required", "open sockets with ?ticket= from POST /api/tickets");
  const check = await verifyTicket(ticketSecret(c.env), ticket);
  if (!check.ok) throw new ApiError(401, "bad_ticket", check.reason);
  if (check.claims.room !== room) throw new ApiError(403, "wrong_room", "this ticket is for another room");
  return check.claims;
}

function forward(request: Request, role: string, sub: string): Request {
  const headers = new Headers(request.headers);
  headers.set(ROLE_HEADER, role);
  headers.set("x-iot-sub", sub);
  return new Request(request, { headers });
}

export const parties = new Hono<AppEnv>()
  .get("/device/:id", async (c) => {
    const id = DeviceId.safeParse(c.req.param("id"));
    if (!id.success) throw new ApiError(400, "validation_failed", "invalid device id");
    const claims = await claimsFor(c, `device:${id.data}`);
    const stub = await getServerByName(c.env.DEVICE_ROOM, id.data);
    return stub.fetch(forward(c.req.raw, claims.role, claims.sub));
  })
  .get("/fleet/main", async (c) => {
    const claims = await claimsFor(c, "fleet");
    const stub = await getServerByName(c.env.FLEET, "main");
    return stub.fetch(forward(c.req.raw, claims.role, claims.sub));
  });
