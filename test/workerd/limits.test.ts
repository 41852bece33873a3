/**
 * Issue 12, item 5: counts and sizes.
 * - Dashboard sockets: at most LIMITS.maxDashboardsPerDevice per device, and of those at most
 *   maxDashboardsPerAccount per account and maxDashboardsPerAddress per client address, so one
 *   person or one machine cannot hold every seat of a device.
 */
import { describe, expect, it } from "vitest";
import { LIMITS } from "../../party/protocol";
import { asAdmin, call, json, postJson, register, uniqueId } from "./helpers";

let accounts = 0;
/** A named viewer account of its own; its bearer headers. */
async function viewerAccount(): Promise<Record<string, string>> {
  const name = `seat-${Date.now().toString(36)}-${(accounts++).toString(36)}`;
  const res = await postJson("/api/accounts", { name, role: "viewer" }, asAdmin);
  if (res.status !== 201) throw new Error(`add ${name}: ${res.status} ${await res.text()}`);
  return { authorization: `Bearer ${(await json(res)).token}` };
}

/**
 * Open a dashboard socket on `id` as `as`, from `address` (its ticket too: ticket requests are
 * limited per address, and this file asks for a few hundred): 101 (accepted) or the refusal.
 */
async function seat(id: string, as: Record<string, string>, address: string): Promise<Response> {
  const issued = await postJson("/api/tickets", { device: id, role: "dashboard" }, { ...as, "cf-connecting-ip": address });
  if (issued.status !== 200) throw new Error(`ticket: ${issued.status} ${await issued.text()}`);
  const res = await call(`/parties/device/${id}?ticket=${(await json(issued)).ticket}`, {
    headers: { Upgrade: "websocket", "cf-connecting-ip": address },
  });
  res.webSocket?.accept();
  return res;
}

async function refusal(res: Response): Promise<{ status: number; code: string; message: string }> {
  const { error } = await json(res);
  return { status: res.status, code: error.code, message: error.message };
}

describe("dashboard seats", () => {
  it(`gives one account at most ${LIMITS.maxDashboardsPerAccount} dashboards on a device, from any number of addresses, and the other seats to others`, async () => {
    const id = uniqueId("seats");
    const other = uniqueId("seats");
    await register(id);
    await register(other);
    const alice = await viewerAccount();
    const bob = await viewerAccount();
    const open: WebSocket[] = [];
    for (let i = 0; i < LIMITS.maxDashboardsPerAccount; i++) {
      const res = await seat(id, alice, `203.0.113.${i + 1}`);
      expect(res.status).toBe(101);
      open.push(res.webSocket!);
    }
    const over = await seat(id, alice, "203.0.113.200");
    expect(await refusal(over)).toMatchObject({ status: 429, code: "too_many_sockets", message: expect.stringContaining("account seat-") });
    // Someone else, even from an address alice uses, still gets in; alice still may watch another device.
    expect((await seat(id, bob, "203.0.113.1")).status).toBe(101);
    expect((await seat(other, alice, "203.0.113.1")).status).toBe(101);
    // Seats are counted live: one closed, alice may open one again.
    open.pop()!.close(1000, "done");
    let again = 0;
    for (let attempt = 0; attempt < 40 && again !== 101; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      again = (await seat(id, alice, "203.0.113.201")).status;
    }
    expect(again).toBe(101);
  });

  it(`gives one client address at most ${LIMITS.maxDashboardsPerAddress} dashboards on a device, whichever accounts it uses`, async () => {
    const id = uniqueId("seats");
    await register(id);
    const people = [await viewerAccount(), await viewerAccount()];
    for (let i = 0; i < LIMITS.maxDashboardsPerAddress; i++) {
      expect((await seat(id, people[i % 2]!, "198.18.0.7")).status).toBe(101);
    }
    const over = await seat(id, await viewerAccount(), "198.18.0.7");
    expect(await refusal(over)).toMatchObject({ status: 429, code: "too_many_sockets", message: expect.stringContaining("your address") });
    expect((await seat(id, people[0]!, "198.18.0.8")).status).toBe(101);
  });

  it(`still caps a device at ${LIMITS.maxDashboardsPerDevice} dashboards however many accounts and addresses share them`, async () => {
    const id = uniqueId("seats");
    await register(id);
    const people = await Promise.all(Array.from({ length: 6 }, () => viewerAccount()));
    for (let i = 0; i < LIMITS.maxDashboardsPerDevice; i++) {
      expect((await seat(id, people[i % people.length]!, `198.18.1.${i % 6}`)).status).toBe(101);
    }
    const over = await seat(id, await viewerAccount(), "198.18.2.1");
    expect(await refusal(over)).toMatchObject({ status: 429, code: "too_many_sockets", message: expect.stringContaining(`${LIMITS.maxDashboardsPerDevice} dashboards`) });
  });
});
