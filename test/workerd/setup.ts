// Warm the Worker once per file so the first real test does not pay the cold start inside its time-out.
import { exports } from "cloudflare:workers";
import { beforeAll } from "vitest";

beforeAll(async () => {
  await exports.default.fetch("http://warm.up/api/devices");
});
