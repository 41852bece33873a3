import { afterEach, describe, expect, it, vi } from "vitest";
import { DeviceMessage, type ReportedState } from "../../../party/protocol.ts";
import { applyCommand, rejectInvalidCommand } from "../../../device/commands.ts";
import { Outbox } from "../../../device/outbox.ts";
import { BACKLOG_WINDOW, Sender } from "../../../device/sender.ts";
import { memoryLogger } from "./fakes.ts";

const state: ReportedState = { scale: "F", intervalMs: 1000, fw: "1.0.0", sensor: "simulated" };

function setup(backlog: number, maxReadings?: number, clock?: { now: number }) {
  const outbox = new Outbox(":memory:", { log: memoryLogger(), maxReadings });
  for (let i = 0; i < backlog; i++) outbox.append({ ts: 1_700_000_000_000 + i, temperature: 70, scale: "F" });
  const sent: DeviceMessage[] = [];
  let linkUp = true;
  const sender = new Sender({
    outbox,
    // Every frame must be one the room accepts.
    send: (msg) => (linkUp ? (sent.push(DeviceMessage.parse(msg)), true) : false),
    state: () => state,
    ...(clock ? { now: () => clock.now, ackTimeoutMs: 30_000 } : {}),
  });
  const readingSeqs = () => sent.flatMap((m) => (m.type === "readings" ? m.readings.map((r) => r.seq) : []));
  const live = () => outbox.append({ ts: Date.now(), temperature: 71, scale: "F" });
  return { outbox, sender, sent, readingSeqs, live, down: () => (linkUp = false), up: () => (linkUp = true) };
}

describe("sender", () => {
  it("says hello first, with the stream and the oldest seq still held", () => {
    const { outbox, sender, sent } = setup(3);
    outbox.ack(1);
    sender.onOpen();
    expect(sent[0]).toEqual({ type: "hello", stream: outbox.stream, oldest: 2, state });
  });

  it("sends the backlog in order, in batches of at most 500, within a window of unacked readings", () => {
    const { sender, sent, readingSeqs } = setup(1_700);
    sender.onOpen();
    const batches = sent.filter((m) => m.type === "readings");
    expect(batches.map((b) => b.readings.length)).toEqual([500, 500]); // window: 1000 unacked
    expect(BACKLOG_WINDOW).toBe(1000);
    sender.onAck(500);
    sender.onAck(1000);
    sender.onAck(1500);
    expect(readingSeqs()).toEqual(Array.from({ length: 1_700 }, (_, i) => i + 1));
    expect(sent.filter((m) => m.type === "readings").map((b) => b.readings.length)).toEqual([500, 500, 500, 200]);
  });

  it("sends live readings at once, ahead of a backlog still in flight, and never twice", () => {
    const { sender, readingSeqs, live } = setup(1_200);
    sender.onOpen(); // 1..1000 in flight
    const now = live(); // seq 1201
    sender.onReading(now);
    expect(readingSeqs().at(-1)).toBe(1201);
    sender.onAck(1000); // 1001..1200 go now; 1201 is not sent again
    sender.onAck(1201);
    const all = readingSeqs();
    expect(all).toHaveLength(1201);
    expect(new Set(all).size).toBe(1201);
  });

  it("prunes the outbox on ack", () => {
    const { outbox, sender } = setup(10);
    sender.onOpen();
    sender.onAck(7);
    expect(outbox.oldest).toBe(8);
    expect(outbox.size).toBe(3);
  });

  it("after a lost link, resends everything not acked (live ones included) on the next connection", () => {
    const { sender, sent, readingSeqs, live, down, up } = setup(3);
    sender.onOpen();
    sender.onReading(live()); // 4, sent live
    sender.onAck(2);
    down();
    sender.onReading(live()); // 5, not sent: the link is down
    sender.onClose();
    up();
    sent.length = 0;
    sender.onOpen();
    expect(sent[0]).toMatchObject({ type: "hello", oldest: 3 });
    expect(readingSeqs()).toEqual([3, 4, 5]);
  });

  it("says hello again when the drop-oldest policy removed readings, so the room stops waiting for them", () => {
    const { outbox, sender, sent, live } = setup(5, 5);
    sender.onOpen();
    sent.length = 0;
    live(); // seq 6 pushes out seq 1
    expect(outbox.oldest).toBe(2);
    sender.hello();
    expect(sent[0]).toMatchObject({ type: "hello", oldest: 2 });
  });
});

describe("sender and the room's group commit", () => {
  afterEach(() => vi.useRealTimers());

  it("holds live readings while the room says batching, sends them as one frame after the delay, and goes live at batching 0", () => {
    vi.useFakeTimers();
    const { sender, sent, live } = setup(0);
    sender.onOpen();
    sender.onBatching(60_000);
    for (let i = 0; i < 5; i++) sender.onReading(live());
    expect(sent.filter((m) => m.type === "readings")).toHaveLength(0);
    vi.advanceTimersByTime(60_000);
    const frames = sent.filter((m) => m.type === "readings");
    expect(frames.map((f) => f.readings.map((r) => r.seq))).toEqual([[1, 2, 3, 4, 5]]);
    sender.onReading(live());
    sender.onReading(live());
    // A dashboard opened: what is held goes at once, and from then on each reading alone.
    sender.onBatching(0);
    sender.onReading(live());
    expect(sent.filter((m) => m.type === "readings").map((f) => f.readings.map((r) => r.seq))).toEqual([[1, 2, 3, 4, 5], [6, 7], [8]]);
    sender.onClose();
  });

  it("tells the outbox why readings wait: the unwatched spill bound only while the link is up and the room batches, 30 s otherwise", () => {
    const clock = { t: 0 };
    const outbox = new Outbox(":memory:", { log: memoryLogger(), now: () => clock.t, spillMs: 30_000, spillUnwatchedMs: 120_000 });
    const sender = new Sender({ outbox, send: () => true, state: () => state });
    const take = () => {
      clock.t += 1000;
      sender.onReading(outbox.append({ ts: 1_700_000_000_000 + clock.t, temperature: 70, scale: "F" }));
    };
    expect(outbox.spillAfterMs).toBe(30_000); // offline from the start
    sender.onOpen();
    expect(outbox.spillAfterMs).toBe(30_000); // live until the room says otherwise
    sender.onBatching(300_000); // nobody watches: readings are held for the room's 5 min
    expect(outbox.spillAfterMs).toBe(120_000);
    for (let i = 0; i < 60; i++) take();
    expect(outbox.inMemory).toBe(60); // 60 s held, no ack possible, and not written: before, spilled at 30 s
    for (let i = 0; i < 61; i++) take();
    expect(outbox.inMemory).toBe(0); // the unwatched bound (120 s) reached: one spill
    for (let i = 0; i < 40; i++) take();
    expect(outbox.inMemory).toBe(40);
    sender.onBatching(0); // a dashboard opened: held readings go now, and the 30 s bound is back
    expect(outbox.spillAfterMs).toBe(30_000);
    expect(outbox.inMemory).toBe(0); // the oldest had waited 40 s: past 30 s, written at once
    sender.onBatching(300_000);
    for (let i = 0; i < 40; i++) take();
    expect(outbox.inMemory).toBe(40);
    sender.onClose(); // the link went down while batching: offline, 30 s
    expect(outbox.spillAfterMs).toBe(30_000);
    expect(outbox.inMemory).toBe(0);
    sender.onOpen();
    expect(outbox.spillAfterMs).toBe(30_000); // a new connection starts live, until the room's batching
    outbox.close();
  });

  it("strict ignores batching: every reading is written before it is sent", () => {
    const outbox = new Outbox(":memory:", { log: memoryLogger(), spillMs: 0 });
    const sender = new Sender({ outbox, send: () => true, state: () => state });
    sender.onOpen();
    sender.onBatching(300_000);
    expect(outbox.spillAfterMs).toBe(0);
    sender.onReading(outbox.append({ ts: 1_700_000_000_000, temperature: 70, scale: "F" }));
    expect(outbox.inMemory).toBe(0);
    outbox.close();
  });

  it("resends everything unacked after the ack time-out (a room evicted before its commit), and not before", () => {
    const clock = { now: 1_000_000 };
    const { sender, sent, readingSeqs, live } = setup(0, undefined, clock);
    sender.onOpen();
    for (let i = 0; i < 4; i++) sender.onReading(live());
    sender.onAck(2);
    clock.now += 29_000;
    sender.checkAcks();
    expect(readingSeqs()).toEqual([1, 2, 3, 4]);
    clock.now += 2_000;
    sender.checkAcks();
    // 3 and 4 again, as backlog; acked ones are not.
    expect(readingSeqs()).toEqual([1, 2, 3, 4, 3, 4]);
    sender.onAck(4);
    clock.now += 60_000;
    sender.checkAcks();
    expect(readingSeqs()).toHaveLength(6);
    expect(sent.at(-1)).toMatchObject({ type: "readings" });
    sender.onClose();
  });

  it("drains on stop: sends what it held and asks the room to commit now", () => {
    vi.useFakeTimers();
    const { sender, sent, live } = setup(0);
    sender.onOpen();
    sender.onBatching(60_000);
    sender.onReading(live());
    sender.drain();
    expect(sent.slice(-2)).toEqual([
      { type: "readings", readings: [expect.objectContaining({ seq: 1 })] },
      { type: "flush" },
    ]);
    sender.onClose();
  });
});

describe("commands", () => {
  it("scale and interval change the desired state", () => {
    expect(applyCommand({ scale: "F", intervalMs: 1000 }, { cmd: "scale", scale: "C" })).toEqual({ scale: "C", intervalMs: 1000 });
    expect(applyCommand({ scale: "F", intervalMs: 1000 }, { cmd: "interval", intervalMs: 200 })).toEqual({ scale: "F", intervalMs: 200 });
  });

  it("an unknown or invalid command with an id is answered ok:false with the reason; other junk has no answer", () => {
    const id = "cmd-12345678";
    expect(rejectInvalidCommand(JSON.stringify({ type: "command", id, command: { cmd: "reboot" } }), "x")).toEqual({
      type: "result",
      id,
      ok: false,
      error: 'unknown command "reboot"',
    });
    expect(rejectInvalidCommand(JSON.stringify({ type: "command", id, command: { cmd: "scale", scale: "K" } }), "command.scale: bad")).toEqual({
      type: "result",
      id,
      ok: false,
      error: "invalid command: command.scale: bad",
    });
    expect(rejectInvalidCommand("{not json", "invalid_json")).toBeNull();
    expect(rejectInvalidCommand(JSON.stringify({ type: "command", id: "x", command: {} }), "id")).toBeNull();
    expect(rejectInvalidCommand(JSON.stringify({ type: "party" }), "type")).toBeNull();
  });
});
