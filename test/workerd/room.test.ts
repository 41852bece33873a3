import { env } from "cloudflare:workers";
import { evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PING, PONG } from "../../party/protocol";
import { asAdmin, connect, get, connectDashboard, connectDevice, json, postJson, reading, register, ticket, uniqueId } from "./helpers";

describe("DeviceRoom", () => {
  it("fans readings out in order to three dashboards and acks the device", async () => {
    const id = uniqueId();
    await register(id);
    const dashboards = await Promise.all([connectDashboard(id), connectDashboard(id), connectDashboard(id)]);
    const device = await connectDevice(id);
    for (let seq = 1; seq <= 20; seq++) device.send({ type: "readings", readings: [reading(seq)] });
    await device.next((m) => m.type === "ack" && m.seq === 20);
    for (const d of dashboards) {
      await d.next((m) => m.type === "readings" && m.readings.some((r: any) => r.seq === 20));
      const seqs = d.messages.filter((m) => m.type === "readings").flatMap((m) => m.readings.map((r: any) => r.seq));
      expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    }
    const { readings } = await json(await get(`/api/devices/${id}/readings`));
    expect(readings.map((r: any) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(readings[0]).toEqual(reading(1));
  });

  it("stores a duplicate seq once and does not fan it out twice", async () => {
    const id = uniqueId();
    await register(id);
    const dash = await connectDashboard(id);
    const device = await connectDevice(id);
    device.send({ type: "readings", readings: [reading(1), reading(2)] });
    await device.next((m) => m.type === "ack" && m.seq === 2);
    // The agent resends after a lost ack; a different value under the same seq must not overwrite.
    device.send({ type: "readings", readings: [reading(2, 99.9), reading(3)] });
    await device.next((m) => m.type === "ack" && m.seq === 3);
    await dash.next((m) => m.type === "readings" && m.readings.some((r: any) => r.seq === 3));
    const fanned = dash.messages.filter((m) => m.type === "readings").flatMap((m) => m.readings.map((r: any) => r.seq));
    expect(fanned).toEqual([1, 2, 3]);
    const { readings } = await json(await get(`/api/devices/${id}/readings`));
    expect(readings).toEqual([reading(1), reading(2), reading(3)]);
    expect((await json(await get(`/api/devices/${id}`))).stored).toBe(3);
  });

  it("acks only up to the highest contiguous seq when there is a gap, then past it once filled", async () => {
    const id = uniqueId();
    await register(id);
    const device = await connectDevice(id);
    device.send({ type: "readings", readings: [reading(1), reading(2), reading(4), reading(5)] });
    const ack = await device.next((m) => m.type === "ack" && m.seq >= 1);
    expect(ack.seq).toBe(2);
    const before = device.messages.length;
    device.send({ type: "readings", readings: [reading(3)] });
    const filled = await device.next((m) => m.type === "ack", 5_000, before);
    expect(filled.seq).toBe(5);
  });

  it("sends the desired state to a device that connects after the command was given", async () => {
    const id = uniqueId();
    await register(id);
    const res = await postJson(`/api/devices/${id}/commands`, { cmd: "scale", scale: "C" }, asAdmin);
    expect(res.status).toBe(202);
    const record = await json(res);
    expect(record.status).toBe("queued");
    const device = await connectDevice(id);
    const desired = device.messages.find((m) => m.type === "desired");
    expect(desired.state.scale).toBe("C");
    // The queued command follows, so the device can confirm it.
    const cmd = await device.next((m) => m.type === "command");
    expect(cmd).toEqual({ type: "command", id: record.id, command: { cmd: "scale", scale: "C" } });
    const state = await json(await get(`/api/devices/${id}`));
    expect(state.commands[0].status).toBe("delivered");
  });

  it("reports queued → delivered → applied to every dashboard when the device confirms", async () => {
    const id = uniqueId();
    await register(id);
    const device = await connectDevice(id);
    const dashes = [await connectDashboard(id), await connectDashboard(id)];
    dashes[0].send({ type: "command", id: "cmd-applied-1", command: { cmd: "scale", scale: "C" } });
    const cmd = await device.next((m) => m.type === "command");
    expect(cmd.id).toBe("cmd-applied-1");
    device.send({ type: "result", id: cmd.id, ok: true, state: { scale: "C", intervalMs: 1000, fw: "1.0.0", sensor: "simulated" } });
    for (const d of dashes) {
      await d.next((m) => m.type === "command-status" && m.command.status === "applied");
      const statuses = d.messages.filter((m) => m.type === "command-status").map((m) => m.command.status);
      expect(statuses).toContain("delivered");
      await d.next((m) => m.type === "state" && m.reported?.scale === "C");
    }
  });

  it("stores the time the agent says it applied a command, for the trace; an older agent's result has none (issue 14)", async () => {
    const id = uniqueId();
    await register(id);
    const device = await connectDevice(id);
    const dash = await connectDashboard(id);
    const state = { scale: "C", intervalMs: 1000, fw: "1.0.0", sensor: "simulated" } as const;
    dash.send({ type: "command", id: "cmd-applied-at-1", command: { cmd: "scale", scale: "C" } });
    const cmd = await device.next((m) => m.type === "command");
    const delivered = await dash.next((m) => m.type === "command-status" && m.command.status === "delivered");
    const appliedAt = delivered.command.deliveredAt + 7;
    device.send({ type: "result", id: cmd.id, ok: true, state, appliedAt });
    const applied = await dash.next((m) => m.type === "command-status" && m.command.status === "applied");
    expect(applied.command.appliedAt).toBe(appliedAt);
    // Stored, not only relayed: a page that opens later (or the API) finds it.
    const stored = (await json(await get(`/api/devices/${id}`))).commands.find((c: { id: string }) => c.id === "cmd-applied-at-1");
    expect(stored).toMatchObject({ status: "applied", appliedAt });
    const late = await connectDashboard(id);
    const snapshot = late.messages.find((m) => m.type === "snapshot");
    expect(snapshot.state.commands.find((c: { id: string }) => c.id === "cmd-applied-at-1").appliedAt).toBe(appliedAt);

    // An agent from before appliedAt: applied as ever, with no device time.
    dash.send({ type: "command", id: "cmd-applied-at-2", command: { cmd: "scale", scale: "F" } });
    const old = await device.next((m) => m.type === "command" && m.id === "cmd-applied-at-2");
    device.send({ type: "result", id: old.id, ok: true, state: { ...state, scale: "F" } });
    const oldApplied = await dash.next((m) => m.type === "command-status" && m.command.id === "cmd-applied-at-2" && m.command.status === "applied");
    expect(oldApplied.command).not.toHaveProperty("appliedAt");
  });

  it("keeps a command queued while the device is offline, and times it out only once delivered and unanswered (issue 14)", async () => {
    const id = uniqueId();
    await register(id);
    const dash = await connectDashboard(id);
    dash.send({ type: "command", id: "cmd-timeout-1", command: { cmd: "scale", scale: "C" } });
    await dash.next((m) => m.type === "command-status" && m.command.status === "queued");
    // Well past COMMAND_TIMEOUT_MS (800 ms here): still queued, since the device gets it when it returns.
    await new Promise((r) => setTimeout(r, 2_000));
    expect((await json(await get(`/api/devices/${id}`))).commands[0]).toMatchObject({ id: "cmd-timeout-1", status: "queued" });
    expect(dash.messages.some((m) => m.type === "command-status" && m.command.status === "timed-out")).toBe(false);
    // A device that takes it and never answers: the time-out runs from delivery.
    const device = await connectDevice(id);
    await device.next((m) => m.type === "command");
    const delivered = await dash.next((m) => m.type === "command-status" && m.command.status === "delivered");
    expect(delivered.command.deliveredAt).toBeGreaterThanOrEqual(delivered.command.createdAt + 2_000);
    const timedOut = await dash.next((m) => m.type === "command-status" && m.command.status === "timed-out", 5_000);
    expect(timedOut.command.error).toMatch(/no answer/);
    expect(timedOut.command.updatedAt - timedOut.command.deliveredAt).toBeGreaterThanOrEqual(800);
    // The desired state stays: a device that comes back later still converges on it.
    expect((await json(await get(`/api/devices/${id}`))).desired.scale).toBe("C");
  });

  it("answers a failed command with failed and the device's reason", async () => {
    const id = uniqueId();
    await register(id);
    const device = await connectDevice(id);
    const dash = await connectDashboard(id);
    dash.send({ type: "command", id: "cmd-failed-1", command: { cmd: "interval", intervalMs: 500 } });
    const cmd = await device.next((m) => m.type === "command");
    device.send({ type: "result", id: cmd.id, ok: false, error: "interval not supported by this sensor" });
    const failed = await dash.next((m) => m.type === "command-status" && m.command.status === "failed");
    expect(failed.command.error).toBe("interval not supported by this sensor");
  });

  it("answers a malformed frame with an error and keeps working", async () => {
    const id = uniqueId();
    await register(id);
    const dash = await connectDashboard(id);
    const device = await connectDevice(id);
    const bad = [
      "not json",
      JSON.stringify({ type: "readings", readings: [{ seq: -1, ts: 1, temperature: 1, scale: "F" }] }),
      JSON.stringify({ type: "readings", readings: [{ ...reading(1), temperature: 1e300 }] }),
      JSON.stringify({ type: "readings", readings: [{ ...reading(1), extra: true }] }),
      JSON.stringify({ type: "nope" }),
    ];
    // (A frame past the size limit is refused too, and closes its socket: limits.test.ts.)
    for (const frame of bad) device.send(frame);
    await device.next(() => device.messages.filter((m) => m.type === "error").length === bad.length);
    expect(device.messages.filter((m) => m.type === "error").map((m) => m.code)).toEqual([
      "invalid_json",
      "invalid_message",
      "invalid_message",
      "invalid_message",
      "invalid_message",
    ]);
    dash.send("{]");
    await dash.next((m) => m.type === "error" && m.code === "invalid_json");
    device.send({ type: "readings", readings: [reading(1)] });
    await device.next((m) => m.type === "ack" && m.seq === 1);
    await dash.next((m) => m.type === "readings");
    const { readings } = await json(await get(`/api/devices/${id}/readings`));
    expect(readings).toEqual([reading(1)]);
  });

  it("refuses readings before hello", async () => {
    const id = uniqueId();
    await register(id);
    const device = await connect(`/parties/device/${id}?ticket=${await ticket(id, "device")}`);
    device.send({ type: "readings", readings: [reading(1)] });
    await device.next((m) => m.type === "error" && m.code === "hello_required");
    expect((await json(await get(`/api/devices/${id}/readings`))).readings).toEqual([]);
  });

  it("answers heartbeats and flips presence to offline when they stop", async () => {
    const id = uniqueId();
    await register(id);
    const dash = await connectDashboard(id);
    const device = await connectDevice(id);
    await dash.next((m) => m.type === "presence" && m.online === true);
    device.send(PING);
    await device.next((m) => m.type === "pong");
    expect(PONG).toBe('{"type":"pong"}');
    // Stay silent but keep the socket open: a half-open link as the room sees it.
    const offline = await dash.next((m) => m.type === "presence" && m.online === false, 5_000);
    expect(offline.lastSeen).toBeGreaterThan(0);
    const closed = await device.closed;
    expect(closed.code).toBe(4000);
    expect((await json(await get(`/api/devices/${id}`))).online).toBe(false);
    const { devices } = await json(await get("/api/devices"));
    expect(devices.find((d: any) => d.id === id).online).toBe(false);
  });

  it("keeps a device online while it pings, even without readings", async () => {
    const id = uniqueId();
    await register(id);
    const dash = await connectDashboard(id);
    const device = await connectDevice(id);
    const timer = setInterval(() => device.send(PING), 200);
    try {
      await new Promise((r) => setTimeout(r, 2_000)); // > 2× the 900 ms test time-out
    } finally {
      clearInterval(timer);
    }
    expect(dash.messages.some((m) => m.type === "presence" && m.online === false)).toBe(false);
    expect((await json(await get(`/api/devices/${id}`))).online).toBe(true);
  });

  it("counts readings the agent dropped by policy as lost and acks past them", async () => {
    const id = uniqueId();
    await register(id);
    const first = await connectDevice(id, { stream: "stream-drop-1", oldest: 1 });
    first.send({ type: "readings", readings: [reading(1), reading(2)] });
    await first.next((m) => m.type === "ack" && m.seq === 2);
    first.close();
    // Reconnect saying the outbox now starts at 6: 3, 4, 5 were dropped while offline.
    const second = await connectDevice(id, { stream: "stream-drop-1", oldest: 6 });
    const ack = await second.next((m) => m.type === "ack");
    expect(ack.seq).toBe(5);
    second.send({ type: "readings", readings: [reading(6)] });
    await second.next((m) => m.type === "ack" && m.seq === 6);
    const state = await json(await get(`/api/devices/${id}`));
    expect(state.lost).toBe(3);
    expect(state.ackedSeq).toBe(6);
  });

  it("continues a reset agent's new stream after the stored readings", async () => {
    const id = uniqueId();
    await register(id);
    const first = await connectDevice(id, { stream: "stream-old-1" });
    first.send({ type: "readings", readings: [reading(1), reading(2), reading(3)] });
    await first.next((m) => m.type === "ack" && m.seq === 3);
    first.close();
    const second = await connectDevice(id, { stream: "stream-new-1" });
    second.send({ type: "readings", readings: [reading(1, 50), reading(2, 51)] });
    // Acks speak the agent's own seq…
    await second.next((m) => m.type === "ack" && m.seq === 2);
    // …while the room keeps one monotonic series with nothing overwritten.
    const { readings } = await json(await get(`/api/devices/${id}/readings`));
    expect(readings.map((r: any) => [r.seq, r.temperature])).toEqual([
      [1, reading(1).temperature],
      [2, reading(2).temperature],
      [3, reading(3).temperature],
      [4, 50],
      [5, 51],
    ]);
  });

  it("replaces an older device socket with a newer one", async () => {
    const id = uniqueId();
    await register(id);
    const first = await connectDevice(id);
    await connectDevice(id);
    expect((await first.closed).code).toBe(4001);
  });

  it("keeps serving sockets across hibernation", async () => {
    const id = uniqueId();
    await register(id);
    const dash = await connectDashboard(id);
    const device = await connectDevice(id);
    device.send({ type: "readings", readings: [reading(1)] });
    await device.next((m) => m.type === "ack" && m.seq === 1);
    await evictDurableObject(env.DEVICE_ROOM.get(env.DEVICE_ROOM.idFromName(id)));
    device.send({ type: "readings", readings: [reading(2)] });
    await device.next((m) => m.type === "ack" && m.seq === 2);
    await dash.next((m) => m.type === "readings" && m.readings[0].seq === 2);
    const state = await json(await get(`/api/devices/${id}`));
    expect(state.online).toBe(true);
    expect(state.ackedSeq).toBe(2);
  });

  it("rebuilds its ack from the stored readings after an eviction (the ack is not written per frame)", async () => {
    const id = uniqueId();
    await register(id);
    const device = await connectDevice(id);
    // 1–5 in order, then 7–9 past a gap at 6.
    device.send({ type: "readings", readings: [1, 2, 3, 4, 5].map((s) => reading(s)) });
    await device.next((m) => m.type === "ack" && m.seq === 5);
    device.send({ type: "readings", readings: [7, 8, 9].map((s) => reading(s)) });
    await device.next((m) => m.type === "ack" && m.seq === 5, 5_000, device.messages.length);
    await evictDurableObject(env.DEVICE_ROOM.get(env.DEVICE_ROOM.idFromName(id)));
    // A new instance knows everything up to 5 is stored, and nothing past the gap.
    expect((await json(await get(`/api/devices/${id}`))).ackedSeq).toBe(5);
    // Filling the gap acks straight past what was stored beyond it.
    const from = device.messages.length;
    device.send({ type: "readings", readings: [reading(6)] });
    expect((await device.next((m) => m.type === "ack", 5_000, from)).seq).toBe(9);
    expect((await json(await get(`/api/devices/${id}`))).ackedSeq).toBe(9);
    await evictDurableObject(env.DEVICE_ROOM.get(env.DEVICE_ROOM.idFromName(id)));
    expect((await json(await get(`/api/devices/${id}`))).ackedSeq).toBe(9);
    device.send({ type: "readings", readings: [reading(10)] });
    expect((await device.next((m) => m.type === "ack", 5_000, device.messages.length)).seq).toBe(10);
  });

  it("stores a full frame of 500 new readings exactly and acks all of it", async () => {
    const id = uniqueId();
    await register(id);
    const dash = await connectDashboard(id);
    const device = await connectDevice(id);
    const batch = Array.from({ length: 500 }, (_, i) => reading(i + 1, Math.round((60 + i / 7) * 100) / 100, i % 2 ? "C" : "F"));
    device.send({ type: "readings", readings: batch });
    await device.next((m) => m.type === "ack" && m.seq === 500);
    await dash.next((m) => m.type === "readings" && m.readings.length === 500);
    const { readings } = await json(await get(`/api/devices/${id}/readings?limit=1000`));
    expect(readings).toEqual(batch);
    // A resend of part of it plus new ones: only the new are stored and fanned out.
    device.send({ type: "readings", readings: [...batch.slice(490), reading(501), reading(502)] });
    await device.next((m) => m.type === "ack" && m.seq === 502);
    const fanned = await dash.next((m) => m.type === "readings" && m.readings.some((r: any) => r.seq === 502));
    expect(fanned.readings.map((r: any) => r.seq)).toEqual([501, 502]);
    expect((await json(await get(`/api/devices/${id}`))).stored).toBe(502);
  });
});
