/**
 * Issue 12, item 5: log amplification. One flooding socket made the room write
 * 8,103 warning lines, each naming the socket by its connection id. Now what
 * one socket does costs at most its first warning, a summary a minute and one
 * at close, and each line names the socket by role (device / viewer dashboard).
 * Counted through console.warn: the rooms run in this isolate.
 */
import { afterEach, beforeEach, describe, expect, it, vi, type MockInstance } from "vitest";
import { asViewer, connectDashboard, connectDevice, reading, register, reportedState, uniqueId } from "./helpers";

/** partyserver's connection ids are UUIDs: no log line may need one to be understood. */
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

let warn: MockInstance<typeof console.warn>;
beforeEach(() => {
  warn = vi.spyOn(console, "warn");
});
afterEach(() => warn.mockRestore());

/** The warning lines room `id` wrote (the spy sees every room in this isolate). */
const linesOf = (id: string) => warn.mock.calls.map((c) => c.map(String).join(" ")).filter((l) => l.startsWith(`room ${id}:`));

/** Until the room has had time to write what it will (every wait has a time-out). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

describe("warnings a socket can cause", () => {
  it("a device socket flooding 10,000 frames costs one warning line, naming the device, not thousands", async () => {
    const id = uniqueId("logflood");
    await register(id);
    const flooder = await connectDevice(id, { stream: "logflood-stream-1" });
    for (let i = 0; i < 10_000; i++) flooder.ws.send("{}");
    expect((await flooder.closed).code).toBe(1008);
    await settle();
    const lines = linesOf(id);
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(lines[0]).toBe(`room ${id}: device: closing: flooded 2000 frames past its budget`);
    for (const line of lines) expect(line).not.toMatch(UUID);
  });

  it("a flooding viewer dashboard is named as one", async () => {
    const id = uniqueId("logflood");
    await register(id);
    const viewer = await connectDashboard(id, asViewer);
    for (let i = 0; i < 10_000; i++) viewer.ws.send("{}");
    expect((await viewer.closed).code).toBe(1008);
    await settle();
    const lines = linesOf(id);
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(lines[0]).toMatch(new RegExp(`^room ${id}: viewer dashboard( [^:]+)?: closing: flooded`));
    for (const line of lines) expect(line).not.toMatch(UUID);
  });

  it("100 hellos with new streams, within the frame budget, write the first warning and one summary with the count", async () => {
    const id = uniqueId("loghello");
    await register(id);
    const device = await connectDevice(id, { stream: "loghello-stream-0" });
    device.send({ type: "readings", readings: [reading(1)] });
    await device.next((m) => m.type === "ack" && m.seq === 1);
    // Each new stream continues after what is stored: a warning every time, before.
    for (let i = 1; i <= 100; i++) {
      device.send({ type: "hello", stream: `loghello-stream-${i}`, oldest: 1, state: reportedState() });
    }
    device.send({ type: "flush" });
    await device.next((m) => m.type === "ack", 10_000, device.messages.length);
    await device.next(() => device.messages.filter((m) => m.type === "desired").length >= 101, 10_000);
    device.close();
    await device.closed;
    await settle();
    const lines = linesOf(id);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^room ${id}: device: new agent stream loghello-stream-1;`));
    expect(lines[1]).toMatch(/^room \S+: device: closed \(99 more warnings in the last \d+ s not written; the last: new agent stream loghello-stream-100;/);
  });
});
