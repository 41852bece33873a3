/**
 * Pure wording for the audit and sessions views: what an audit row says in a sentence's words,
 * and a short name for a browser. No DOM, no clock (callers pass `now`), so it is unit-tested in Node.
 */
import type { AuditAction, AuditEntry } from "../../party/protocol";

const ACTIONS: Record<AuditAction, string> = {
  login: "signed in",
  "login.failed": "failed to sign in",
  logout: "signed out",
  "session.revoke": "ended a session",
  "account.add": "added an account",
  "account.remove": "removed an account",
  "release.publish": "published an agent release",
  "rollout.create": "started a rollout",
  "rollout.pause": "paused a rollout",
  "rollout.resume": "resumed a rollout",
  "rollout.cancel": "cancelled a rollout",
  "rollout.advance": "advanced a rollout to its next stage",
  "device.provision": "provisioned a device",
  "device.rotate": "rotated a device's token",
  "device.revoke": "revoked a device's token",
  "device.command": "sent a command",
  "device.batching": "changed batching",
  "alert.rule.set": "set an alert rule",
  "alert.rule.delete": "removed an alert rule",
  "alert.default.set": "set a default alert rule",
  "alert.default.delete": "removed a default alert rule",
  "alert.acknowledge": "acknowledged an alert",
};

export function actionText(action: AuditAction): string {
  return ACTIONS[action];
}

/** `device:pi-1` → `pi-1`; `session:AbCd…` → `session AbCdEfGh…` (ids are long; the start tells them apart). */
export function targetText(target: string | null): string {
  if (target === null) return "";
  if (target.startsWith("device:")) return target.slice("device:".length);
  if (target.startsWith("session:")) return `session ${target.slice("session:".length, "session:".length + 8)}…`;
  return target;
}

/** The facts of a row, worded: `scale → °C`, `interval → 2,000 ms`, `role viewer`, `wrong token`. */
export function detailText(entry: Pick<AuditEntry, "action" | "detail">, locale?: string): string {
  const d = entry.detail;
  if (!d) return "";
  switch (entry.action) {
    case "device.command":
      if (d.cmd === "scale") return `scale → °${String(d.scale)}`;
      if (d.cmd === "interval") return `interval → ${Number(d.intervalMs).toLocaleString(locale)} ms`;
      break;
    case "device.batching":
      return `holds readings up to ${Number(d.unwatchedMs).toLocaleString(locale)} ms while unwatched`;
    case "device.revoke":
      return d.hadCredentials === false ? "it had no token" : "";
    case "account.add":
      return `role ${String(d.role)}`;
    case "account.remove":
      return `role ${String(d.role)}, ${Number(d.sessionsEnded)} session(s) ended`;
    case "session.revoke":
      return `of ${String(d.account)}`;
    case "login.failed":
      return String(d.reason ?? "");
  }
  return Object.entries(d)
    .map(([k, v]) => `${k} ${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(", ");
}

/** A browser, in a few words, from its User-Agent: "Firefox on Linux", or the start of it. */
export function browserText(userAgent: string): string {
  if (!userAgent) return "unknown";
  const browser = /Edg\//.test(userAgent)
    ? "Edge"
    : /Firefox\//.test(userAgent)
      ? "Firefox"
      : /Chrom(e|ium)\//.test(userAgent)
        ? "Chrome"
        : /Safari\//.test(userAgent)
          ? "Safari"
          : null;
  const os = /Android/.test(userAgent)
    ? "Android"
    : /iPhone|iPad/.test(userAgent)
      ? "iOS"
      : /Windows/.test(userAgent)
        ? "Windows"
        : /Mac OS X/.test(userAgent)
          ? "macOS"
          : /Linux/.test(userAgent)
            ? "Linux"
            : null;
  if (browser && os) return `${browser} on ${os}`;
  return browser ?? (userAgent.length > 40 ? `${userAgent.slice(0, 40)}…` : userAgent);
}
