/**
 * The LAN path for real: Debian's nginx, running the project's proxy config
 * (nginx/templates, rendered as compose renders them), in front of the real
 * endpoint process (`npm run endpoint`), over plain HTTP and over TLS with a
 * certificate from nginx/gen-certs.sh. test/container/ builds and runs the
 * endpoint's image; test/node/docker.test.ts checks the compose file statically.
 */
import { spawnSync } from "node:child_process";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { EndpointClient, helloDevice, issuedSecrets, openSocket, request, type SocketClient } from "../support/client";
import { startEndpoint, type Endpoint } from "../support/endpoint";
import { makeCerts, startNginx, type Certs, type Nginx } from "../support/nginx";
import { freePort, ROOT, waitFor } from "../support/processes";

const PING = '{"type":"ping"}';

/** nginx writes an access line as a request ends, which may be just after the client has its answer. */
async function waitForLog(n: Nginx, line: RegExp): Promise<void> {
  await waitFor(`access log line ${line}`, () => line.test(n.accessLog()), 5_000);
}

let endpoint: Endpoint;
let certs: Certs;
/** The shipped config: default socket timeout (an hour), TLS on. */
let proxy: Nginx;
const started: Nginx[] = [];
/** The operator, straight to the endpoint; `.via(...)` goes through nginx. */
let direct: EndpointClient;

beforeAll(async () => {
  certs = makeCerts();
  // As compose runs it (docker/compose.yaml): TRUST_PROXY on, passed as --var TRUST_PROXY:true.
  // As the container runs it: Miniflare directly (DIRECT=1), TRUST_PROXY behind nginx.
  // A group commits within 200 ms here (15 s by default), so acks come in a test's time.
  endpoint = await startEndpoint({ vars: { TRUST_PROXY: "true", GROUP_COMMIT_MS: "200", PRESENCE_CHECK_MS: "500" }, direct: true });
  direct = new EndpointClient(endpoint.url, endpoint.adminToken);
  proxy = await startNginx({ upstream: `127.0.0.1:${endpoint.port}`, certs });
  started.push(proxy);
});

afterAll(async () => {
  for (const n of started) {
    await n.stop();
    rmSync(n.dir, { recursive: true, force: true });
  }
  await endpoint?.close();
  if (certs) rmSync(certs.dir, { recursive: true, force: true });
});

const closeAll = (clients: SocketClient[]) => {
  for (const c of clients) if (c.ws.readyState === c.ws.OPEN) c.close();
};

describe.each(["http", "https"] as const)("through nginx over %s", (scheme) => {
  const via = () => (scheme === "http" ? direct.via(proxy.http) : direct.via(proxy.https!, certs.ca));
  const id = `nginx-${scheme}`;

  it("answers the legacy device routes as the old endpoint did, to a device with its token", async () => {
    const client = via();
    const config = await client.register(id, "192.168.1.19");
    expect(config).toMatchObject({ message: "IoT Configuration", iotip: "192.168.1.19", id, config: { socketPath: `/parties/device/${id}` } });

    const update = await client.device(id, "/iot/update?version=1.0.0");
    expect(update.status).toBe(200);
    expect(update.json()).toEqual({ message: "IoT Update", current: "1.0.0", update: null });

    const loop = await client.device(id, "/iot/data", { method: "POST", json: { iot: 123 } });
    expect(loop.status).toBe(200);
    expect(loop.json()).toEqual({ message: "POST loopback 123" });

    const anonymous = await client.anonymous("/iot/config", { headers: { "x-iot-ip": "192.168.1.19" } });
    expect(anonymous.status).toBe(401);
  });

  it("serves the API to the operator, with the Worker's JSON errors intact", async () => {
    const client = via();
    await client.register(id);
    const list = await client.admin("/api/devices");
    expect(list.status).toBe(200);
    expect(list.json().devices.map((d: { id: string }) => d.id)).toContain(id);

    const one = await client.admin(`/api/devices/${id}`);
    expect(one.status).toBe(200);
    expect(one.json()).toMatchObject({ id, desired: { scale: "F" } });

    const missing = await client.admin("/api/devices/no-such-device");
    expect(missing.status).toBe(404);
    expect(missing.json()).toMatchObject({ error: { code: "unknown_device" } });
    expect((await client.anonymous("/api/devices")).status).toBe(401);
  });

  it("serves the dashboard page with the security headers", async () => {
    const page = await via().anonymous("/");
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toMatch(/text\/html/);
    expect(page.text).toMatch(/<html/i);
    expect(page.headers["x-content-type-options"]).toBe("nosniff");
    expect(page.headers["x-frame-options"]).toBe("DENY");
    expect(page.headers["referrer-policy"]).toBe("no-referrer");
    expect(page.headers.server).toBe("nginx"); // server_tokens off: no version
  });

  it("relays readings from a device socket to two dashboard sockets", async () => {
    const client = via();
    await client.register(id);
    const dashboards = [await client.openRoom(id, "dashboard"), await client.openRoom(id, "dashboard")];
    const device = await client.openRoom(id, "device");
    try {
      for (const d of dashboards) await d.next((m) => m.type === "snapshot");
      await helloDevice(device, `nginx-${scheme}-stream`);
      const readings = [1, 2, 3].map((seq) => ({ seq, ts: 1_739_129_986_136 + seq * 1000, temperature: 70 + seq, scale: "F" }));
      for (const r of readings) device.send({ type: "readings", readings: [r] });
      await device.next((m) => m.type === "ack" && m.seq === 3);
      for (const d of dashboards) {
        await d.next((m) => m.type === "readings" && m.readings.some((r: { seq: number }) => r.seq === 3));
        const seen = d.messages.filter((m) => m.type === "readings").flatMap((m) => m.readings);
        expect(seen).toEqual(readings);
      }
    } finally {
      closeAll([...dashboards, device]);
    }
  });

  it("carries the fleet list's pages (the fleet view polls them; there is no fleet socket)", async () => {
    const page = await via().json(`/api/devices?q=${encodeURIComponent(id)}&limit=10`);
    expect(page.devices.map((d: { id: string }) => d.id)).toContain(id);
    expect(page).toMatchObject({ next: null, total: expect.any(Number) });
  });

  it("lets the dashboard's own page open sockets (Origin = the host:port the browser used) and refuses others", async () => {
    const client = via();
    const own = scheme === "http" ? proxy.http : proxy.https!;
    const socket = await client.openRoom(id, "dashboard", own);
    try {
      await socket.next((m) => m.type === "snapshot");
    } finally {
      socket.close();
    }
    await expect(client.openRoom(id, "dashboard", "http://evil.example")).rejects.toThrow(/403/);
  });

  it("signs a browser in with a session cookie marked Secure exactly when the browser used https", async () => {
    const client = via();
    const login = await client.anonymous("/api/login", { method: "POST", json: { token: client.adminToken } });
    expect(login.status).toBe(200);
    const cookie = login.headers["set-cookie"]?.find((c) => c.startsWith("iot_session="));
    expect(cookie).toBeDefined();
    expect(/;\s*Secure/i.test(cookie!)).toBe(scheme === "https");
    // The cookie works for a change from our own origin, through nginx.
    const own = scheme === "http" ? proxy.http : proxy.https!;
    const command = await client.anonymous(`/api/devices/${id}/commands`, {
      method: "POST",
      json: { cmd: "scale", scale: "C" },
      headers: { cookie: cookie!.split(";")[0]!, origin: own },
    });
    expect(command.status).toBe(202);
  });
});

describe("request size limits", () => {
  // Valid JSON padded with whitespace, so only its size differs from the legacy body.
  const padded = (bytes: number) => `{"iot": 123${" ".repeat(bytes - 12)}}`;

  it("passes a body up to 256 KiB on to POST /iot/data", async () => {
    const body = padded(256 * 1024);
    expect(Buffer.byteLength(body)).toBe(256 * 1024);
    const res = await direct.via(proxy.http).device("nginx-http", "/iot/data", { method: "POST", body, headers: { "content-type": "application/json" } });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ message: "POST loopback 123" });
  });

  it("refuses a larger body itself, with a JSON 413, before the endpoint sees it", async () => {
    const res = await direct.via(proxy.http).device("nginx-http", "/iot/data", {
      method: "POST",
      body: padded(256 * 1024 + 1),
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(413);
    expect(res.json()).toEqual({
      error: { code: "payload_too_large", message: "request body exceeds 262144 bytes (refused by the proxy)" },
    });
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
  });

  it("leaves the Worker's smaller limits to the Worker (16 KiB under /api)", async () => {
    const res = await direct.via(proxy.http).admin("/api/tickets", {
      method: "POST",
      body: `{"fleet": true${" ".repeat(20_000)}}`,
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(413);
    expect(res.json()).toMatchObject({ error: { code: "payload_too_large", message: "body exceeds 16384 bytes" } });
  });
});

describe("what nginx tells the endpoint", () => {
  // The endpoint does not echo headers back, so a small upstream that records
  // them stands in for it, behind the same config.
  let echo: Server;
  let echoProxy: Nginx;
  const seen: IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    echo = createServer((req, res) => {
      seen.push(req.headers);
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ url: req.url }));
    });
    const wss = new WebSocketServer({ noServer: true });
    echo.on("upgrade", (req, socket, head) => {
      seen.push(req.headers);
      wss.handleUpgrade(req, socket, head, (ws) => ws.send(JSON.stringify({ url: req.url })));
    });
    const port = await freePort();
    await new Promise<void>((r) => echo.listen(port, "127.0.0.1", () => r()));
    echoProxy = await startNginx({ upstream: `127.0.0.1:${port}`, certs });
    started.push(echoProxy);
  });

  afterAll(async () => {
    await echoProxy?.stop();
    await new Promise((r) => echo?.close(r));
  });

  it("passes the client's real address and scheme, overwriting what the client claims", async () => {
    for (const [base, proto] of [
      [echoProxy.http, "http"],
      [echoProxy.https!, "https"],
    ] as const) {
      seen.length = 0;
      const res = await request(`${base}/iot/config?x=1`, {
        headers: { "x-forwarded-for": "203.0.113.66", "x-real-ip": "203.0.113.66", "x-forwarded-proto": "gopher" },
        ca: certs.ca,
      });
      expect(res.json()).toEqual({ url: "/iot/config?x=1" });
      expect(seen[0]).toMatchObject({
        // With its port: the Worker compares a browser's Origin with it.
        host: new URL(base).host,
        "x-forwarded-for": "127.0.0.1",
        "x-real-ip": "127.0.0.1",
        "x-forwarded-proto": proto,
      });
      // Plain requests go over the keepalive pool: no "Connection: upgrade", no Upgrade.
      expect(seen[0]!.upgrade).toBeUndefined();
      expect(seen[0]!.connection ?? "").not.toMatch(/upgrade/i);
    }
  });

  it("upgrades WebSockets with HTTP/1.1 Upgrade and Connection headers, query string intact", async () => {
    seen.length = 0;
    const socket = await openSocket(`${echoProxy.https!.replace(/^http/, "ws")}/parties/device/x?ticket=abc.def`, { ca: certs.ca });
    try {
      expect(await socket.next((m) => typeof m.url === "string")).toEqual({ url: "/parties/device/x?ticket=abc.def" });
      expect(seen[0]).toMatchObject({ upgrade: "websocket", "x-forwarded-proto": "https", "x-real-ip": "127.0.0.1" });
      expect(seen[0]!.connection).toMatch(/upgrade/i);
    } finally {
      socket.close();
    }
  });
});

describe("idle sockets", () => {
  // nginx cuts a proxied socket after proxy_read_timeout without traffic
  // (60 s by default). Rendered here with 4 s so the test is short: a socket
  // that heartbeats every second outlives 10 s, a silent one does not, and the
  // same silent socket straight to the endpoint survives (so the cut is nginx's).
  const TIMEOUT_S = 4;
  const WATCH_MS = 10_000;
  let shortProxy: Nginx;

  beforeAll(async () => {
    shortProxy = await startNginx({ upstream: `127.0.0.1:${endpoint.port}`, socketReadTimeout: `${TIMEOUT_S}s` });
    started.push(shortProxy);
  });

  afterAll(async () => {
    await shortProxy?.stop();
  });

  it("keeps heartbeating sockets open well past the read timeout and cuts a silent one", async () => {
    const live = "nginx-idle-live";
    const quiet = "nginx-idle-quiet";
    const client = direct.via(shortProxy.http);
    await client.register(live);
    await client.register(quiet);

    const device = await client.openRoom(live, "device");
    const watcher = await client.openRoom(live, "dashboard");
    const silent = await client.openRoom(quiet, "dashboard");
    const straight = await direct.openRoom(quiet, "dashboard");
    const clients = [device, watcher, silent, straight];
    try {
      await helloDevice(device, "nginx-idle-stream");
      for (const c of [watcher, silent, straight]) await c.next((m) => m.type === "snapshot");
      const openedAt = Date.now();
      let silentClosedAfter = -1;
      void silent.closed.then(() => (silentClosedAfter = Date.now() - openedAt));

      // Only heartbeats for WATCH_MS: the device and the live dashboard ping
      // every second (the room answers pong); the other two say nothing.
      const heartbeat = setInterval(() => {
        device.send(PING);
        watcher.send(PING);
      }, 1_000);
      await new Promise((r) => setTimeout(r, WATCH_MS));
      clearInterval(heartbeat);

      expect(device.messages.filter((m) => m.type === "pong").length).toBeGreaterThanOrEqual(5);
      expect(device.ws.readyState).toBe(device.ws.OPEN);
      expect(watcher.ws.readyState).toBe(watcher.ws.OPEN);
      expect(straight.ws.readyState).toBe(straight.ws.OPEN);

      // The silent socket through nginx was cut without a close frame (1006),
      // and not before the timeout could have fired.
      const { code } = await silent.closed;
      expect(code).toBe(1006);
      expect(silentClosedAfter).toBeGreaterThanOrEqual((TIMEOUT_S - 1) * 1_000);

      // The kept sockets still work: a reading reaches the dashboard.
      const reading = { seq: 1, ts: Date.now(), temperature: 71.5, scale: "F" };
      device.send({ type: "readings", readings: [reading] });
      expect((await watcher.next((m) => m.type === "readings")).readings).toEqual([reading]);
    } finally {
      closeAll(clients);
    }
  });
});

describe("the container's healthcheck (docker/healthcheck.mjs)", () => {
  const check = (port: number) =>
    spawnSync(process.execPath, [join(ROOT, "docker/healthcheck.mjs")], {
      env: { ...process.env, PORT: String(port) },
      encoding: "utf8",
      timeout: 15_000,
    });

  it("passes against the running endpoint on 127.0.0.1", () => {
    const run = check(endpoint.port);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });

  it("fails when nothing listens", async () => {
    const run = check(await freePort());
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/healthcheck: http:\/\/127\.0\.0\.1:\d+\/api\/session/);
  });
});

describe("the client's address, as the Worker's rate limits see it", () => {
  // Sign-in attempts are limited to 10 a minute per address (LOGIN_LIMITER).
  // With TRUST_PROXY the Worker takes the address from X-Real-IP, so nginx
  // must overwrite whatever the client sends there.
  const attempts = 25; // over two windows at most, one of them sees more than 10
  const badLogin = (client: EndpointClient, forged: string) =>
    client.anonymous("/api/login", { method: "POST", json: { token: "not-the-token" }, headers: { "x-real-ip": forged, "x-forwarded-for": forged } });

  it("straight to the endpoint, a forged X-Real-IP picks a fresh budget each time (why the endpoint sits behind nginx)", async () => {
    const statuses = [];
    for (let i = 0; i < attempts; i++) statuses.push((await badLogin(direct, `198.51.100.${i + 1}`)).status);
    expect(statuses).toEqual(Array(attempts).fill(401));
  });

  it("through nginx, every attempt counts against the client's real address", async () => {
    const client = direct.via(proxy.http);
    const statuses = [];
    for (let i = 0; i < attempts; i++) statuses.push((await badLogin(client, `203.0.113.${i + 1}`)).status);
    expect(statuses).toContain(429);
    expect(statuses.filter((s) => s !== 401 && s !== 429)).toEqual([]);
  });
});

describe("nginx logs", () => {
  it("leave out the query string when the endpoint is down, where nginx's error log would print it", async () => {
    // Nothing listens upstream: every request is a 502, the case in which
    // nginx's error log prints the request line, query string included.
    const down = await startNginx({ upstream: `127.0.0.1:${await freePort()}` });
    started.push(down);
    const canary = "SECRET-canary-upstream-down";
    expect((await request(`${down.http}/api/devices?ticket=${canary}`)).status).toBe(502);
    await expect(openSocket(`${down.http.replace(/^http/, "ws")}/parties/device/x?ticket=${canary}`)).rejects.toThrow(/502/);
    await down.stop(); // flushes and closes both logs

    expect(down.accessLog()).toMatch(/"GET \/api\/devices HTTP\/1\.1" 502 /);
    expect(down.accessLog()).toMatch(/"GET \/parties\/device\/x HTTP\/1\.1" 502 /);
    expect(down.accessLog() + down.errorLog()).not.toContain(canary);
    expect(down.errorLog()).toMatch(/\[notice\].*start worker process/); // the error log was on
  });

  it("never write a ticket, a token or any query string", async () => {
    // A request and a socket with a ticket-shaped secret, on top of every real
    // ticket and token the tests above used (including the socket nginx timed
    // out, which its error log would otherwise print with its request line).
    const canary = "SECRET-canary-0123456789";
    const res = await direct.via(proxy.http).admin(`/api/devices?ticket=${canary}`);
    // The Worker refuses the unknown query parameter (400); nginx logs the request all the same.
    expect(res.status).toBe(400);
    await expect(openSocket(`${proxy.http.replace(/^http/, "ws")}/parties/device/nginx-http?ticket=${canary}`)).rejects.toThrow(/401/);
    // The requests are logged, by path: the log is on, only the query is left out.
    await waitForLog(proxy, /"GET \/api\/devices HTTP\/1\.1" 400 /);
    await waitForLog(proxy, /"GET \/parties\/device\/nginx-http HTTP\/1\.1" 401 /);
    await waitForLog(proxy, /"GET \/parties\/device\/nginx-https HTTP\/1\.1" 101 /);

    expect(issuedSecrets.length).toBeGreaterThan(10);
    for (const n of started) {
      const logs = n.accessLog() + n.errorLog();
      expect(logs).not.toContain(canary);
      expect(logs).not.toContain("ticket=");
      for (const secret of issuedSecrets) expect(logs).not.toContain(secret);
    }
  });
});

describe("with TLS on and plain HTTP not asked for (compose's default)", () => {
  it("answers plain HTTP only with a redirect to https, and passes nothing to the endpoint in the clear", async () => {
    // (The other tests here start nginx with PLAIN_HTTP=1, to run every case over both schemes.)
    const strict = await startNginx({ upstream: `127.0.0.1:${endpoint.port}`, certs, plainHttp: false });
    started.push(strict);
    const httpsPort = new URL(strict.https!).port;
    for (const [method, path] of [["GET", "/api/session"], ["POST", "/api/login"], ["GET", "/parties/device/x?ticket=t"]] as const) {
      const res = await request(`${strict.http}${path}`, { method, headers: { authorization: `Bearer ${endpoint.adminToken}` } });
      expect(res.status, `${method} ${path}`).toBe(308);
      expect(res.headers.location).toBe(`https://127.0.0.1:${httpsPort}${path}`);
    }
    // No plain request reached the endpoint: nginx answered each itself (no upstream in its log line).
    await waitForLog(strict, /"GET \/parties\/device\/x HTTP\/1\.1" 308 /);
    for (const line of strict.accessLog().trim().split("\n")) expect(line).toContain("upstream=- ");
    // A socket over ws:// is refused (an upgrade does not follow redirects); over wss:// it opens.
    await expect(openSocket(`${strict.http.replace(/^http/, "ws")}/parties/device/x?ticket=t`)).rejects.toThrow(/308/);
    const secure = direct.via(strict.https!, certs.ca);
    expect((await secure.admin("/api/session")).status).toBe(200);
    await secure.token("nginx-strict");
    const socket = await secure.openRoom("nginx-strict", "dashboard", strict.https!);
    socket.close();
  });
});
