/**
 * The endpoint: a Hono app in a Cloudflare Worker. REST routes for devices
 * and the dashboard, WebSocket upgrades routed to one Durable Object room per
 * device, and the dashboard's static assets (served by Workers static assets
 * before this code runs, except under /api, /iot and /parties).
 */
import { Hono } from "hono";
import type { AppEnv } from "./env";
import { notFound, onError } from "./errors";
import { clientIp, rateLimit } from "./rate-limit";
import { api } from "./routes/api";
import { iot } from "./routes/iot";
import { parties } from "./routes/parties";
import { releasesApi, releasesIot } from "./routes/releases";

export { DeviceRoom } from "../party/device-room";
export { FleetRegistry } from "../party/fleet";
export { Directory } from "../party/directory";
export { Releases } from "../party/releases";

export const app = new Hono<AppEnv>()
  .use(rateLimit<AppEnv>((env) => env.IP_LIMITER, (c) => clientIp(c), "requests from this address"))
  .route("/iot", iot)
  // Before /api: a release upload is larger than the rest of the API's body limit.
  .route("/iot", releasesIot)
  .route("/api", releasesApi)
  .route("/api", api)
  .route("/parties", parties)
  .notFound(notFound)
  .onError(onError);

export default app satisfies ExportedHandler<Env>;
