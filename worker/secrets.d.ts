// Secrets are not in wrangler.toml (they live in .dev.vars locally and in
// `wrangler secret put` on Cloudflare), so `wrangler types` cannot see them.
// They are declared here, once, merged into the generated Env.
interface Env {
  /** HMAC key for socket tickets and session cookies; ≥ 32 characters. */
  SESSION_SECRET: string;
  /** The operator's sign-in token and API key; ≥ 24 characters. */
  ADMIN_TOKEN: string;
  /** Optional read-only sign-in token and API key; ≥ 24 characters. */
  VIEWER_TOKEN?: string;
  /** Key of the alert webhooks' HMAC-SHA256 signature (docs/alerts.md); without it no webhook is sent. */
  ALERT_WEBHOOK_SECRET?: string;
}
declare namespace Cloudflare {
  interface Env {
    SESSION_SECRET: string;
    ADMIN_TOKEN: string;
    VIEWER_TOKEN?: string;
    ALERT_WEBHOOK_SECRET?: string;
  }
}
