import { describe, expect, it } from "vitest";
import type { CommandRecord, CommandStatus } from "../../party/protocol";
import { commandTrace, describeCommand, describeStep, reduceScaleCommand, SEND_TIMEOUT_MS, type ScaleCommandView } from "../../dashboard/src/command";

const record = (id: string, status: CommandStatus, createdAt = 1000, scale: "F" | "C" = "C", error?: string): CommandRecord => ({
  id,
  command: { cmd: "scale", scale },
  status,
  ...(error ? { error } : {}),
  createdAt,
  updatedAt: createdAt + 1,
});

/** Fold a list of events from null. */
function run(...events: Parameters<typeof reduceScaleCommand>[1][]): ScaleCommandView | null {
  return events.reduce<ScaleCommandView | null>((v, e) => reduceScaleCommand(v, e), null);
}

describe("scale command state machine", () => {
  it("goes sending → queued → delivered → applied as the room reports it", () => {
    let v = run({ type: "sent", id: "cmd-00000001", target: "C", at: 1000 });
    expect(v?.phase).toBe("sending");
    v = reduceScaleCommand(v, { type: "record", record: record("cmd-00000001", "queued") });
    expect(v?.phase).toBe("queued");
    v = reduceScaleCommand(v, { type: "record", record: record("cmd-00000001", "delivered") });
    expect(v).toMatchObject({ phase: "delivered", status: "delivered" });
    v = reduceScaleCommand(v, { type: "record", record: record("cmd-00000001", "applied") });
    expect(v).toMatchObject({ phase: "applied", target: "C" });
  });

  it("never moves backwards when frames arrive out of order", () => {
    const v = run(
      { type: "record", record: record("cmd-00000001", "applied") },
      { type: "record", record: record("cmd-00000001", "delivered") },
    );
    expect(v?.phase).toBe("applied");
  });

  it("lets a late applied replace timed-out, as the room does", () => {
    const v = run(
      { type: "record", record: record("cmd-00000001", "timed-out", 1000, "C", "no answer") },
      { type: "record", record: record("cmd-00000001", "applied") },
    );
    expect(v?.phase).toBe("applied");
  });

  it("shows failures with the device's reason", () => {
    const v = run({ type: "record", record: record("cmd-00000001", "failed", 1000, "C", "sensor busy") });
    expect(v?.phase).toBe("failed");
    expect(describeCommand(v)).toEqual({ text: "Failed: switch to °C (sensor busy)", tone: "bad" });
  });

  it("follows a newer command from another dashboard and ignores an older one", () => {
    let v = run({ type: "record", record: record("cmd-mine-0001", "applied", 1000, "C") });
    v = reduceScaleCommand(v, { type: "record", record: record("cmd-other-001", "delivered", 2000, "F") });
    expect(v).toMatchObject({ id: "cmd-other-001", target: "F", phase: "delivered" });
    v = reduceScaleCommand(v, { type: "record", record: record("cmd-old-0001", "applied", 500, "C") });
    expect(v?.id).toBe("cmd-other-001");
  });

  it("ignores commands that are not about the scale", () => {
    const interval: CommandRecord = { ...record("cmd-00000002", "applied"), command: { cmd: "interval", intervalMs: 2000 } };
    expect(run({ type: "record", record: interval })).toBeNull();
  });

  it("takes the newest scale command from a snapshot", () => {
    const v = run({
      type: "snapshot",
      commands: [record("cmd-newest-01", "delivered", 3000, "F"), record("cmd-older-001", "applied", 2000, "C")],
    });
    expect(v).toMatchObject({ id: "cmd-newest-01", phase: "delivered", target: "F" });
  });

  it("gives up on a command the room never acknowledged, and a later answer still wins", () => {
    let v = run({ type: "sent", id: "cmd-00000001", target: "C", at: 10_000 });
    v = reduceScaleCommand(v, { type: "tick", now: 10_000 + SEND_TIMEOUT_MS - 1 });
    expect(v?.phase).toBe("sending");
    v = reduceScaleCommand(v, { type: "tick", now: 10_000 + SEND_TIMEOUT_MS });
    expect(v?.phase).toBe("timed-out");
    v = reduceScaleCommand(v, { type: "record", record: record("cmd-00000001", "queued", 10_500) });
    expect(v?.phase).toBe("queued");
  });

  it("describes each phase in words, not only colour", () => {
    expect(describeCommand(null)).toEqual({ text: "", tone: "none" });
    expect(describeCommand(run({ type: "sent", id: "cmd-00000001", target: "F", at: 0 })).text).toBe("Sending: switch to °F…");
    expect(describeCommand(run({ type: "record", record: record("cmd-00000001", "queued") }))).toEqual({
      text: "Queued: switch to °C waits in the room until the device is back online",
      tone: "busy",
    });
    expect(describeCommand(run({ type: "record", record: record("cmd-00000001", "delivered") })).text).toMatch(/^Delivered: /);
    expect(describeCommand(run({ type: "record", record: record("cmd-00000001", "applied") })).text).toBe(
      "Applied: the device switched to °C",
    );
    expect(describeCommand(run({ type: "record", record: record("cmd-00000001", "timed-out") })).tone).toBe("bad");
  });

  it("says how long the device had to answer in seconds, not milliseconds (issue 14)", () => {
    const timedOut: CommandRecord = { ...record("cmd-00000001", "timed-out", 1000, "C", "no answer from the device within 10000 ms"), deliveredAt: 1000, updatedAt: 11_000 };
    expect(describeCommand(run({ type: "record", record: timedOut }), { reported: "F" })).toEqual({
      text: "Timed out: the device did not confirm switch to °C within 10 s",
      tone: "bad",
    });
  });

  it("clears a stale time-out or failure once the device reports the target: converged (issue 14)", () => {
    const timedOut = run({ type: "record", record: { ...record("cmd-00000001", "timed-out"), deliveredAt: 1000 } });
    expect(describeCommand(timedOut, { reported: "C" })).toEqual({ text: "In effect: the device reports °C", tone: "ok" });
    const failed = run({ type: "record", record: record("cmd-00000001", "failed", 1000, "C", "busy") });
    expect(describeCommand(failed, { reported: "C" }).tone).toBe("ok");
    // A reload finds the same record in its snapshot and the same reported state: still not red.
    const reloaded = run({ type: "snapshot", commands: [{ ...record("cmd-00000001", "timed-out"), deliveredAt: 1000 }] });
    expect(describeCommand(reloaded, { reported: "C" }).tone).toBe("ok");
    expect(describeCommand(reloaded, { reported: "F" }).tone).toBe("bad");
  });

  it("traces clicked → queued → delivered → applied with the time each step took (issue 14)", () => {
    let v = run({ type: "sent", id: "cmd-00000001", target: "C", at: 1_000 });
    v = reduceScaleCommand(v, { type: "record", record: { ...record("cmd-00000001", "queued", 1_040), updatedAt: 1_040 } });
    v = reduceScaleCommand(v, { type: "record", record: { ...record("cmd-00000001", "delivered", 1_040), deliveredAt: 61_040, updatedAt: 61_040 } });
    v = reduceScaleCommand(v, { type: "record", record: { ...record("cmd-00000001", "applied", 1_040), deliveredAt: 61_040, updatedAt: 61_300 } });
    const trace = commandTrace(v);
    expect(trace.map((s) => s.step)).toEqual(["clicked", "queued", "delivered", "applied"]);
    expect(trace.map(describeStep)).toEqual(["Clicked", "Queued +40 ms", "Delivered +1 min", "Applied +260 ms"]);
    // Another page's command: the click is not known there, the room's steps are.
    const other = run({ type: "record", record: { ...record("cmd-00000002", "applied", 5_000), deliveredAt: 5_010, updatedAt: 5_500 } });
    expect(commandTrace(other).map(describeStep)).toEqual(["Queued", "Delivered +10 ms", "Applied +490 ms"]);
  });

  it("puts the agent's apply time between delivery and the room's confirmation: the way out and the way back (issue 14)", () => {
    let v = run({ type: "sent", id: "cmd-00000003", target: "C", at: 10_000 });
    v = reduceScaleCommand(v, { type: "record", record: { ...record("cmd-00000003", "delivered", 10_012), deliveredAt: 10_015, updatedAt: 10_015 } });
    // Delivered: the device's step is not in the trace before the command is applied.
    expect(commandTrace(v).map((s) => s.step)).toEqual(["clicked", "queued", "delivered"]);
    v = reduceScaleCommand(v, { type: "record", record: { ...record("cmd-00000003", "applied", 10_012), deliveredAt: 10_015, appliedAt: 10_035, updatedAt: 10_050 } });
    const trace = commandTrace(v);
    expect(trace.map((s) => s.step)).toEqual(["clicked", "queued", "delivered", "device-applied", "applied"]);
    expect(trace.map(describeStep)).toEqual(["Clicked", "Queued +12 ms", "Delivered +3 ms", "Applied on the device +20 ms", "Confirmed +15 ms"]);
    // The agent's reckoning of the endpoint's clock is good to its registration's round trip: a device time
    // a little before delivery (or after the room's answer) is a step of 0, never a negative one.
    const skewed = run({ type: "record", record: { ...record("cmd-00000004", "applied", 20_000), deliveredAt: 20_010, appliedAt: 20_004, updatedAt: 20_030 } });
    expect(commandTrace(skewed).map((s) => s.tookMs)).toEqual([null, 10, 0, 26]);
  });
});
