/**
 * The real endpoint process (`npm run endpoint`: wrangler dev + workerd, and
 * `DIRECT=1`: Miniflare + workerd without wrangler's proxy) on a free port, spoken to over real HTTP and real WebSockets. Relay figures are
 * printed for the record, never asserted (timing lives in `npm run bench`).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EndpointClient, helloDevice, percentile } from "../support/client";
import { startEndpoint, type Endpoint } from "../support/endpoint";
import { waitFor } from "../support/processes";

// Both ways the endpoint runs: wrangler dev (`npm run endpoint`, development) and
// Miniflare directly (`DIRECT=1`, the container and the benchmark): the same tests.
describe.each([
  { mode: "npm run endpoint (wrangler dev)", direct: false },
  { mode: "DIRECT=1 npm run endpoint (Miniflare)", direct: true },
])("$mode", ({ direct }) => {
  let endpoint: Endpoint;
  let client: EndpointClient;

  beforeAll(async () => {
    // A group commits within 200 ms here (15 s by default), so acks come in a test's time.
    endpoint = await startEndpoint({ direct, vars: { GROUP_COMMIT_MS: "200", PRESENCE_CHECK_MS: "500" } });
    client = new EndpointClient(endpoint.url, endpoint.adminToken);
  });

  afterAll(async () => {
    await endpoint?.close();
  });

  it("exposes none of wrangler's state tools under /cdn-cgi/ (Local Explorer, trace store)", async () => {
    // With them on, GET …/durable_objects/namespaces lists every room class as JSON and the
    // explorer runs SQL on any room, with no credentials (issue 12). Off, the path is ours:
    // the dashboard's single-page fallback (HTML), never the explorer's JSON.
    for (const path of [
      "/cdn-cgi/local/explorer/api/workers/durable_objects/namespaces",
      "/cdn-cgi/local/explorer/api",
      "/cdn-cgi/explorer/api",
    ]) {
      const res = await fetch(new URL(path, endpoint.url));
      const body = await res.text();
      expect(res.headers.get("content-type") ?? "", path).not.toMatch(/json/);
      expect(body, path).not.toContain("DeviceRoom");
    }
    const query = await fetch(new URL("/cdn-cgi/local/explorer/api/local/observability/query", endpoint.url), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sql: "SELECT name FROM spans LIMIT 1" }),
    });
    expect(await query.text()).not.toMatch(/"success":\s*true/);
  });

  it("serves the dashboard with a content security policy, nosniff and no framing", async () => {
    for (const path of ["/", "/devices/anything"]) {
      const res = await fetch(new URL(path, endpoint.url));
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-security-policy"), path).toMatch(/default-src 'self'.*frame-ancestors 'none'/);
      expect(res.headers.get("x-content-type-options"), path).toBe("nosniff");
      expect(res.headers.get("x-frame-options"), path).toBe("DENY");
    }
  });

  it("answers the legacy routes", async () => {
    const config = await client.register("e2e-legacy", "192.168.1.19");
    expect(config).toMatchObject({ message: "IoT Configuration", iotip: "192.168.1.19", id: "e2e-legacy" });
    const update = (await client.device("e2e-legacy", "/iot/update?version=1.0.0")).json();
    expect(update).toEqual({ message: "IoT Update", current: "1.0.0", update: null });
    const loop = (await client.device("e2e-legacy", "/iot/data", { method: "POST", json: { iot: 1739129986136 } })).json();
    expect(loop).toEqual({ message: "POST loopback 1739129986136" });
    expect((await client.device("e2e-legacy", "/iot/config")).status).toBe(400);
    // Secure by default: no credentials, no answer.
    expect((await client.anonymous("/iot/config", { headers: { "x-iot-ip": "10.0.0.9" } })).status).toBe(401);
    expect((await client.anonymous("/api/devices")).status).toBe(401);
  });

  it("relays readings from a device socket to three dashboard sockets, in order, and logs each", async () => {
    const id = "e2e-relay";
    await client.register(id);
    const dashboards = await Promise.all([1, 2, 3].map(() => client.openRoom(id, "dashboard")));
    for (const d of dashboards) await d.next((m) => m.type === "snapshot");
    const device = await client.openRoom(id, "device");
    await helloDevice(device, "e2e-stream-1");

    // Paced phase: 100 readings at 50 Hz, one-way latency device → each dashboard.
    const sentAt = new Map<number, number>();
    const latencies: number[] = [];
    for (const d of dashboards) {
      d.ws.on("message", (data) => {
        const m = JSON.parse(data.toString());
        if (m.type === "readings") for (const r of m.readings) if (sentAt.has(r.seq)) latencies.push(performance.now() - sentAt.get(r.seq)!);
      });
    }
    for (let seq = 1; seq <= 100; seq++) {
      sentAt.set(seq, performance.now());
      device.send({ type: "readings", readings: [{ seq, ts: Date.now(), temperature: 70 + seq / 100, scale: "F" }] });
      await new Promise((r) => setTimeout(r, 20));
    }
    await device.next((m) => m.type === "ack" && m.seq === 100);

    // Burst phase: 1,000 readings as fast as the socket takes them.
    const burstStart = performance.now();
    for (let seq = 101; seq <= 1100; seq++) {
      device.send({ type: "readings", readings: [{ seq, ts: Date.now(), temperature: 71, scale: "F" }] });
    }
    await device.next((m) => m.type === "ack" && m.seq === 1100, 60_000);
    for (const d of dashboards) await d.next((m) => m.type === "readings" && m.readings.some((r: any) => r.seq === 1100), 60_000);
    const burstMs = performance.now() - burstStart;

    for (const d of dashboards) {
      const seqs = d.messages.filter((m) => m.type === "readings").flatMap((m) => m.readings.map((r: any) => r.seq));
      expect(seqs).toEqual(Array.from({ length: 1100 }, (_, i) => i + 1));
    }
    const stored = await client.json(`/api/devices/${id}/readings?limit=5000`);
    expect(stored.readings).toHaveLength(1100);

    latencies.sort((a, b) => a - b);
    console.log(
      `relay figures: paced 50 Hz → 3 dashboards: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms ` +
        `(n=${latencies.length}); burst 1,000 readings → 3 dashboards in ${burstMs.toFixed(0)} ms = ${((3000 / burstMs) * 1000).toFixed(0)} deliveries/s`,
    );
    // The operator's view: one legacy JSON line per stored reading, each on its own line
    // (the room writes them in batches, never merged or split).
    const legacy = /^\{"temperature":"\d+\.\d\d","scale":"F","ipaddr":"192\.168\.1\.19","ts":\d+,"id":"e2e-relay"\}$/;
    const lines = () => endpoint.output().split("\n").filter((l) => legacy.test(l.trim()));
    await waitFor("a legacy line for each of the 1,100 readings", () => lines().length >= 1100, 15_000);
    expect(lines()).toHaveLength(1100);
    expect(lines()[0]!.trim()).toMatch(/^\{"temperature":"70\.01",/);
    device.close();
    for (const d of dashboards) d.close();
  });

  it("shows the device offline to dashboards when its socket closes", async () => {
    const id = "e2e-presence";
    await client.register(id);
    const dash = await client.openRoom(id, "dashboard");
    const device = await client.openRoom(id, "device");
    await helloDevice(device, "e2e-stream-2");
    await dash.next((m) => m.type === "presence" && m.online);
    device.close();
    await dash.next((m) => m.type === "presence" && !m.online);
    const state = await client.json(`/api/devices/${id}`);
    expect(state.online).toBe(false);
    dash.close();
  });

  it("survives a text frame that is not valid UTF-8 and keeps serving the device", async () => {
    const id = "e2e-utf8";
    await client.register(id);
    const dash = await client.openRoom(id, "dashboard");
    const bad = await client.openRoom(id, "device");
    await helloDevice(bad, "e2e-stream-3");
    // ws sends these bytes as a text frame without checking them, as a broken client would.
    bad.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x22, 0xc3, 0x28, 0x7d]), { binary: false });
    const outcome = await Promise.race([
      bad.closed.then((c) => `closed ${c.code}`),
      bad.next((m) => m.type === "error").then((m) => `error ${m.code}`),
    ]);
    console.log(`invalid UTF-8 text frame → ${outcome}`);
    expect(outcome).toMatch(/^(closed 100[27]|error invalid_json)$/);
    const device = await client.openRoom(id, "device");
    await helloDevice(device, "e2e-stream-3");
    device.send({ type: "readings", readings: [{ seq: 1, ts: Date.now(), temperature: 70, scale: "F" }] });
    await device.next((m) => m.type === "ack" && m.seq === 1);
    await dash.next((m) => m.type === "readings");
    const stored = await client.json(`/api/devices/${id}/readings`);
    expect(stored.readings.map((r: any) => r.temperature)).toEqual([70]);
    device.close();
    dash.close();
  });

  // Last in the suite: it spends this endpoint's whole sign-in budget.
  it("keys rate limits on nothing the client chooses: a fresh forged CF-Connecting-IP per attempt buys no fresh sign-in budget", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 13; i++) {
      const res = await fetch(new URL("/api/login", endpoint.url), {
        method: "POST",
        headers: { "content-type": "application/json", "cf-connecting-ip": `203.0.113.${i + 1}` },
        body: JSON.stringify({ token: `wrong-token-${i}` }),
      });
      statuses.push(res.status);
    }
    // LOGIN_LIMITER allows 10 a minute from one client: the rest are 429, forged addresses or not.
    expect(statuses.slice(0, 10).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(10)).toEqual([429, 429, 429]);
  });
});
