/**
 * Rate limits on the REST edge, with the Workers Rate Limiting binding (the
 * `[[ratelimits]]` in wrangler.toml): counted at Cloudflare's edge when
 * deployed, in memory under wrangler dev. Socket frames are limited in the
 * room itself (see DeviceRoom), where the connection lives.
 */
import type { Context, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import { ApiError } from "./errors";

/**
 * The caller's address, as a rate-limit key the caller cannot choose.
 * - Behind our own nginx (TRUST_PROXY="true"): the address nginx saw (X-Real-IP, which it
 *   overwrites). Never trust that header without a proxy that does.
 * - On Cloudflare: `CF-Connecting-IP`, set by the edge.
 * - Run locally (LOCAL_ENDPOINT="true": Miniflare and wrangler dev keep a client-sent
 *   `CF-Connecting-IP` and only fill it in when absent): one shared key, so a fresh forged
 *   header per request buys no fresh budget.
 */
export function clientIp(c: { env: Env; req: { header(name: string): string | undefined } }): string {
  if (c.env.TRUST_PROXY === "true") {
    const real = c.req.header("x-real-ip");
    if (real) return real;
  }
  if (c.env.LOCAL_ENDPOINT === "true") return "local";
  return c.req.header("cf-connecting-ip") ?? "unknown";
}

/**
 * @example app.use("/api/*", rateLimit((env) => env.IP_LIMITER, (c) => clientIp(c), "requests from this address"))
 */
export function rateLimit<E extends { Bindings: Env }>(
  binding: (env: Env) => RateLimit | undefined,
  key: (c: Context<E>) => string,
  what: string,
): MiddlewareHandler<E> {
  return createMiddleware<E>(async function rateLimitMiddleware(c, next) {
    const limiter = binding(c.env);
    // A deployment without the binding configured is not limited here; wrangler.toml always has it.
    if (limiter) {
      const { success } = await limiter.limit({ key: key(c) });
      if (!success) {
        c.header("Retry-After", "60");
        throw new ApiError(429, "rate_limited", `too many ${what}; retry in a minute`);
      }
    }
    await next();
  });
}
