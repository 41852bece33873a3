/**
 * The legacy device routes, byte-compatible with the old Express endpoint so
 * old devices and scripts keep working once they send their token
 * (`Authorization: Bearer <id>.<secret>`; the old endpoint had no security):
 *
 *   GET  /iot/config   registration (header x-iot-ip) → configuration
 *   GET  /iot/update   firmware check
 *   POST /iot/data     legacy loopback `{iot: ts}`, or a batch of readings
 */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import {
  DeviceId,
  IpAddress,
  IotDataBody,
  LIMITS,
  type IotConfigResponse,
  type IotUpdateResponse,
} from "../../party/protocol";
import { roomSettings } from "../../party/settings";
import { callingDevice, requireRole, type AuthEnv } from "../auth";
import { fleetFor } from "../../party/fleet";
import { room } from "../env";
import { ApiError } from "../errors";
import { rateLimit } from "../rate-limit";
import { validate, validateJson } from "../validate";
import { rolloutUpdate } from "./releases";
import { compareVersions } from "../../party/version";


const DeviceHeaders = z.object({
  "x-iot-ip": IpAddress.optional(),
  /** Optional: the token names the device; if sent, it must agree. */
  "x-iot-id": DeviceId.optional(),
});

/** The device this request speaks for: the one whose token it carries. */
function deviceId(c: Context<AuthEnv>, headers: z.infer<typeof DeviceHeaders>): string {
  const id = callingDevice(c);
  if (headers["x-iot-id"] !== undefined && headers["x-iot-id"] !== id) {
    throw new ApiError(403, "wrong_device", `this token belongs to ${id}, not ${headers["x-iot-id"]}`);
  }
  return id;
}

export const iot = new Hono<AuthEnv>()
  .use(requireRole("device"))
  .use(rateLimit<AuthEnv>((env) => env.DEVICE_LIMITER, (c) => `device:${callingDevice(c)}`, "requests from this device"))
  .get("/config", validate("header", DeviceHeaders), async (c) => {
    const headers = c.req.valid("header");
    const ip = headers["x-iot-ip"];
    if (!ip) throw new ApiError(400, "missing_header", "header x-iot-ip (the device's LAN address) is required");
    const id = deviceId(c, headers);
    await fleetFor(c.env, id).register(id, ip);
    const desired = await room(c.env, id).register(ip);
    const settings = roomSettings(c.env);
    return c.json({
      message: "IoT Configuration",
      iotip: ip,
      ts: Date.now(),
      id,
      config: {
        scale: desired.scale,
        intervalMs: desired.intervalMs,
        heartbeatMs: settings.heartbeatMs,
        socketPath: `/parties/device/${id}`,
        fw: c.env.FIRMWARE_VERSION,
      },
    } satisfies IotConfigResponse);
  })
  .get(
    "/update",
    validate("query", z.object({ version: z.string().regex(/^\d+\.\d+\.\d+$/, "version: MAJOR.MINOR.PATCH").optional() })),
    async (c) => {
      const { version } = c.req.valid("query");
      // A release a rollout means for this device (worker/routes/releases.ts) wins over the var.
      const meant = await rolloutUpdate(c.env, callingDevice(c), version);
      if (meant) return c.json(meant);
      const current = c.env.FIRMWARE_VERSION;
      const newer = version !== undefined && compareVersions(current, version) > 0;
      return c.json({
        message: "IoT Update",
        current,
        update: newer ? { version: current, url: c.env.FIRMWARE_URL || null } : null,
      } satisfies IotUpdateResponse);
    },
  )
  .post(
    "/data",
    bodyLimit({
      maxSize: LIMITS.maxBodyBytes,
      onError: () => {
        throw new ApiError(413, "payload_too_large", `body exceeds ${LIMITS.maxBodyBytes} bytes`);
      },
    }),
    validate("header", DeviceHeaders),
    validateJson(IotDataBody),
    async (c) => {
      const body = c.req.valid("json");
      if ("iot" in body) return c.json({ message: `POST loopback ${body.iot}` });
      const id = deviceId(c, c.req.valid("header"));
      const result = await room(c.env, id).ingest(body.readings);
      return c.json({ message: `POST loopback ${body.readings.length} readings`, ...result });
    },
  );
