/**
 * The JSON API the dashboard and scripts use.
 *
 *   GET  /api/devices                      → {devices: [...]}
 *   GET  /api/devices/:id                  → the room's state
 *   GET  /api/devices/:id/readings         → {readings: [...]} in seq order (?after=SEQ&since=TS&limit=N)
 *   POST /api/devices/:id/commands         {cmd: "scale", scale: "C"} → the command record (id, status)
 *   POST /api/tickets                      {device: id} | {fleet: true} → a socket ticket
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { CommandRequest, DeviceId, ReadingsQuery } from "../../party/protocol";
import { fleet, room, type AppEnv } from "../env";
import { ApiError } from "../errors";
import { issueTicket } from "../tickets";
import { validate, validateJson } from "../validate";

const DeviceParam = z.object({ id: DeviceId });

const TicketRequest = z.union([
  z.strictObject({ device: DeviceId, role: z.enum(["device", "dashboard"]).default("dashboard") }),
  z.strictObject({ fleet: z.literal(true) }),
]);

/** Resolve a known device's room, or 404. */
async function knownRoom(env: Env, id: string) {
  if (!(await fleet(env).get(id))) throw new ApiError(404, "unknown_device", `no device ${id}`);
  return room(env, id);
}

export const api = new Hono<AppEnv>()
  .use(
    bodyLimit({
      maxSize: 16 * 1024,
      onError: () => {
        throw new ApiError(413, "payload_too_large", "body exceeds 16384 bytes");
      },
    }),
  )
  .get("/devices", async (c) => c.json({ devices: await fleet(c.env).list() }))
  .get("/devices/:id", validate("param", DeviceParam), async (c) => {
    const stub = await knownRoom(c.env, c.req.valid("param").id);
    return c.json(await stub.getState());
  })
  .get("/devices/:id/readings", validate("param", DeviceParam), validate("query", ReadingsQuery), async (c) => {
    const stub = await knownRoom(c.env, c.req.valid("param").id);
    return c.json({ readings: await stub.getReadings(c.req.valid("query")) });
  })
  .post("/devices/:id/commands", validate("param", DeviceParam), validateJson(CommandRequest), async (c) => {
    const stub = await knownRoom(c.env, c.req.valid("param").id);
    const { id, ...command } = c.req.valid("json");
    const record = await stub.submitCommand(id ?? crypto.randomUUID(), command);
    return c.json(record, 202);
  })
  .post("/tickets", validateJson(TicketRequest), async (c) => {
    const body = c.req.valid("json");
    if ("fleet" in body) {
      return c.json({ ...(await issueTicket(ticketSecret(c.env), { room: "fleet", role: "dashboard", sub: "dashboard" })), path: "/parties/fleet/main" });
    }
    if (body.role === "dashboard") await knownRoom(c.env, body.device);
    const claims = { room: `device:${body.device}`, role: body.role, sub: body.role === "device" ? `device:${body.device}` : "dashboard" };
    return c.json({ ...(await issueTicket(ticketSecret(c.env), claims)), path: `/parties/device/${body.device}` });
  });

export function ticketSecret(env: Env): string {
  const secret = env.SESSION_SECRET;
  if (!secret || secret.length < 32) {
    throw new ApiError(500, "misconfigured", "SESSION_SECRET is missing or shorter than 32 characters (see README: secrets)");
  }
  return secret;
}
