/**
 * Operators and viewers as people (issue 12): named accounts with their own tokens, server-side
 * sessions that end on sign-out, on revocation and with their account, and who may manage them.
 */
import { env } from "cloudflare:workers";
import { serializeSigned } from "hono/utils/cookie";
import { describe, expect, it } from "vitest";
import { ADMIN_TOKEN, VIEWER_TOKEN, asAdmin, asViewer, call, get, json, postJson } from "./helpers";

const SESSION_SECRET = "test-only-session-secret-0123456789abcdef";
/** Cookie-authenticated changes come from our own pages (worker/auth.ts checkSameOrigin). */
const OWN_ORIGIN = { origin: "http://iot.test" };

let counter = 0;
function uniqueName(prefix = "person"): string {
  return `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}`;
}

async function addAccount(role: "operator" | "viewer", name = uniqueName(role)): Promise<{ name: string; token: string }> {
  const res = await postJson("/api/accounts", { name, role }, asAdmin);
  if (res.status !== 201) throw new Error(`add ${name}: ${res.status} ${await res.text()}`);
  return json(res);
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/**
 * Each sign-in from an address of its own: sign-ins are limited to 10 a minute per address,
 * and this file signs in more often than that.
 */
let addressBase = Math.floor(Math.random() * 200);
function freshAddress(): Record<string, string> {
  return { "cf-connecting-ip": `192.0.2.${(addressBase++ % 250) + 1}` };
}

/** Sign in; the `cookie` header value and what the endpoint answered. */
async function signIn(token: string, headers: Record<string, string> = {}): Promise<{ cookie: string; body: any }> {
  const res = await postJson("/api/login", { token }, { ...freshAddress(), ...headers });
  if (res.status !== 200) throw new Error(`sign-in: ${res.status} ${await res.text()}`);
  return { cookie: res.headers.get("set-cookie")!.split(";")[0]!, body: await res.json() };
}

const withCookie = (cookie: string) => ({ cookie });

describe("named accounts", () => {
  it("an operator adds an account whose token signs in and works as an API key", async () => {
    const res = await postJson("/api/accounts", { name: uniqueName("alice"), role: "operator" }, asAdmin);
    expect(res.status).toBe(201);
    const { name, role, token } = await json(res);
    expect(role).toBe("operator");
    expect(token).toMatch(new RegExp(`^@${name}\\.[A-Za-z0-9_-]{43}$`));
    expect((await get("/api/devices", bearer(token))).status).toBe(200);
    expect(await json(await get("/api/session", bearer(token)))).toEqual({ role: "operator", account: name });

    const { cookie, body } = await signIn(token);
    expect(body).toEqual({ role: "operator", account: name, session: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/), expiresAt: expect.any(Number) });
    expect(await json(await get("/api/session", withCookie(cookie)))).toEqual(body);
  });

  it("a viewer account reads but changes nothing", async () => {
    const { token } = await addAccount("viewer");
    expect((await get("/api/devices", bearer(token))).status).toBe(200);
    const provision = await postJson("/api/devices", { id: uniqueName("dev") }, bearer(token));
    expect(provision.status).toBe(403);
    expect((await postJson("/api/accounts", { name: uniqueName(), role: "operator" }, bearer(token))).status).toBe(403);
  });

  it("lists the built-in accounts and the named ones, never a token or its hash", async () => {
    const added = await addAccount("viewer");
    const res = await get("/api/accounts");
    expect(res.status).toBe(200);
    const text = await res.text();
    const { accounts } = JSON.parse(text);
    expect(accounts.slice(0, 2)).toEqual([
      { name: "admin", role: "operator", builtin: true, createdAt: null, createdBy: null },
      { name: "viewer", role: "viewer", builtin: true, createdAt: null, createdBy: null },
    ]);
    expect(accounts).toContainEqual({ name: added.name, role: "viewer", builtin: false, createdAt: expect.any(Number), createdBy: "admin" });
    expect(text).not.toContain(added.token.split(".")[1]);
    expect(text).not.toMatch(/[0-9a-f]{64}/);
  });

  it("removing an account stops its token and every one of its sessions at once", async () => {
    const { name, token } = await addAccount("operator");
    const first = await signIn(token);
    const second = await signIn(token);
    expect((await get("/api/devices", withCookie(first.cookie))).status).toBe(200);

    const res = await call(`/api/accounts/${name}`, { method: "DELETE", headers: asAdmin });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ name, sessionsEnded: 2 });

    expect((await get("/api/devices", bearer(token))).status).toBe(401);
    expect((await get("/api/devices", withCookie(first.cookie))).status).toBe(401);
    expect((await get("/api/devices", withCookie(second.cookie))).status).toBe(401);
    expect((await postJson("/api/login", { token }, freshAddress())).status).toBe(401);
    expect((await call(`/api/accounts/${name}`, { method: "DELETE", headers: asAdmin })).status).toBe(404);
  });

  it("refuses a taken name, a reserved one, and removing a built-in account", async () => {
    const { name } = await addAccount("viewer");
    const again = await postJson("/api/accounts", { name, role: "operator" }, asAdmin);
    expect(again.status).toBe(409);
    expect((await json(again)).error.code).toBe("account_exists");
    const reserved = await postJson("/api/accounts", { name: "admin", role: "operator" }, asAdmin);
    expect(reserved.status).toBe(400);
    for (const builtin of ["admin", "viewer"]) {
      const res = await call(`/api/accounts/${builtin}`, { method: "DELETE", headers: asAdmin });
      expect(res.status).toBe(409);
      expect((await json(res)).error.code).toBe("builtin_account");
    }
  });

  it.each([
    ["an upper-case name", { name: "Alice", role: "operator" }],
    ["a name with a space", { name: "al ice", role: "viewer" }],
    ["a name too long", { name: `a${"b".repeat(32)}`, role: "viewer" }],
    ["an unknown role", { name: "mallory", role: "root" }],
    ["a missing role", { name: "mallory" }],
    ["an extra field", { name: "mallory", role: "viewer", token: "mine" }],
  ])("refuses %s with a clear 400", async (_what, body) => {
    const res = await postJson("/api/accounts", body, asAdmin);
    expect(res.status).toBe(400);
    const { error } = await json(res);
    expect(error.code).toBe("validation_failed");
    expect(error.message.length).toBeGreaterThan(5);
  });

  it("refuses bad ids in paths with 400", async () => {
    expect((await call("/api/accounts/Not%20A%20Name", { method: "DELETE", headers: asAdmin })).status).toBe(400);
    expect((await call("/api/sessions/short", { method: "DELETE", headers: asAdmin })).status).toBe(400);
  });

  it("a viewer may not manage accounts, nor read the audit trail (403)", async () => {
    const { name, token } = await addAccount("viewer");
    const viewerCookie = (await signIn(VIEWER_TOKEN)).cookie;
    for (const as of [asViewer, bearer(token), { ...withCookie(viewerCookie), ...OWN_ORIGIN }]) {
      expect((await get("/api/accounts", as)).status).toBe(403);
      expect((await postJson("/api/accounts", { name: uniqueName(), role: "operator" }, as)).status).toBe(403);
      expect((await call(`/api/accounts/${name}`, { method: "DELETE", headers: as })).status).toBe(403);
      expect((await get("/api/audit", as)).status).toBe(403);
    }
    // The account is still there.
    expect((await get("/api/devices", bearer(token))).status).toBe(200);
  });
});

describe("server-side sessions", () => {
  it("sign-out ends the session on the server: the same cookie replayed afterwards gets 401", async () => {
    const { cookie } = await signIn(ADMIN_TOKEN);
    expect((await get("/api/devices", withCookie(cookie))).status).toBe(200);
    const out = await call("/api/logout", { method: "POST", headers: { cookie, ...OWN_ORIGIN } });
    expect(out.status).toBe(204);
    expect(out.headers.get("set-cookie")).toMatch(/iot_session=;.*Max-Age=0/);
    // A copy of the cookie (a stolen one, a second tab's) no longer works.
    expect((await get("/api/devices", withCookie(cookie))).status).toBe(401);
    expect((await get("/api/session", withCookie(cookie))).status).toBe(401);
  });

  it("lists sessions with where they came from; DELETE ends one and leaves the other", async () => {
    const { name, token } = await addAccount("operator");
    const laptop = await signIn(token, { "user-agent": "Laptop/1.0", "cf-connecting-ip": "203.0.113.21" });
    const phone = await signIn(token, { "user-agent": "Phone/2.0" });

    const { sessions } = await json(await get("/api/sessions", withCookie(laptop.cookie)));
    const mine = sessions.filter((s: any) => s.account === name);
    expect(mine).toHaveLength(2);
    expect(mine.find((s: any) => s.id === laptop.body.session)).toMatchObject({
      role: "operator",
      userAgent: "Laptop/1.0",
      address: "203.0.113.21",
      current: true,
      expiresAt: laptop.body.expiresAt,
      createdAt: expect.any(Number),
      lastUsed: expect.any(Number),
    });
    expect(mine.find((s: any) => s.id === phone.body.session)).toMatchObject({ userAgent: "Phone/2.0", current: false });

    const res = await call(`/api/sessions/${phone.body.session}`, { method: "DELETE", headers: { ...withCookie(laptop.cookie), ...OWN_ORIGIN } });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ id: phone.body.session, account: name, revoked: true });
    expect((await get("/api/devices", withCookie(phone.cookie))).status).toBe(401);
    expect((await get("/api/devices", withCookie(laptop.cookie))).status).toBe(200);
    const again = await call(`/api/sessions/${phone.body.session}`, { method: "DELETE", headers: asAdmin });
    expect(again.status).toBe(404);
  });

  it("a viewer sees only their own sessions and cannot end anyone else's; an operator sees and ends any", async () => {
    const viewer = await addAccount("viewer");
    const operator = await addAccount("operator");
    const viewerSession = await signIn(viewer.token);
    const operatorSession = await signIn(operator.token);

    const seenByViewer = (await json(await get("/api/sessions", withCookie(viewerSession.cookie)))).sessions;
    expect(seenByViewer.map((s: any) => s.account)).toEqual([viewer.name]);
    const refused = await call(`/api/sessions/${operatorSession.body.session}`, { method: "DELETE", headers: bearer(viewer.token) });
    expect(refused.status).toBe(404);
    expect((await get("/api/devices", withCookie(operatorSession.cookie))).status).toBe(200);

    const seenByOperator = (await json(await get("/api/sessions", bearer(operator.token)))).sessions.map((s: any) => s.id);
    expect(seenByOperator).toEqual(expect.arrayContaining([viewerSession.body.session, operatorSession.body.session]));
    const ended = await call(`/api/sessions/${viewerSession.body.session}`, { method: "DELETE", headers: bearer(operator.token) });
    expect(ended.status).toBe(200);
    expect((await get("/api/devices", withCookie(viewerSession.cookie))).status).toBe(401);
  });

  it("a cookie whose session id was never issued is refused, even when correctly signed", async () => {
    const made = (await serializeSigned("iot_session", `${"A".repeat(22)}.${"B".repeat(43)}`, SESSION_SECRET)).split(";")[0]!;
    expect((await get("/api/devices", { cookie: made })).status).toBe(401);
  });

  it("a built-in account's session ends when its token changes", async () => {
    const sha = async (text: string) =>
      [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)))].map((b) => b.toString(16).padStart(2, "0")).join("");
    // Two sessions of the built-in admin, stored as a sign-in would: one made under the
    // operator token as it was before a change, one under the current token.
    const open = async (id: string, generation: string) => {
      const secret = id.slice(0, 1).repeat(43);
      await env.DIRECTORY.getByName("directory").openSession({
        id,
        secretHash: await sha(secret),
        account: "admin",
        role: "operator",
        generation,
        expiresAt: Date.now() + 3_600_000,
        userAgent: "test",
        address: "test",
      });
      return (await serializeSigned("iot_session", `${id}.${secret}`, SESSION_SECRET)).split(";")[0]!;
    };
    const stale = await open("S".repeat(22), (await sha("the-operator-token-before-it-was-changed")).slice(0, 16));
    const current = await open("C".repeat(22), (await sha(ADMIN_TOKEN)).slice(0, 16));
    expect((await get("/api/devices", { cookie: stale })).status).toBe(401);
    expect((await get("/api/devices", { cookie: current })).status).toBe(200);
  });
});
