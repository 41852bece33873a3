// Secrets are not in wrangler.toml (they live in .dev.vars locally and in
// `wrangler secret put` on Cloudflare), so `wrangler types` cannot see them.
// They are declared here, once, merged into the generated Env.
interface Env {
  /** HMAC key for socket tickets and sessions; ≥ 32 characters. */
  SESSION_SECRET: string;
}
declare namespace Cloudflare {
  interface Env {
    SESSION_SECRET: string;
  }
}
