/**
 * Pure wording for the alerts panel: a rule in a sentence, an alert's state with its times, a
 * delivery's attempts. No DOM, no clock (callers pass `now`), so it is unit-tested in Node.
 */
import { durationText } from "../../party/duration";
import type { AlertRecord, AlertRule, WebhookDelivery } from "../../party/protocol";

// The room writes alert messages and latencies with the same words (party/duration.ts).
export { durationText };

/** "Above 80 °F for 5 min (ends at or below 79.5 °F)", "No reading for 10 min", "Offline for 2 min". */
export function ruleText(rule: AlertRule): string {
  const lasting = rule.forMs ? ` for ${durationText(rule.forMs)}` : "";
  switch (rule.kind) {
    case "above":
    case "below": {
      const end = rule.kind === "above" ? rule.threshold - rule.deadband : rule.threshold + rule.deadband;
      const settled = rule.deadband ? ` (ends at or ${rule.kind === "above" ? "below" : "above"} ${trim(end)} °${rule.scale})` : "";
      return `${rule.kind === "above" ? "Above" : "Below"} ${trim(rule.threshold)} °${rule.scale}${lasting}${settled}`;
    }
    case "no-data":
      return `No reading for ${durationText(rule.forMs)}`;
    case "offline":
      return `Offline${lasting}`;
  }
}

/** "Active · since 14:02:10 · raised 3 min ago", "Acknowledged by alice · …", "Cleared at 14:30:02 · lasted 28 min". */
export function alertStateText(alert: AlertRecord, now: number, time: (ts: number) => string = (ts) => new Date(ts).toLocaleTimeString()): string {
  const raised = `raised ${ago(now - alert.raisedAt)}`;
  if (alert.status === "cleared" && alert.clearedAt !== null) {
    const acked = alert.acknowledgedBy ? ` · acknowledged by ${alert.acknowledgedBy}` : "";
    return `Cleared at ${time(alert.clearedAt)} · lasted ${durationText(alert.clearedAt - alert.since)}${acked}`;
  }
  if (alert.status === "acknowledged") {
    return `Acknowledged by ${alert.acknowledgedBy ?? "someone"} ${ago(now - (alert.acknowledgedAt ?? now))} · since ${time(alert.since)} · ${raised}`;
  }
  return `Active · since ${time(alert.since)} · ${raised}`;
}

/** "delivered (2 tries)", "retrying: answered 500 (3 tries)", "failed: no answer within 10000 ms (8 tries)". */
export function deliveryText(d: WebhookDelivery): string {
  const tries = `${d.attempts.length} ${d.attempts.length === 1 ? "try" : "tries"}`;
  const last = d.attempts[d.attempts.length - 1];
  if (d.status === "delivered") return `${d.event}: delivered (${tries})`;
  if (!last) return `${d.event}: waiting`;
  return `${d.event}: ${d.status === "failed" ? "failed" : "retrying"}: ${last.error ?? `answered ${last.status}`} (${tries})`;
}

function ago(ms: number): string {
  return ms < 5000 ? "just now" : `${durationText(ms)} ago`;
}

function trim(n: number): string {
  return String(Math.round(n * 100) / 100);
}
