/**
 * The JSON API the dashboard, scripts and devices use. Who may call what:
 *
 *   POST /api/login            {token}              anyone (rate-limited) → session cookie (a row in the directory)
 *   POST /api/logout                                anyone; ends the cookie's session on the server
 *   GET  /api/session                               viewer, operator → {role, account, session?, expiresAt?}
 *   GET  /api/devices                               viewer, operator (?cursor=ID&limit=N&q=TEXT&online=BOOL)
 *   POST /api/devices          {id}                 operator → {id, token} (the token is shown once)
 *   GET  /api/devices/:id                           viewer, operator
 *   GET  /api/devices/:id/readings                  viewer, operator (?after=SEQ&since=TS&limit=N)
 *   GET  /api/devices/:id/stats                     viewer, operator → what the room wrote and was asked (RoomStats)
 *   PUT  /api/devices/:id/batching {unwatchedMs}    operator: how long the device may hold readings while nobody watches
 *   POST /api/devices/:id/commands {cmd, …}         operator → the command record (id, status)
 *   POST /api/devices/:id/rotate                    operator → {id, token}; the old token dies now
 *   POST /api/devices/:id/revoke                    operator; the device is cut off now
 *   POST /api/tickets          {device}             device (its own room), viewer, operator → {ticket, path}
 *
 * Accounts, sessions and the audit trail: worker/routes/accounts.ts; alert rules and alerts: worker/routes/alerts.ts. Every change here is
 * recorded in the audit trail (worker/audit.ts) once it has succeeded.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import {
  BatchingRequest,
  CommandRequest,
  DeviceId,
  DevicesQuery,
  ReadingsQuery,
  type DevicesPage,
  type DeviceTokenResponse,
  type SessionResponse,
  type TicketResponse,
} from "../../party/protocol";
import { endSession, hashSecret, newDeviceSecret, requireRole, sessionSecret, signIn, type AuthEnv } from "../auth";
import { audit } from "../audit";
import { fleetFor, listDevices } from "../../party/fleet";
import { room } from "../env";
import { ApiError } from "../errors";
import { clientIp, rateLimit } from "../rate-limit";
import { issueTicket } from "../tickets";
import { validate, validateJson } from "../validate";
import { accounts } from "./accounts";
import { alerts } from "./alerts";

const DeviceParam = z.object({ id: DeviceId });

const TicketRequest = z.union([
  z.strictObject({ device: DeviceId, role: z.enum(["device", "dashboard"]).optional() }),
  // The fleet socket is gone (the fleet view pages GET /api/devices); asked for, it answers 410.
  z.strictObject({ fleet: z.literal(true) }),
]);

/** Resolve a known device's room, or 404. */
async function knownRoom(env: Env, id: string) {
  if (!(await fleetFor(env, id).get(id))) throw new ApiError(404, "unknown_device", `no device ${id}`);
  return room(env, id);
}

export const api = new Hono<AuthEnv>()
  .use(
    bodyLimit({
      maxSize: 16 * 1024,
      onError: () => {
        throw new ApiError(413, "payload_too_large", "body exceeds 16384 bytes");
      },
    }),
  )
  .post(
    "/login",
    rateLimit<AuthEnv>((env) => env.LOGIN_LIMITER, (c) => clientIp(c), "sign-in attempts from this address"),
    validateJson(z.strictObject({ token: z.string().min(1).max(256) })),
    async (c) => {
      const session = await signIn(c, c.req.valid("json").token);
      if (!session) throw new ApiError(401, "unauthorized", "wrong token");
      return c.json(session satisfies SessionResponse);
    },
  )
  .post("/logout", async (c) => {
    await endSession(c);
    return c.body(null, 204);
  })
  .get("/session", requireRole("viewer"), (c) => {
    const principal = c.get("principal");
    if (principal.role === "device") throw new ApiError(403, "forbidden", "devices have no session");
    const { role, account, session, expiresAt } = principal;
    return c.json({ role, account, ...(session ? { session } : {}), ...(expiresAt ? { expiresAt } : {}) } satisfies SessionResponse);
  })
  .get("/devices", requireRole("viewer"), validate("query", DevicesQuery), async (c) =>
    c.json(await listDevices(c.env, c.req.valid("query")) satisfies DevicesPage),
  )
  .post("/devices", requireRole("operator"), validateJson(z.strictObject({ id: DeviceId })), async (c) => {
    const { id } = c.req.valid("json");
    const secret = newDeviceSecret();
    const provisioned = await room(c.env, id).provision(await hashSecret(secret));
    if (!provisioned) throw new ApiError(409, "already_provisioned", `device ${id} has credentials; rotate them instead`);
    await fleetFor(c.env, id).register(id, null);
    console.log(`device ${id} provisioned`);
    await audit(c, "device.provision", `device:${id}`);
    return c.json({ id, token: `${id}.${secret}` } satisfies DeviceTokenResponse, 201);
  })
  .get("/devices/:id", requireRole("viewer"), validate("param", DeviceParam), async (c) => {
    const stub = await knownRoom(c.env, c.req.valid("param").id);
    return c.json(await stub.getState());
  })
  .get(
    "/devices/:id/readings",
    requireRole("viewer"),
    validate("param", DeviceParam),
    validate("query", ReadingsQuery),
    async (c) => {
      const stub = await knownRoom(c.env, c.req.valid("param").id);
      return c.json({ readings: await stub.getReadings(c.req.valid("query")) });
    },
  )
  .get("/devices/:id/stats", requireRole("viewer"), validate("param", DeviceParam), async (c) => {
    const stub = await knownRoom(c.env, c.req.valid("param").id);
    return c.json(await stub.stats());
  })
  .put(
    "/devices/:id/batching",
    requireRole("operator"),
    validate("param", DeviceParam),
    validateJson(BatchingRequest),
    async (c) => {
      const { id } = c.req.valid("param");
      const { unwatchedMs } = c.req.valid("json");
      const answer = await (await knownRoom(c.env, id)).setUnwatchedBatching(unwatchedMs);
      await audit(c, "device.batching", `device:${id}`, { unwatchedMs });
      return c.json(answer);
    },
  )
  .post(
    "/devices/:id/commands",
    requireRole("operator"),
    validate("param", DeviceParam),
    validateJson(CommandRequest),
    async (c) => {
      const device = c.req.valid("param").id;
      const stub = await knownRoom(c.env, device);
      const { id, ...command } = c.req.valid("json");
      const record = await stub.submitCommand(id ?? crypto.randomUUID(), command);
      await audit(c, "device.command", `device:${device}`, { id: record.id, ...command });
      return c.json(record, 202);
    },
  )
  .post("/devices/:id/rotate", requireRole("operator"), validate("param", DeviceParam), async (c) => {
    const { id } = c.req.valid("param");
    const secret = newDeviceSecret();
    const stub = await knownRoom(c.env, id);
    if (!(await stub.rotate(await hashSecret(secret)))) {
      throw new ApiError(409, "not_provisioned", `device ${id} has no credentials; provision it`);
    }
    console.log(`device ${id} credentials rotated`);
    await audit(c, "device.rotate", `device:${id}`);
    return c.json({ id, token: `${id}.${secret}` } satisfies DeviceTokenResponse);
  })
  .post("/devices/:id/revoke", requireRole("operator"), validate("param", DeviceParam), async (c) => {
    const { id } = c.req.valid("param");
    const had = await (await knownRoom(c.env, id)).revoke();
    console.log(`device ${id} credentials revoked`);
    await audit(c, "device.revoke", `device:${id}`, { hadCredentials: had });
    return c.json({ id, revoked: had });
  })
  .post(
    "/tickets",
    requireRole("device", "viewer"),
    rateLimit<AuthEnv>(
      (env) => env.DEVICE_LIMITER,
      (c) => {
        const p = c.get("principal");
        return p.role === "device" ? `device:${p.id}` : `ip:${clientIp(c)}`;
      },
      "ticket requests",
    ),
    validateJson(TicketRequest),
    async (c) => {
      const principal = c.get("principal");
      const body = c.req.valid("json");
      const secret = sessionSecret(c.env);
      if (principal.role === "device") {
        // A device opens its own room, as a device, and nothing else.
        if (!("device" in body) || body.device !== principal.id || body.role === "dashboard") {
          throw new ApiError(403, "forbidden", "a device may only open its own room");
        }
        const ticket = await issueTicket(secret, { room: `device:${principal.id}`, role: "device", sub: `device:${principal.id}` });
        return c.json({ ...ticket, path: `/parties/device/${principal.id}` } satisfies TicketResponse);
      }
      if ("fleet" in body) {
        throw new ApiError(410, "gone", "there is no fleet socket any more: page GET /api/devices (docs/fleet.md)");
      }
      if (body.role === "device") throw new ApiError(403, "forbidden", "only the device itself may open its device socket");
      await knownRoom(c.env, body.device);
      // `<role>:<account>`: the room lets operators command and names the account in the audit trail.
      const ticket = await issueTicket(secret, { room: `device:${body.device}`, role: "dashboard", sub: `${principal.role}:${principal.account}` });
      return c.json({ ...ticket, path: `/parties/device/${body.device}` } satisfies TicketResponse);
    },
  )
  .route("/", accounts)
  .route("/", alerts);
