/**
 * Every route and socket path without credentials, with wrong ones, with
 * another device's, with revoked or rotated ones, with an expired or reused
 * ticket, with an expired session: refused with the right status or close
 * code, and nothing written.
 */
import { env } from "cloudflare:workers";
import { listDurableObjectIds, runInDurableObject } from "cloudflare:test";
import { serializeSigned } from "hono/utils/cookie";
import { describe, expect, it } from "vitest";
import { issueTicket } from "../../worker/tickets";
import {
  ADMIN_TOKEN,
  VIEWER_TOKEN,
  asAdmin,
  asDevice,
  asViewer,
  call,
  connect,
  connectDashboard,
  connectDevice,
  get,
  json,
  postJson,
  provision,
  reading,
  register,
  ticket,
  uniqueId,
} from "./helpers";

const SESSION_SECRET = "test-only-session-secret-0123456789abcdef";
const upgrade = { Upgrade: "websocket" };

/** Every route, with what a legitimate caller would send. */
function routes(id: string): Array<[string, string, unknown?]> {
  return [
    ["GET", "/iot/config"],
    ["GET", "/iot/update"],
    ["POST", "/iot/data", { iot: 1 }],
    ["POST", "/iot/data", { readings: [reading(1)] }],
    ["GET", "/api/session"],
    ["GET", "/api/devices"],
    ["POST", "/api/devices", { id: uniqueId("new") }],
    ["GET", `/api/devices/${id}`],
    ["GET", `/api/devices/${id}/readings`],
    ["POST", `/api/devices/${id}/commands`, { cmd: "scale", scale: "C" }],
    ["POST", `/api/devices/${id}/rotate`],
    ["POST", `/api/devices/${id}/revoke`],
    ["POST", "/api/tickets", { device: id }],
    ["POST", "/api/tickets", { fleet: true }],
  ];
}

function send(method: string, path: string, body: unknown, headers: Record<string, string>): Promise<Response> {
  return call(path, {
    method,
    headers: { "x-iot-ip": "10.0.0.1", "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** The device's state as the operator sees it, to show nothing changed. */
async function snapshot(id: string) {
  const state = await json(await get(`/api/devices/${id}`));
  const { readings } = await json(await get(`/api/devices/${id}/readings`));
  return { desired: state.desired, stored: state.stored, commands: state.commands.length, readings };
}

describe("without credentials", () => {
  it("refuses every route with 401 and writes nothing", async () => {
    const id = uniqueId();
    await register(id);
    const before = await snapshot(id);
    const devicesBefore = (await json(await get("/api/devices"))).devices.length;
    for (const [method, path, body] of routes(id)) {
      const res = await send(method, path, body, {});
      expect(res.status, `${method} ${path}`).toBe(401);
      expect((await json(res)).error.code, `${method} ${path}`).toBe("unauthorized");
    }
    expect(await snapshot(id)).toEqual(before);
    expect((await json(await get("/api/devices"))).devices.length).toBe(devicesBefore);
    expect((await json(await get(`/api/devices/${id}`))).desired.scale).toBe("F");
  });

  it.each([
    ["a wrong operator token", "Bearer not-the-admin-token-0123456789abc"],
    ["a malformed header", "Basic YWRtaW46YWRtaW4="],
    ["a device token with a wrong secret", "Bearer someid.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
    ["an empty bearer", "Bearer "],
  ])("refuses %s with 401", async (_name, authorization) => {
    const id = uniqueId();
    await register(id);
    const before = await snapshot(id);
    for (const [method, path, body] of routes(id)) {
      const res = await send(method, path, body, { authorization });
      expect(res.status, `${method} ${path}`).toBe(401);
    }
    expect(await snapshot(id)).toEqual(before);
  });
});

describe("a made-up device id", () => {
  it("costs no storage: a ghost token on REST and on a socket upgrade creates no room (issue 12)", async () => {
    const roomsBefore = (await listDurableObjectIds(env.DEVICE_ROOM)).map((id) => id.toString());
    const ghosts = Array.from({ length: 10 }, (_, i) => `ghost-${Date.now().toString(36)}-${i}`);
    for (const ghost of ghosts) {
      const authorization = `Bearer ${ghost}.${"A".repeat(43)}`;
      for (const path of ["/iot/update", "/iot/config"]) {
        const res = await call(path, { headers: { authorization, "x-iot-ip": "10.0.0.9" } });
        expect(res.status, path).toBe(401);
      }
      const up = await call(`/parties/device/${ghost}`, { headers: { ...upgrade, authorization } });
      expect(up.status).toBe(401);
      const data = await call("/iot/data", { method: "POST", headers: { authorization, "content-type": "application/json" }, body: JSON.stringify({ readings: [reading(1)] }) });
      expect(data.status).toBe(401);
    }
    const ghostIds = new Set(ghosts.map((g) => env.DEVICE_ROOM.idFromName(g).toString()));
    const roomsAfter = (await listDurableObjectIds(env.DEVICE_ROOM)).map((id) => id.toString());
    expect(roomsAfter.filter((id) => ghostIds.has(id))).toEqual([]);
    expect(roomsAfter.length).toBe(roomsBefore.length);
  });
});

describe("a device's token", () => {
  it("cannot act as another device, read the fleet, or send commands", async () => {
    const a = uniqueId("a");
    const b = uniqueId("b");
    await register(a);
    await register(b);
    const before = await snapshot(b);
    const tokenA = await asDevice(a);
    const refused: Array<[string, string, unknown, Record<string, string>, number]> = [
      ["GET", "/iot/config", undefined, { "x-iot-id": b }, 403],
      ["POST", "/iot/data", { readings: [reading(1)] }, { "x-iot-id": b }, 403],
      ["POST", "/api/tickets", { device: b, role: "device" }, {}, 403],
      ["POST", "/api/tickets", { device: a, role: "dashboard" }, {}, 403],
      ["POST", "/api/tickets", { fleet: true }, {}, 403],
      ["GET", "/api/devices", undefined, {}, 403],
      ["GET", `/api/devices/${b}/readings`, undefined, {}, 403],
      ["POST", `/api/devices/${b}/commands`, { cmd: "scale", scale: "C" }, {}, 403],
      ["POST", `/api/devices/${b}/revoke`, undefined, {}, 403],
      ["POST", "/api/devices", { id: uniqueId() }, {}, 403],
    ];
    for (const [method, path, body, extra, status] of refused) {
      const res = await send(method, path, body, { ...tokenA, ...extra });
      expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(status);
    }
    // Its own readings land in its own room only.
    const own = await send("POST", "/iot/data", { readings: [reading(1)] }, tokenA);
    expect(own.status).toBe(200);
    expect(await snapshot(b)).toEqual(before);
    expect((await snapshot(a)).stored).toBe(1);
  });
});

describe("provisioning, rotation and revocation", () => {
  it("shows the token once and refuses to provision the same device twice", async () => {
    const id = uniqueId();
    const token = await provision(id);
    expect(token).toMatch(new RegExp(`^${id}\\.[A-Za-z0-9_-]{43}$`));
    const again = await postJson("/api/devices", { id }, asAdmin);
    expect(again.status).toBe(409);
    const state = await json(await get(`/api/devices/${id}`));
    expect(JSON.stringify(state)).not.toContain(token.split(".")[1]);
  });

  it("cuts a revoked device off at once, open socket included, and refuses it afterwards", async () => {
    const id = uniqueId();
    await register(id);
    const auth = await asDevice(id);
    const device = await connectDevice(id);
    const dash = await connectDashboard(id);
    // A ticket issued before the revocation must not work after it.
    const early = await ticket(id, "device");
    const res = await postJson(`/api/devices/${id}/revoke`, {}, asAdmin);
    expect(await json(res)).toEqual({ id, revoked: true });
    expect((await device.closed).code).toBe(4003);
    await dash.next((m) => m.type === "presence" && m.online === false);
    expect((await call("/iot/config", { headers: { "x-iot-ip": "10.0.0.1", ...auth } })).status).toBe(401);
    expect((await postJson("/api/tickets", { device: id }, auth)).status).toBe(401);
    const late = await call(`/parties/device/${id}?ticket=${early}`, { headers: upgrade });
    expect(late.status).toBe(401);
    expect((await json(late)).error.code).toBe("credentials_revoked");
  });

  it("rotates: the old token and its socket stop working, the new one works", async () => {
    const id = uniqueId();
    await register(id);
    const old = await asDevice(id);
    const device = await connectDevice(id);
    const res = await postJson(`/api/devices/${id}/rotate`, {}, asAdmin);
    expect(res.status).toBe(200);
    const { token } = await json(res);
    expect((await device.closed).code).toBe(4003);
    expect((await call("/iot/config", { headers: { "x-iot-ip": "10.0.0.1", ...old } })).status).toBe(401);
    const fresh = await call("/iot/config", { headers: { "x-iot-ip": "10.0.0.1", authorization: `Bearer ${token}` } });
    expect(fresh.status).toBe(200);
  });
});

describe("socket tickets", () => {
  it("opens one socket per ticket: a reused ticket is refused", async () => {
    const id = uniqueId();
    await register(id);
    const t = await ticket(id, "dashboard");
    const first = await connect(`/parties/device/${id}?ticket=${t}`);
    await first.next((m) => m.type === "snapshot");
    const second = await call(`/parties/device/${id}?ticket=${t}`, { headers: upgrade });
    expect(second.status).toBe(401);
    expect((await json(second)).error.code).toBe("ticket_used");
  });

  it("refuses an expired ticket", async () => {
    const id = uniqueId();
    await register(id);
    const { ticket: stale } = await issueTicket(SESSION_SECRET, { room: `device:${id}`, role: "dashboard", sub: "operator" }, Date.now() - 61_000);
    const res = await call(`/parties/device/${id}?ticket=${stale}`, { headers: upgrade });
    expect(res.status).toBe(401);
    expect(await json(res)).toEqual({ error: { code: "bad_ticket", message: "ticket expired" } });
  });

  it("refuses a ticket signed with another key", async () => {
    const id = uniqueId();
    await register(id);
    const { ticket: forged } = await issueTicket("an-attacker-key-that-is-long-enough-000", { room: `device:${id}`, role: "device", sub: `device:${id}` });
    const res = await call(`/parties/device/${id}?ticket=${forged}`, { headers: upgrade });
    expect(res.status).toBe(401);
    expect((await json(res)).error.message).toBe("bad ticket signature");
  });

  it("refuses a ticket signed with the session secret itself: cookies and tickets have separate keys", async () => {
    const id = uniqueId();
    await register(id);
    const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const now = Date.now();
    const claims = { room: `device:${id}`, role: "dashboard", sub: "operator", exp: now + 60_000, iat: now, nonce: "AAAAAAAAAAAAAAAA" };
    const body = b64(new TextEncoder().encode(JSON.stringify(claims)));
    const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(SESSION_SECRET), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body)));
    const res = await call(`/parties/device/${id}?ticket=${body}.${b64(mac)}`, { headers: upgrade });
    expect(res.status).toBe(401);
    expect((await json(res)).error.message).toBe("bad ticket signature");
  });

  it("refuses a browser socket from another origin, and accepts our own", async () => {
    const id = uniqueId();
    await register(id);
    const evil = await call(`/parties/device/${id}?ticket=${await ticket(id, "dashboard")}`, {
      headers: { ...upgrade, origin: "https://evil.example" },
    });
    expect(evil.status).toBe(403);
    expect((await json(evil)).error.code).toBe("bad_origin");
    const own = await call(`/parties/device/${id}?ticket=${await ticket(id, "dashboard")}`, {
      headers: { ...upgrade, origin: "http://iot.test" },
    });
    expect(own.status).toBe(101);
    own.webSocket!.accept();
    own.webSocket!.close();
  });

  it("lets a viewer watch but not command, over REST or the socket", async () => {
    const id = uniqueId();
    await register(id);
    const viewer = await connectDashboard(id, asViewer);
    viewer.send({ type: "command", id: "viewer-cmd-1", command: { cmd: "scale", scale: "C" } });
    await viewer.next((m) => m.type === "error" && m.code === "forbidden");
    const rest = await postJson(`/api/devices/${id}/commands`, { cmd: "scale", scale: "C" }, asViewer);
    expect(rest.status).toBe(403);
    const state = await json(await get(`/api/devices/${id}`));
    expect(state.desired.scale).toBe("F");
    expect(state.commands).toEqual([]);
  });
});

describe("sessions", () => {
  function cookieFrom(res: Response): string {
    const set = res.headers.get("set-cookie") ?? "";
    return set.split(";")[0]!;
  }

  it("signs an operator in with an HttpOnly, SameSite=Strict cookie that works until logout", async () => {
    const res = await postJson("/api/login", { token: ADMIN_TOKEN });
    expect(res.status).toBe(200);
    expect((await json(res)).role).toBe("operator");
    const setCookie = res.headers.get("set-cookie")!;
    expect(setCookie).toMatch(/^iot_session=/);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Max-Age=43200/);
    const cookie = cookieFrom(res);
    const session = await json(await call("/api/session", { headers: { cookie } }));
    expect(session).toEqual({ role: "operator", account: "admin", session: expect.any(String), expiresAt: expect.any(Number) });
    expect(session.expiresAt).toBeGreaterThan(Date.now() + 11 * 3600 * 1000);
    const out = await call("/api/logout", { method: "POST", headers: { cookie } });
    expect(out.status).toBe(204);
    expect(out.headers.get("set-cookie")).toMatch(/iot_session=;.*Max-Age=0/);
  });

  it("marks the cookie Secure behind TLS", async () => {
    const res = await postJson("/api/login", { token: VIEWER_TOKEN }, { "x-forwarded-proto": "https" });
    expect(res.headers.get("set-cookie")).toMatch(/Secure/);
  });

  it("refuses a wrong sign-in token, a real session re-signed with another key, and a real session id with a made-up secret", async () => {
    expect((await postJson("/api/login", { token: "guess-guess-guess-guess-guess" })).status).toBe(401);
    // A genuine session first: the cookies below differ from it in one thing each.
    const genuine = cookieFrom(await postJson("/api/login", { token: ADMIN_TOKEN }));
    expect((await call("/api/devices", { headers: { cookie: genuine } })).status).toBe(200);
    // The cookie's value is `<session id>.<secret>.<signature>` (hono's signed cookie, URL-encoded).
    const value = decodeURIComponent(genuine.slice("iot_session=".length));
    const [id, secret] = value.split(".") as [string, string];
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const forged = (await serializeSigned("iot_session", `${id}.${secret}`, "another-secret-entirely-0123456789")).split(";")[0]!;
    expect((await call("/api/devices", { headers: { cookie: forged } })).status).toBe(401);
    const madeUp = (await serializeSigned("iot_session", `${id}.${"A".repeat(43)}`, SESSION_SECRET)).split(";")[0]!;
    expect((await call("/api/devices", { headers: { cookie: madeUp } })).status).toBe(401);
    // Ended sessions (logout, revocation, account removal): test/workerd/accounts.test.ts.
  });

  it("refuses a session past its expiry, though its cookie is genuine", async () => {
    const cookie = cookieFrom(await postJson("/api/login", { token: VIEWER_TOKEN }));
    const session = await json(await call("/api/session", { headers: { cookie } }));
    expect(session.role).toBe("viewer");
    // Twelve hours later, as the directory sees it: the row's expiry moved into the past.
    await runInDurableObject(env.DIRECTORY.getByName("directory"), (_o, state) => {
      state.storage.sql.exec("UPDATE sessions SET expires_at = ? WHERE id = ?", Date.now() - 1, session.session);
    });
    expect((await call("/api/session", { headers: { cookie } })).status).toBe(401);
    expect((await call("/api/devices", { headers: { cookie } })).status).toBe(401);
  });

  // A built-in account's session ending when its token changes: test/workerd/accounts.test.ts.

  it("refuses a session-authenticated change from another origin", async () => {
    const id = uniqueId();
    await register(id);
    const cookie = cookieFrom(await postJson("/api/login", { token: ADMIN_TOKEN }));
    const res = await postJson(`/api/devices/${id}/commands`, { cmd: "scale", scale: "C" }, { cookie, origin: "https://evil.example" });
    expect(res.status).toBe(403);
    expect((await json(res)).error.code).toBe("bad_origin");
    const ok = await postJson(`/api/devices/${id}/commands`, { cmd: "scale", scale: "C" }, { cookie, origin: "http://iot.test" });
    expect(ok.status).toBe(202);
  });

  it("rate-limits sign-in guesses per address with 429", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 14; i++) {
      const res = await postJson("/api/login", { token: `guess-${i}-guess-guess-guess-guess` }, { "cf-connecting-ip": "203.0.113.7" });
      statuses.push(res.status);
    }
    expect(statuses).toContain(429);
    const limited = await postJson("/api/login", { token: ADMIN_TOKEN }, { "cf-connecting-ip": "203.0.113.7" });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("60");
    expect((await json(limited)).error.code).toBe("rate_limited");
  });
});
