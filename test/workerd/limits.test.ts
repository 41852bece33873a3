/**
 * Issue 12, item 5: counts and sizes.
 * - Dashboard sockets: at most LIMITS.maxDashboardsPerDevice per device, and of those at most
 *   maxDashboardsPerAccount per account and maxDashboardsPerAddress per client address, so one
 *   person or one machine cannot hold every seat of a device.
 * - A frame past LIMITS.maxFrameBytes is refused before it is parsed and its socket closed
 *   (1009), so the next one costs a new upgrade.
 * - A REST body past its limit is refused with 413 whether it announces its length or streams
 *   without one (chunked), and writes nothing.
 */
import { describe, expect, it } from "vitest";
import { LIMITS } from "../../party/protocol";
import { asAdmin, asDevice, call, connectDashboard, connectDevice, get, json, postJson, reading, register, uniqueId } from "./helpers";

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

/** A body with no Content-Length: the bytes arrive as a stream, `chunks` × `size`. */
function streamed(chunks: number, size: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent++ === chunks) return controller.close();
      controller.enqueue(new Uint8Array(size).fill(0x20));
    },
  });
}

describe("oversized frames", () => {
  it("refuses a device frame past the limit before parsing it, closes the socket with 1009, and the device carries on after reconnecting", async () => {
    const id = uniqueId("big");
    await register(id);
    const device = await connectDevice(id, { stream: "big-stream-1" });
    device.send({ type: "readings", readings: [reading(1)] });
    await device.next((m) => m.type === "ack" && m.seq === 1);
    // Valid JSON, a valid message even, but too big: it must not be parsed, let alone stored.
    device.send(JSON.stringify({ type: "readings", readings: [reading(2)], pad: "x".repeat(LIMITS.maxFrameBytes) }));
    const err = await device.next((m) => m.type === "error");
    expect(err.code).toBe("frame_too_large");
    expect((await device.closed).code).toBe(1009);

    const again = await connectDevice(id, { stream: "big-stream-1" });
    again.send({ type: "readings", readings: [reading(2)] });
    await again.next((m) => m.type === "ack" && m.seq === 2);
    expect((await json(await get(`/api/devices/${id}/readings`))).readings).toEqual([reading(1), reading(2)]);
  });

  it("closes a dashboard that sends a frame past the limit, text or binary", async () => {
    const id = uniqueId("big");
    await register(id);
    for (const frame of ["[".repeat(LIMITS.maxFrameBytes + 1), new Uint8Array(LIMITS.maxFrameBytes + 1).buffer]) {
      const dashboard = await connectDashboard(id);
      dashboard.ws.send(frame);
      expect((await dashboard.next((m) => m.type === "error")).code).toBe("frame_too_large");
      expect((await dashboard.closed).code).toBe(1009);
    }
  });
});

describe("oversized bodies", () => {
  it("refuses an upload past its limit with 413, by Content-Length and streamed without one, and stores nothing", async () => {
    const id = uniqueId("big");
    await register(id);
    const headers = { ...(await asDevice(id)), "content-type": "application/json" };
    const declared = await call("/iot/data", { method: "POST", headers, body: " ".repeat(LIMITS.maxBodyBytes + 1) });
    expect(declared.status).toBe(413);
    expect((await json(declared)).error.code).toBe("payload_too_large");
    const chunked = await call("/iot/data", { method: "POST", headers, body: streamed(300, 1024), duplex: "half" } as RequestInit);
    expect(chunked.status).toBe(413);
    expect((await json(chunked)).error.code).toBe("payload_too_large");
    expect((await json(await get(`/api/devices/${id}/readings`))).readings).toEqual([]);
  });

  it("refuses an API body past 16 KB with 413, streamed without a Content-Length too", async () => {
    const id = uniqueId("big");
    await register(id);
    const headers = { ...asAdmin, "content-type": "application/json" };
    const chunked = await call(`/api/devices/${id}/commands`, { method: "POST", headers, body: streamed(20, 1024), duplex: "half" } as RequestInit);
    expect(chunked.status).toBe(413);
    expect((await json(chunked)).error.code).toBe("payload_too_large");
    expect((await json(await get(`/api/devices/${id}`))).commands).toEqual([]);
  });
});
