/**
 * Alert webhooks end to end (docs/alerts.md): the real endpoint process (Miniflare directly, as
 * the container runs it) POSTs to a webhook receiver on this machine (node:http). The receiver
 * refuses the first try with a 500; the room retries from its alarm, and every request carries a
 * signature that verifies with the endpoint's ALERT_WEBHOOK_SECRET, exactly as docs/alerts.md
 * tells a receiver to check it.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebhookPayload, type DeviceAlerts } from "../../party/protocol";
import { EndpointClient, helloDevice } from "../support/client";
import { startEndpoint, type Endpoint } from "../support/endpoint";
import { waitFor } from "../support/processes";

type Received = { headers: IncomingHttpHeaders; body: string; answered: number };

/** The check docs/alerts.md gives receivers: HMAC-SHA256 of `<t>.<raw body>`, compared in constant time, `t` recent. */
function verify(secret: string, header: string | undefined, body: string, now = Date.now()): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? "");
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(now - t) > 5 * 60_000) return false;
  const expected = createHmac("sha256", secret).update(`${t}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(m[2]!, "hex"));
}

describe("alert webhooks", () => {
  let endpoint: Endpoint;
  let client: EndpointClient;
  let receiver: Server;
  let hookUrl: string;
  const received: Received[] = [];
  /** Statuses the receiver answers with, in turn (then 200). */
  const answers: number[] = [];

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const answered = answers.shift() ?? 200;
        received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), answered });
        res.writeHead(answered, { "content-type": "text/plain" }).end(answered === 200 ? "ok" : "try again");
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/iot`;
    // Retries 300 ms after a failure (30 s by default); a group commits within 200 ms.
    endpoint = await startEndpoint({ direct: true, vars: { ALERT_RETRY_BASE_MS: "300", GROUP_COMMIT_MS: "200", PRESENCE_CHECK_MS: "500" } });
    client = new EndpointClient(endpoint.url, endpoint.adminToken);
  });

  afterAll(async () => {
    await endpoint?.close();
    await new Promise((resolve) => receiver?.close(resolve));
  });

  it("delivers a raised alert, retries it after a 500, and signs every try with the endpoint's secret", async () => {
    const id = "e2e-alerts";
    await client.register(id);
    const rule = await client.admin(`/api/devices/${id}/alerts/rules/freezer`, {
      method: "PUT",
      json: { kind: "above", threshold: -10, scale: "C", name: "Freezer too warm", webhook: hookUrl },
    });
    expect(rule.status).toBe(200);
    answers.push(500);
    const device = await client.openRoom(id, "device");
    await helloDevice(device, "stream-e2e-alerts");
    // 15.8 °F is −9 °C: above −10 °C.
    device.send({ type: "readings", readings: [{ seq: 1, ts: Date.now(), temperature: 15.8, scale: "F" }] });

    await waitFor("two tries at the webhook", async () => (received.length >= 2 ? true : null), 20_000, 100);
    const [first, second] = received;
    expect(first!.answered).toBe(500);
    expect(second!.answered).toBe(200);
    // One event, tried twice: the same delivery id and body; each try signed anew.
    expect(second!.headers["x-iot-delivery"]).toBe(first!.headers["x-iot-delivery"]);
    expect(second!.body).toBe(first!.body);
    const secret = endpoint.secrets().ALERT_WEBHOOK_SECRET!;
    expect(secret).toMatch(/^whsec_/);
    for (const r of [first!, second!]) {
      expect(r.headers["content-type"]).toBe("application/json");
      expect(r.headers["x-iot-event"]).toBe("alert.raised");
      expect(verify(secret, r.headers["x-iot-signature"] as string, r.body)).toBe(true);
      // A wrong secret, or a body changed in transit, does not verify.
      expect(verify(`${secret}x`, r.headers["x-iot-signature"] as string, r.body)).toBe(false);
      expect(verify(secret, r.headers["x-iot-signature"] as string, r.body.replace("-9", "-8"))).toBe(false);
    }
    const payload = WebhookPayload.parse(JSON.parse(second!.body));
    expect(payload).toMatchObject({ event: "alert.raised", device: id, rule: { id: "freezer", kind: "above" } });
    expect(payload.alert).toMatchObject({ rule: "freezer", status: "active", value: -9, scale: "C" });
    expect(payload.alert.message).toBe("Freezer too warm: -9 °C above -10 °C");

    // The attempts are in the API: a 500, then a 200, delivered.
    const alerts = await waitFor(
      "the delivery recorded as delivered",
      async () => {
        const a = await client.json<DeviceAlerts>(`/api/devices/${id}/alerts`);
        return a.deliveries[0]?.status === "delivered" ? a : null;
      },
      10_000,
      100,
    );
    expect(alerts.deliveries[0]!.attempts.map((a) => a.status)).toEqual([500, 200]);
    expect(alerts.deliveries[0]!.attempts[1]!.at - alerts.deliveries[0]!.attempts[0]!.at).toBeGreaterThanOrEqual(300);

    // Acknowledged by the operator: the webhook hears that too.
    const ack = await client.admin(`/api/devices/${id}/alerts/${payload.alert.id}/acknowledge`, { method: "POST" });
    expect(ack.status).toBe(200);
    await waitFor("the acknowledgement at the webhook", async () => (received.some((r) => r.headers["x-iot-event"] === "alert.acknowledged") ? true : null), 10_000, 100);
    const acked = received.find((r) => r.headers["x-iot-event"] === "alert.acknowledged")!;
    expect(verify(secret, acked.headers["x-iot-signature"] as string, acked.body)).toBe(true);
    expect(WebhookPayload.parse(JSON.parse(acked.body)).alert).toMatchObject({ status: "acknowledged", acknowledgedBy: "admin" });
    device.close();
  });
});
