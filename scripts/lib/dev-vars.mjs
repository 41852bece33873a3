// Local secrets without juggling: the first run writes .dev.vars (git-ignored)
// with fresh random values; later runs keep them. Nothing in the repo is a usable secret.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";

/** The secrets the Worker needs, and how to make each one. */
export const SECRETS = {
  SESSION_SECRET: () => randomBytes(32).toString("base64url"),
  ADMIN_TOKEN: () => `op_${randomBytes(24).toString("base64url")}`,
  VIEWER_TOKEN: () => `view_${randomBytes(24).toString("base64url")}`,
  ALERT_WEBHOOK_SECRET: () => `whsec_${randomBytes(32).toString("base64url")}`,
};

export function parseDevVars(text) {
  const vars = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Z0-9_]+)\s*=\s*"?(.*?)"?\s*$/.exec(line);
    if (m && !line.trimStart().startsWith("#")) vars[m[1]] = m[2];
  }
  return vars;
}

/** Make sure `file` holds every secret; add the missing ones. Returns all values. */
export function ensureDevVars(file) {
  const current = existsSync(file) ? parseDevVars(readFileSync(file, "utf8")) : {};
  const missing = Object.keys(SECRETS).filter((k) => !current[k]);
  if (missing.length) {
    const header = existsSync(file) ? "" : "# Local secrets for wrangler dev, made by scripts/lib/dev-vars.mjs. Git-ignored; delete to regenerate.\n";
    const lines = missing.map((k) => `${k}="${(current[k] = SECRETS[k]())}"`).join("\n");
    const before = existsSync(file) ? readFileSync(file, "utf8").replace(/\n*$/, "\n") : "";
    writeFileSync(file, `${header}${before}${lines}\n`, { mode: 0o600 });
    console.log(`endpoint: wrote ${missing.join(", ")} to ${file}`);
  }
  return current;
}
