/**
 * Alert rules (docs/alerts.md): evaluated in the device's room as readings arrive, with
 * hysteresis and durations; no-data and offline from the room's alarm; the lifecycle
 * active → acknowledged → cleared; the API's auth and validation; defaults from the fleet
 * shards; the batching bound a rule asks of its device; webhook retries.
 *
 * Test vars (vitest.config.ts): presence checked every 300 ms, heartbeat time-out 900 ms,
 * webhook retries 100 ms apart (doubling). Readings from helpers.reading are 1 s apart by
 * their own timestamps, so "for 5 s" is five readings' span.
 */
import { describe, expect, it } from "vitest";
import type { AlertRecord, AlertRulesAnswer, AuditPage, DeviceAlerts, RoomStats } from "../../party/protocol";
import {
  asAdmin,
  asViewer,
  call,
  connectDashboard,
  connectDevice,
  get,
  json,
  reading,
  register,
  uniqueId,
  type Client,
} from "./helpers";

const put = (path: string, body: unknown, headers: Record<string, string> = asAdmin) =>
  call(path, { method: "PUT", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
const del = (path: string, headers: Record<string, string> = asAdmin) => call(path, { method: "DELETE", headers });
const post = (path: string, headers: Record<string, string> = asAdmin) => call(path, { method: "POST", headers });

const alertsOf = async (id: string): Promise<DeviceAlerts> => json(await get(`/api/devices/${id}/alerts`));
const rulesOf = async (id: string): Promise<AlertRulesAnswer> => json(await get(`/api/devices/${id}/alerts/rules`));
const stats = async (id: string): Promise<RoomStats> => json(await get(`/api/devices/${id}/stats`));

async function setRule(id: string, rule: string, body: unknown): Promise<void> {
  const res = await put(`/api/devices/${id}/alerts/rules/${rule}`, body);
  if (res.status !== 200) throw new Error(`rule ${rule}: ${res.status} ${await res.text()}`);
}

/** Poll until `check` passes (every wait has a time-out). */
async function until<T>(what: string, probe: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 5_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T = await probe();
  while (!check(last)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last).slice(0, 800)}`);
    await new Promise((r) => setTimeout(r, 50));
    last = await probe();
  }
  return last;
}

/** Send readings one frame each (seq `from`…, temperatures given) and wait until the room holds them. */
async function send(device: Client, dash: Client, from: number, temperatures: number[]): Promise<void> {
  temperatures.forEach((t, i) => device.send({ type: "readings", readings: [reading(from + i, t)] }));
  const last = from + temperatures.length - 1;
  await dash.next((m) => m.type === "readings" && m.readings.some((r: { seq: number }) => r.seq === last));
}

const alertMessages = (dash: Client): AlertRecord[] => dash.messages.filter((m) => m.type === "alert").map((m) => m.alert as AlertRecord);

async function setup(): Promise<{ id: string; device: Client; dash: Client }> {
  const id = uniqueId("alert");
  await register(id);
  const dash = await connectDashboard(id);
  const device = await connectDevice(id);
  return { id, device, dash };
}

describe("threshold rules", () => {
  it("raise an alert only once readings have stayed above for the duration, and clear it at threshold − deadband", async () => {
    const { id, device, dash } = await setup();
    await setRule(id, "warm", { kind: "above", threshold: 80, scale: "F", forMs: 5000, deadband: 1 });
    // Four seconds above (seq 1..5 spans 4 s): not yet.
    await send(device, dash, 1, [81, 82, 83, 82, 81]);
    expect((await alertsOf(id)).active).toEqual([]);
    // The sixth reading makes it 5 s.
    await send(device, dash, 6, [81.5]);
    const raised = await dash.next((m) => m.type === "alert");
    expect(raised.alert).toMatchObject({ rule: "warm", kind: "above", status: "active", value: 81.5, scale: "F", clearedAt: null });
    expect(raised.alert.since).toBe(reading(1).ts);
    expect(raised.alert.message).toContain("above 80 °F for 5 s");
    // 79.5 is below the threshold but within the deadband: still active.
    await send(device, dash, 7, [79.5]);
    expect((await alertsOf(id)).active.map((a) => a.id)).toEqual([raised.alert.id]);
    // 79 is threshold − deadband: cleared.
    await send(device, dash, 8, [79]);
    const cleared = await dash.next((m) => m.type === "alert" && m.alert.status === "cleared");
    expect(cleared.alert.id).toBe(raised.alert.id);
    const after = await alertsOf(id);
    expect(after.active).toEqual([]);
    expect(after.history[0]).toMatchObject({ id: raised.alert.id, status: "cleared" });
    device.close();
    dash.close();
  });

  it("do not flap on noise around the threshold: one alert, no clear, and noise does not restart the duration", async () => {
    const { id, device, dash } = await setup();
    await setRule(id, "warm", { kind: "above", threshold: 80, scale: "F", forMs: 10_000, deadband: 0.5 });
    // ±0.3 °F around 80 for 30 s: under the threshold half the time, never down to 79.5.
    const noise = Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? 80.3 : 79.7));
    await send(device, dash, 1, noise);
    const alerts = await alertsOf(id);
    expect(alertMessages(dash)).toHaveLength(1);
    expect(alerts.active).toHaveLength(1);
    // The breach started with the first reading above, and the dips within the deadband did not restart it.
    expect(alerts.active[0]!.since).toBe(reading(1).ts);
    expect(alerts.active[0]!.raisedAt).toBeGreaterThan(0);
    expect(alerts.history).toEqual([]);
    device.close();
    dash.close();
  });

  it("compare a reading in the other scale after converting it", async () => {
    const { id, device, dash } = await setup();
    // −10 °C is 14 °F; a freezer reading 15.8 °F is −9 °C: above.
    await setRule(id, "freezer", { kind: "above", threshold: -10, scale: "C" });
    await send(device, dash, 1, [13]);
    expect((await alertsOf(id)).active).toEqual([]);
    await send(device, dash, 2, [15.8]);
    const raised = await dash.next((m) => m.type === "alert");
    expect(raised.alert).toMatchObject({ rule: "freezer", value: -9, scale: "C" });
    device.close();
    dash.close();
  });

  it("below rules mirror above, deadband upwards", async () => {
    const { id, device, dash } = await setup();
    await setRule(id, "cold", { kind: "below", threshold: 60, scale: "F", deadband: 2 });
    await send(device, dash, 1, [59, 61, 59.5]);
    expect(alertMessages(dash).map((a) => a.status)).toEqual(["active"]);
    await send(device, dash, 4, [62]);
    await dash.next((m) => m.type === "alert" && m.alert.status === "cleared");
    device.close();
    dash.close();
  });
});

describe("time-based rules, from the room's alarm", () => {
  it("raise no-data when readings stop for the duration, and clear it with the next reading", async () => {
    const { id, device, dash } = await setup();
    await setRule(id, "silent", { kind: "no-data", forMs: 1000 });
    await send(device, dash, 1, [70]);
    const raised = await dash.next((m) => m.type === "alert", 5_000);
    expect(raised.alert).toMatchObject({ rule: "silent", kind: "no-data", status: "active" });
    expect(raised.alert.raisedAt - raised.alert.since).toBeGreaterThanOrEqual(1000);
    // This test's device does not ping: by now the room has closed its socket as half-open.
    device.close();
    const back = await connectDevice(id);
    await send(back, dash, 2, [70]);
    await dash.next((m) => m.type === "alert" && m.alert.status === "cleared");
    back.close();
    dash.close();
  });

  it("raise offline once the device has been away for the duration, and clear it when it says hello again", async () => {
    const { id, device, dash } = await setup();
    await setRule(id, "gone", { kind: "offline", forMs: 500 });
    device.close();
    await dash.next((m) => m.type === "presence" && m.online === false);
    expect(alertMessages(dash)).toEqual([]);
    const raised = await dash.next((m) => m.type === "alert", 5_000);
    expect(raised.alert).toMatchObject({ rule: "gone", kind: "offline", status: "active" });
    expect(raised.alert.raisedAt - raised.alert.since).toBeGreaterThanOrEqual(500);
    const back = await connectDevice(id, { stream: "stream-test-1" });
    const cleared = await dash.next((m) => m.type === "alert" && m.alert.status === "cleared");
    expect(cleared.alert.id).toBe(raised.alert.id);
    back.close();
    dash.close();
  });
});

describe("the lifecycle and its API", () => {
  it("active → acknowledged (who, when) → cleared; acknowledging again is harmless, a cleared or unknown alert is refused; all audited", async () => {
    const { id, device, dash } = await setup();
    await setRule(id, "warm", { kind: "above", threshold: 80, scale: "F" });
    await send(device, dash, 1, [85]);
    const { alert } = await dash.next((m) => m.type === "alert");
    expect((await post(`/api/devices/${id}/alerts/${alert.id}/acknowledge`, asViewer)).status).toBe(403);
    const ack = await post(`/api/devices/${id}/alerts/${alert.id}/acknowledge`);
    expect(ack.status).toBe(200);
    const acked = await json<AlertRecord>(ack);
    expect(acked).toMatchObject({ id: alert.id, status: "acknowledged", acknowledgedBy: "admin" });
    expect(acked.acknowledgedAt).toBeGreaterThanOrEqual(alert.raisedAt);
    await dash.next((m) => m.type === "alert" && m.alert.status === "acknowledged");
    expect((await post(`/api/devices/${id}/alerts/${alert.id}/acknowledge`)).status).toBe(200);
    await send(device, dash, 2, [70]);
    const cleared = await dash.next((m) => m.type === "alert" && m.alert.status === "cleared");
    expect(cleared.alert).toMatchObject({ acknowledgedBy: "admin", acknowledgedAt: acked.acknowledgedAt });
    expect(cleared.alert.clearedAt).toBeGreaterThanOrEqual(acked.acknowledgedAt!);
    const again = await post(`/api/devices/${id}/alerts/${alert.id}/acknowledge`);
    expect(again.status).toBe(409);
    expect((await json(again)).error.code).toBe("alert_cleared");
    expect((await post(`/api/devices/${id}/alerts/999999/acknowledge`)).status).toBe(404);
    const audit = await json<AuditPage>(await get("/api/audit?limit=100"));
    const mine = audit.entries.filter((e) => e.target === `device:${id}`).map((e) => e.action);
    expect(mine).toContain("alert.rule.set");
    expect(mine.filter((a) => a === "alert.acknowledge")).toHaveLength(1);
    device.close();
    dash.close();
  });

  it("lets viewers read rules and alerts but not change them, and refuses the anonymous", async () => {
    const id = uniqueId("alert");
    await register(id);
    const rule = { kind: "offline", forMs: 60_000 };
    expect((await put(`/api/devices/${id}/alerts/rules/gone`, rule, asViewer)).status).toBe(403);
    expect((await del(`/api/devices/${id}/alerts/rules/gone`, asViewer)).status).toBe(403);
    expect((await put(`/api/alerts/defaults/gone`, rule, asViewer)).status).toBe(403);
    expect((await call(`/api/devices/${id}/alerts`)).status).toBe(401);
    expect((await call(`/api/devices/${id}/alerts/rules`)).status).toBe(401);
    expect((await call(`/api/alerts`)).status).toBe(401);
    expect((await get(`/api/devices/${id}/alerts/rules`, asViewer)).status).toBe(200);
    expect((await get(`/api/devices/${id}/alerts`, asViewer)).status).toBe(200);
    expect((await get(`/api/alerts/defaults`, asViewer)).status).toBe(200);
  });

  it("answers a bad rule with a clear 400, an unknown device or rule with 404", async () => {
    const id = uniqueId("alert");
    await register(id);
    const bad: [string, unknown, RegExp][] = [
      ["warm", { kind: "above", scale: "F" }, /threshold/],
      ["warm", { kind: "sideways", threshold: 1, scale: "F" }, /kind/],
      ["warm", { kind: "above", threshold: 1, scale: "K" }, /scale/],
      ["warm", { kind: "above", threshold: 1, scale: "F", forMs: -5 }, /forMs/],
      ["warm", { kind: "above", threshold: 1, scale: "F", extra: true }, /extra|Unrecognized/i],
      ["warm", { kind: "above", threshold: 1, scale: "F", webhook: "https://user:pw@hooks.example/x" }, /webhook/],
      ["warm", { kind: "above", threshold: 1, scale: "F", webhook: "ftp://hooks.example/x" }, /webhook/],
      ["silent", { kind: "no-data", forMs: 10 }, /forMs/],
      ["Warm!", { kind: "offline" }, /rule id/],
    ];
    for (const [rule, body, message] of bad) {
      const res = await put(`/api/devices/${id}/alerts/rules/${encodeURIComponent(rule)}`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const error = (await json(res)).error;
      expect(error.code).toBe("validation_failed");
      expect(error.message).toMatch(message);
    }
    const notJson = await call(`/api/devices/${id}/alerts/rules/warm`, { method: "PUT", headers: asAdmin, body: "{" });
    expect(notJson.status).toBe(400);
    expect((await put(`/api/devices/nobody-${id}/alerts/rules/warm`, { kind: "offline" })).status).toBe(404);
    expect((await get(`/api/devices/nobody-${id}/alerts`)).status).toBe(404);
    expect((await del(`/api/devices/${id}/alerts/rules/never`)).status).toBe(404);
    expect((await post(`/api/devices/${id}/alerts/abc/acknowledge`)).status).toBe(400);
  });

  it("caps a device's own rules at 20", async () => {
    const id = uniqueId("alert");
    await register(id);
    for (let i = 0; i < 20; i++) await setRule(id, `r${i}`, { kind: "offline", forMs: 3_600_000 });
    const res = await put(`/api/devices/${id}/alerts/rules/r20`, { kind: "offline" });
    expect(res.status).toBe(409);
    // Replacing one of the twenty is fine.
    await setRule(id, "r3", { kind: "offline", forMs: 60_000 });
  });
});

describe("latency: the batching bound a rule asks of its device", () => {
  it("asks a device with a 5-min rule to send at least every 75 s while nobody watches, states each rule's latency, and lets go when the rule goes", async () => {
    const id = uniqueId("alert");
    await register(id);
    const device = await connectDevice(id);
    // Nobody watches: the default unwatched interval (wrangler.toml, 5 min).
    await device.next((m) => m.type === "batching" && m.maxDelayMs === 300_000);
    const from = device.messages.length;
    await setRule(id, "warm", { kind: "above", threshold: 80, scale: "F", forMs: 300_000 });
    await device.next((m) => m.type === "batching" && m.maxDelayMs === 75_000, 5_000, from);
    const rules = await rulesOf(id);
    expect(rules.unwatchedBatchingMs).toBe(75_000);
    expect(rules.rules[0]).toMatchObject({ source: "device", latencyMs: 75_000 });
    expect(rules.rules[0]!.latency).toMatch(/≤ 75 s after the 5 min/);
    expect((await stats(id)).batchingMs).toBe(75_000);
    // A rule for 0 s does not turn every reading into a frame: 10 s at most.
    await setRule(id, "hot", { kind: "above", threshold: 100, scale: "F" });
    await device.next((m) => m.type === "batching" && m.maxDelayMs === 10_000, 5_000, from);
    const back = device.messages.length;
    expect((await del(`/api/devices/${id}/alerts/rules/hot`)).status).toBe(200);
    expect((await del(`/api/devices/${id}/alerts/rules/warm`)).status).toBe(200);
    await device.next((m) => m.type === "batching" && m.maxDelayMs === 300_000, 5_000, back);
    device.close();
  });
});

describe("fleet-wide defaults", () => {
  it("reach a device with its next push, and a device rule of the same id overrides (here: switches off) a default", async () => {
    const rule = `def-${Date.now().toString(36)}`;
    const res = await put(`/api/alerts/defaults/${rule}`, { kind: "above", threshold: 300, scale: "F", name: "Way too hot" });
    expect(res.status).toBe(200);
    expect((await json(res)).rules.map((r: { id: string }) => r.id)).toContain(rule);
    const { id, device, dash } = await setup();
    await until("the default in the device's rules", () => rulesOf(id), (r) => r.rules.some((v) => v.rule.id === rule && v.source === "default"));
    await send(device, dash, 1, [301]);
    const raised = await dash.next((m) => m.type === "alert");
    expect(raised.alert).toMatchObject({ rule, status: "active" });
    expect(raised.alert.message).toMatch(/^Way too hot: /);
    // The fleet row counts it, and the fleet-wide view lists the device.
    const alerting = await until("the device in GET /api/alerts", async () => json(await get("/api/alerts")), (a: any) => a.devices.some((d: any) => d.id === id));
    expect(alerting.devices.find((d: any) => d.id === id).alerts).toBe(1);
    const summary = (await json(await get(`/api/devices?q=${id}`))).devices[0];
    expect(summary.alerts).toBe(1);
    // Switched off for this device: its open alert of that rule is cleared.
    await setRule(id, rule, { kind: "above", threshold: 300, scale: "F", enabled: false });
    await dash.next((m) => m.type === "alert" && m.alert.status === "cleared");
    expect((await rulesOf(id)).rules.filter((v) => v.rule.id === rule).map((v) => v.source)).toEqual(["device"]);
    expect((await del(`/api/alerts/defaults/${rule}`)).status).toBe(200);
    expect((await del(`/api/alerts/defaults/${rule}`)).status).toBe(404);
    device.close();
    dash.close();
  });
});

describe("cost", () => {
  it("writes no row for evaluating readings that change nothing: rows per reading are the same with rules as without", async () => {
    const rowsFor = async (withRules: boolean): Promise<number> => {
      const { id, device, dash } = await setup();
      if (withRules) {
        await setRule(id, "warm", { kind: "above", threshold: 90, scale: "F", forMs: 60_000 });
        await setRule(id, "cold", { kind: "below", threshold: 50, scale: "F" });
        await setRule(id, "silent", { kind: "no-data", forMs: 3_600_000 });
      }
      // The dashboard leaves: the device batches, each frame is one chunk (and readings under either threshold).
      dash.close();
      const before = await stats(id);
      for (let f = 0; f < 5; f++) {
        device.send({ type: "readings", readings: Array.from({ length: 60 }, (_, i) => reading(f * 60 + i + 1, 70)) });
        await device.next((m) => m.type === "ack" && m.seq === f * 60 + 60);
      }
      const after = await stats(id);
      device.close();
      expect(after.readingsStored - before.readingsStored).toBe(300);
      return after.rowsWritten - before.rowsWritten;
    };
    const without = await rowsFor(false);
    const withRules = await rowsFor(true);
    // For docs/alerts.md: the room's own count (RoomStats.rowsWritten), 300 readings in 5 frames.
    console.log(`alerts cost: ${without} rows for 300 readings without rules, ${withRules} with three rules (${(withRules / 300).toFixed(4)} per reading)`);
    expect(withRules).toBe(without);
  });

  it("writes a handful of rows per alert, not per reading: raise and clear cost their own rows only", async () => {
    const { id, device, dash } = await setup();
    await setRule(id, "warm", { kind: "above", threshold: 80, scale: "F", forMs: 2000 });
    dash.close();
    const before = await stats(id);
    // One frame: 70 (quiet), then 81 for 3 s (breach starts, raises), then 70 (clears).
    device.send({ type: "readings", readings: [70, 81, 81, 81, 70].map((t, i) => reading(i + 1, t)) });
    await device.next((m) => m.type === "ack" && m.seq === 5);
    const after = await stats(id);
    const alerts = await alertsOf(id);
    expect(alerts.history.map((a) => a.status)).toEqual(["cleared"]);
    const rows = after.rowsWritten - before.rowsWritten;
    // The chunk (1) plus: the breach's start and end in KV (2), the alert's insert and clear (2).
    console.log(`alerts cost: ${rows} rows for a frame that raised and cleared one alert (no webhook configured)`);
    expect(rows).toBeLessThanOrEqual(6);
    device.close();
  });
});

describe("webhook deliveries", () => {
  it("record a failed attempt and retry it from the alarm with growing waits, visible in the API", async () => {
    const { id, device, dash } = await setup();
    // Nothing listens on port 9 of this machine: each try fails at once.
    await setRule(id, "warm", { kind: "above", threshold: 80, scale: "F", webhook: "http://127.0.0.1:9/hook" });
    await send(device, dash, 1, [85]);
    await dash.next((m) => m.type === "alert");
    const alerts = await until("three attempts", () => alertsOf(id), (a) => (a.deliveries[0]?.attempts.length ?? 0) >= 3);
    const delivery = alerts.deliveries[0]!;
    expect(delivery).toMatchObject({ event: "alert.raised", url: "http://127.0.0.1:9/hook", alert: alerts.active[0]!.id });
    expect(["pending", "failed"]).toContain(delivery.status);
    const [a, b, c] = delivery.attempts;
    expect(a!.status).toBeNull();
    expect(a!.error).toBeTruthy();
    // Backoff: 100 ms, then 200 ms (ALERT_RETRY_BASE_MS doubling).
    expect(b!.at - a!.at).toBeGreaterThanOrEqual(100);
    expect(c!.at - b!.at).toBeGreaterThanOrEqual(200);
    device.close();
    dash.close();
  });
});
