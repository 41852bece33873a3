/**
 * Issue 12's smaller holes, each a test that fails on the room before it:
 * device-reported text, the streams table's growth, one log line per unknown
 * command result. Dashboard socket caps (per device, account, address) are in
 * limits.test.ts.
 */
import { describe, expect, it, vi } from "vitest";
import { KEEP_STREAMS } from "../../party/room/streams";
import { connect, connectDevice, get, json, register, reportedState, ticket, uniqueId } from "./helpers";

describe("hardening", () => {
  it("refuses control and bidi characters in what a device reports, and a non-address as its ip", async () => {
    const id = uniqueId();
    await register(id);
    for (const state of [
      reportedState({ fw: "1.0.0\u202e" }),
      reportedState({ fw: "\u001b[31mred" }),
      reportedState({ sensor: "tmp102\u0000" }),
      reportedState({ ip: "<img src=x>" }),
    ]) {
      const device = await connect(`/parties/device/${id}?ticket=${await ticket(id, "device")}`);
      device.send({ type: "hello", stream: "stream-text-1", oldest: 1, state });
      const err = await device.next((m) => m.type === "error");
      expect(err.code).toBe("invalid_message");
      device.close();
    }
    const ok = await connectDevice(id, { state: { fw: "1.2.3-rc.1", ip: "192.168.1.19" } });
    ok.close();
    expect((await json(await get(`/api/devices/${id}`))).reported).toMatchObject({ fw: "1.2.3-rc.1", ip: "192.168.1.19" });
  });

  it(`keeps at most ${KEEP_STREAMS} streams however many new stream ids say hello, and still stores each one's readings after the rest`, async () => {
    const id = uniqueId();
    await register(id);
    for (let i = 0; i < KEEP_STREAMS + 10; i++) {
      const device = await connectDevice(id, { stream: `stream-many-${String(i).padStart(3, "0")}` });
      device.send({ type: "readings", readings: [{ seq: 1, ts: 1_739_129_986_136 + i, temperature: 70, scale: "F" }] });
      await device.next((m) => m.type === "ack" && m.seq === 1);
      device.close();
    }
    const { readings } = await json(await get(`/api/devices/${id}/readings`));
    expect(readings.map((r: { seq: number }) => r.seq)).toEqual(Array.from({ length: KEEP_STREAMS + 10 }, (_, i) => i + 1));
    // The first stream fell out of the table: coming back, it is treated as new, so its seq 1
    // lands after everything stored (before, it was remembered forever and its seq 1 was a repeat).
    const old = await connectDevice(id, { stream: "stream-many-000" });
    old.send({ type: "readings", readings: [{ seq: 1, ts: 1_739_129_990_000, temperature: 71, scale: "F" }] });
    await old.next((m) => m.type === "ack" && m.seq === 1);
    const after = await json(await get(`/api/devices/${id}/readings`));
    expect(after.readings.at(-1)).toMatchObject({ seq: KEEP_STREAMS + 11, temperature: 71 });
    expect(after.readings.filter((r: { temperature: number }) => r.temperature === 71)).toHaveLength(1);
  });

  it("logs a result for an unknown command once a minute, not once per frame", async () => {
    const id = uniqueId();
    await register(id);
    const device = await connectDevice(id);
    const warn = vi.spyOn(console, "warn");
    try {
      for (let i = 0; i < 50; i++) device.send({ type: "result", id: `nosuchcmd-${String(i).padStart(4, "0")}`, ok: true });
      device.send({ type: "flush" });
      await device.next((m) => m.type === "ack", 5_000, device.messages.length);
      // Room logs go to the test's console through workerd: count what this room wrote.
      await new Promise((r) => setTimeout(r, 100));
      const lines = warn.mock.calls.map((c) => String(c[0])).filter((l) => l.includes(id) && l.includes("unknown command"));
      expect(lines.length).toBeLessThanOrEqual(1);
    } finally {
      warn.mockRestore();
    }
  });
});
