/**
 * The audit trail (issue 12): every change — provision, rotate, revoke, commands (REST and
 * socket), account changes, sign-in, failed sign-in, sign-out, session revocation — with who,
 * when and from where; paged newest first; bounded.
 */
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { AuditStore } from "../../party/directory/audit";
import { asAdmin, asViewer, call, connect, get, json, postJson, register, uniqueId } from "./helpers";

const OWN_ORIGIN = { origin: "http://iot.test" };
let addressBase = Math.floor(Math.random() * 200);
/** Sign-ins are limited per address (10 a minute): each one here comes from its own. */
const freshAddress = () => `192.0.2.${(addressBase++ % 250) + 1}`;

async function addOperator(): Promise<{ name: string; token: string }> {
  const name = `op-${uniqueId("a").toLowerCase()}`.replace(/[^a-z0-9_-]/g, "-").slice(0, 32);
  const res = await postJson("/api/accounts", { name, role: "operator" }, asAdmin);
  if (res.status !== 201) throw new Error(`add ${name}: ${res.status} ${await res.text()}`);
  return json(res);
}

/** Every audit row, newest first, following the pages. */
async function allEntries(limit = 500): Promise<any[]> {
  const entries: any[] = [];
  let cursor: number | null = null;
  do {
    const res = await get(`/api/audit?limit=${limit}${cursor === null ? "" : `&cursor=${cursor}`}`);
    expect(res.status).toBe(200);
    const page = await json(res);
    entries.push(...page.entries);
    cursor = page.next;
  } while (cursor !== null);
  return entries;
}

describe("GET /api/audit", () => {
  it("records provision, rotate, a REST command, batching and revoke with who, when and from where", async () => {
    const { name, token } = await addOperator();
    const as = { authorization: `Bearer ${token}`, "cf-connecting-ip": "203.0.113.99" };
    const id = uniqueId();
    const before = Date.now();
    expect((await postJson("/api/devices", { id }, as)).status).toBe(201);
    expect((await postJson(`/api/devices/${id}/rotate`, {}, as)).status).toBe(200);
    expect((await postJson(`/api/devices/${id}/commands`, { id: "audit-cmd-1", cmd: "scale", scale: "C" }, as)).status).toBe(202);
    expect((await call(`/api/devices/${id}/batching`, { method: "PUT", headers: { ...as, "content-type": "application/json" }, body: '{"unwatchedMs":60000}' })).status).toBe(200);
    expect((await postJson(`/api/devices/${id}/revoke`, {}, as)).status).toBe(200);
    const after = Date.now();

    const rows = (await allEntries()).filter((e) => e.target === `device:${id}`);
    expect(rows.map((e) => e.action)).toEqual(["device.revoke", "device.batching", "device.command", "device.rotate", "device.provision"]);
    for (const row of rows) {
      expect(row).toMatchObject({ actor: name, role: "operator", address: "203.0.113.99" });
      expect(row.ts).toBeGreaterThanOrEqual(before);
      expect(row.ts).toBeLessThanOrEqual(after);
    }
    expect(rows[2].detail).toEqual({ id: "audit-cmd-1", cmd: "scale", scale: "C" });
    expect(rows[1].detail).toEqual({ unwatchedMs: 60000 });
    expect(rows[0].detail).toEqual({ hadCredentials: true });
  });

  it("records a command sent over a dashboard socket with the account that opened it", async () => {
    const { name, token } = await addOperator();
    const id = uniqueId();
    await register(id);
    const res = await postJson("/api/tickets", { device: id }, { authorization: `Bearer ${token}` });
    const { ticket } = await json(res);
    const dashboard = await connect(`/parties/device/${id}?ticket=${ticket}`);
    await dashboard.next((m) => m.type === "snapshot");
    dashboard.send({ type: "command", id: "socket-cmd-1", command: { cmd: "interval", intervalMs: 2000 } });
    await dashboard.next((m) => m.type === "command-status" && m.command.id === "socket-cmd-1");
    // Sent again (a reconnecting page resends): one row, not two.
    dashboard.send({ type: "command", id: "socket-cmd-1", command: { cmd: "interval", intervalMs: 2000 } });
    await dashboard.next((m) => m.type === "command-status", 5_000, dashboard.messages.length);
    dashboard.close();
    await vi.waitFor(async () => {
      const rows = (await allEntries()).filter((e) => e.target === `device:${id}` && e.action === "device.command");
      expect(rows).toEqual([
        {
          seq: expect.any(Number),
          ts: expect.any(Number),
          actor: name,
          role: "operator",
          address: expect.stringMatching(/^198\.51\.100\.\d+$/),
          action: "device.command",
          target: `device:${id}`,
          detail: { id: "socket-cmd-1", cmd: "interval", intervalMs: 2000 },
        },
      ]);
    });
  });

  it("records sign-in, failed sign-in (naming the account tried, never the token), sign-out and session revocation", async () => {
    const { name, token } = await addOperator();
    const from = freshAddress();
    const login = await postJson("/api/login", { token }, { "cf-connecting-ip": from });
    expect(login.status).toBe(200);
    const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
    const { session } = await json(login);
    const wrongSecret = `@${name}.${"x".repeat(43)}`;
    expect((await postJson("/api/login", { token: wrongSecret }, { "cf-connecting-ip": from })).status).toBe(401);
    const guess = "a-guess-that-is-no-token-at-all-000";
    expect((await postJson("/api/login", { token: guess }, { "cf-connecting-ip": from })).status).toBe(401);
    expect((await call("/api/logout", { method: "POST", headers: { cookie, ...OWN_ORIGIN, "cf-connecting-ip": from } })).status).toBe(204);
    const second = await json(await postJson("/api/login", { token }, { "cf-connecting-ip": freshAddress() }));
    expect((await call(`/api/sessions/${second.session}`, { method: "DELETE", headers: asAdmin })).status).toBe(200);

    const entries = await allEntries();
    const text = JSON.stringify(entries);
    expect(text).not.toContain("x".repeat(43));
    expect(text).not.toContain(guess);
    expect(text).not.toContain(token.split(".")[1]);
    const mine = entries.filter((e) => e.actor === name || e.target === `session:${second.session}`).reverse();
    expect(mine.map((e) => [e.action, e.actor, e.target])).toEqual([
      ["login", name, `session:${session}`],
      ["login.failed", name, null],
      ["logout", name, `session:${session}`],
      ["login", name, `session:${second.session}`],
      ["session.revoke", "admin", `session:${second.session}`],
    ]);
    expect(mine[1]).toMatchObject({ role: null, address: from, detail: { reason: "wrong token" } });
    expect(mine[0].address).toBe(from);
    expect(entries.find((e) => e.action === "login.failed" && e.actor === "unknown" && e.address === from)).toMatchObject({
      detail: { reason: "not a known token" },
    });
  });

  it("records account changes", async () => {
    const { name } = await addOperator();
    expect((await call(`/api/accounts/${name}`, { method: "DELETE", headers: asAdmin })).status).toBe(200);
    const rows = (await allEntries()).filter((e) => e.target === name);
    expect(rows.map((e) => [e.action, e.actor, e.detail])).toEqual([
      ["account.remove", "admin", { role: "operator", sessionsEnded: 0 }],
      ["account.add", "admin", { role: "operator" }],
    ]);
  });

  it("pages newest first: every row once, in order, whatever the page size", async () => {
    for (let i = 0; i < 7; i++) await addOperator();
    const whole = await allEntries(500);
    expect(whole.length).toBeGreaterThanOrEqual(7);
    const seqs = whole.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
    expect(new Set(seqs).size).toBe(seqs.length);
    for (const limit of [1, 2, 3]) {
      expect((await allEntries(limit)).map((e) => e.seq)).toEqual(seqs);
    }
    const first = await json(await get("/api/audit?limit=2"));
    expect(first.entries).toHaveLength(2);
    expect(first.next).toBe(first.entries[1].seq);
  });

  it.each(["limit=0", "limit=501", "limit=abc", "cursor=0", "cursor=-5", "cursor=1.5", "bogus=1"])("refuses ?%s with 400", async (q) => {
    const res = await get(`/api/audit?${q}`);
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe("validation_failed");
  });

  it("is for operators only", async () => {
    expect((await get("/api/audit", asViewer)).status).toBe(403);
    expect((await call("/api/audit")).status).toBe(401);
  });
});

describe("audit retention", () => {
  it("keeps the newest changes, failed sign-ins apart so they cannot push changes out, and nothing too old", async () => {
    // A directory object of its own, so this file's other rows are not pruned.
    const stub = env.DIRECTORY.getByName(`retention-${uniqueId()}`);
    await runInDurableObject(stub, (_instance, state) => {
      const store = new AuditStore(state.storage.sql, { rows: 10, failedSignIns: 3, ms: 1_000_000 });
      const actor = { actor: "alice", role: "operator" as const, address: "local" };
      const now = 10_000_000;
      // Old rows first, then 30 changes interleaved with 30 failed sign-ins.
      for (let i = 0; i < 5; i++) store.record({ ...actor, action: "device.command", target: `old-${i}` }, now - 2_000_000);
      for (let i = 0; i < 30; i++) {
        store.record({ ...actor, action: "device.provision", target: `dev-${i}` }, now);
        store.record({ actor: "unknown", role: null, address: "x", action: "login.failed" }, now);
      }
      store.prune(now);
      const { entries } = store.page({ limit: 500 });
      const changes = entries.filter((e) => e.action !== "login.failed");
      expect(changes.map((e) => e.target)).toEqual(Array.from({ length: 10 }, (_, i) => `dev-${29 - i}`));
      expect(entries.filter((e) => e.action === "login.failed")).toHaveLength(3);

      // Too old goes even below the count: 4 recent changes and 2 old ones leave the 4.
      const fresh = new AuditStore(state.storage.sql, { rows: 100, failedSignIns: 100, ms: 1_000 });
      state.storage.sql.exec("DELETE FROM audit");
      for (let i = 0; i < 2; i++) fresh.record({ ...actor, action: "device.revoke", target: `stale-${i}` }, now - 5_000);
      for (let i = 0; i < 4; i++) fresh.record({ ...actor, action: "device.rotate", target: `new-${i}` }, now);
      fresh.prune(now);
      expect(fresh.page({ limit: 500 }).entries.map((e) => e.target)).toEqual(["new-3", "new-2", "new-1", "new-0"]);
    });
  });
});
