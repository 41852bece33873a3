/** The alerts panel's wording (dashboard/src/alerts-format.ts): pure, so tested in Node. */
import { describe, expect, it } from "vitest";
import type { AlertRecord, AlertRule, WebhookDelivery } from "../../party/protocol";
import { alertStateText, deliveryText, durationText, ruleText } from "../../dashboard/src/alerts-format";

const rule = (over: Partial<AlertRule> & Pick<AlertRule, "kind">): AlertRule =>
  ({ id: "r", enabled: true, forMs: 0, ...(over.kind === "above" || over.kind === "below" ? { threshold: 80, scale: "F", deadband: 0.5 } : {}), ...over }) as AlertRule;

const alert = (over: Partial<AlertRecord> = {}): AlertRecord => ({
  id: 1,
  device: "pi-1",
  rule: "warm",
  kind: "above",
  status: "active",
  message: "warm: 81 °F above 80 °F",
  since: 1_000_000,
  raisedAt: 1_060_000,
  acknowledgedAt: null,
  acknowledgedBy: null,
  clearedAt: null,
  value: 81,
  scale: "F",
  ...over,
});

const time = (ts: number) => `T${ts}`;

describe("alerts wording", () => {
  it("says durations as people do", () => {
    expect(durationText(250)).toBe("250 ms");
    expect(durationText(75_000)).toBe("75 s");
    expect(durationText(60_000)).toBe("1 min");
    expect(durationText(300_000)).toBe("5 min");
    expect(durationText(5_400_000)).toBe("1 h 30 min");
  });

  it("says a rule in a sentence, with where it ends", () => {
    expect(ruleText(rule({ kind: "above", forMs: 300_000 }))).toBe("Above 80 °F for 5 min (ends at or below 79.5 °F)");
    expect(ruleText(rule({ kind: "below", threshold: -10, scale: "C", deadband: 1 }))).toBe("Below -10 °C (ends at or above -9 °C)");
    expect(ruleText(rule({ kind: "above", deadband: 0 }))).toBe("Above 80 °F");
    expect(ruleText(rule({ kind: "no-data", forMs: 600_000 }))).toBe("No reading for 10 min");
    expect(ruleText(rule({ kind: "offline", forMs: 120_000 }))).toBe("Offline for 2 min");
  });

  it("says an alert's state with its times and who acknowledged it", () => {
    expect(alertStateText(alert(), 1_060_000 + 180_000, time)).toBe("Active · since T1000000 · raised 3 min ago");
    expect(alertStateText(alert({ status: "acknowledged", acknowledgedAt: 1_100_000, acknowledgedBy: "alice" }), 1_100_000, time)).toBe(
      "Acknowledged by alice just now · since T1000000 · raised 40 s ago",
    );
    expect(alertStateText(alert({ status: "cleared", clearedAt: 2_680_000, acknowledgedBy: "alice" }), 3_000_000, time)).toBe(
      "Cleared at T2680000 · lasted 28 min · acknowledged by alice",
    );
  });

  it("says how a webhook delivery went", () => {
    const d = (over: Partial<WebhookDelivery>): WebhookDelivery => ({
      id: "d",
      alert: 1,
      event: "alert.raised",
      url: "https://hooks.example/x",
      status: "pending",
      attempts: [],
      nextAttemptAt: null,
      createdAt: 0,
      ...over,
    });
    const tried = (status: number | null, error: string | null) => ({ at: 0, status, error, ms: 5 });
    expect(deliveryText(d({ status: "delivered", attempts: [tried(500, "answered 500"), tried(200, null)] }))).toBe("alert.raised: delivered (2 tries)");
    expect(deliveryText(d({ attempts: [tried(500, "answered 500")] }))).toBe("alert.raised: retrying: answered 500 (1 try)");
    expect(deliveryText(d({ status: "failed", attempts: [tried(null, "no answer within 10000 ms")] }))).toBe("alert.raised: failed: no answer within 10000 ms (1 try)");
    expect(deliveryText(d({}))).toBe("alert.raised: waiting");
  });
});
