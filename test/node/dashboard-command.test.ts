import { describe, expect, it } from "vitest";
import type { CommandRecord, CommandStatus } from "../../party/protocol";
import { describeCommand, reduceScaleCommand, SEND_TIMEOUT_MS, type ScaleCommandView } from "../../dashboard/src/command";

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
  it("goes sending → pending → applied as the room reports it", () => {
    let v = run({ type: "sent", id: "cmd-00000001", target: "C", at: 1000 });
    expect(v?.phase).toBe("sending");
    v = reduceScaleCommand(v, { type: "record", record: record("cmd-00000001", "queued") });
    expect(v?.phase).toBe("pending");
    v = reduceScaleCommand(v, { type: "record", record: record("cmd-00000001", "delivered") });
    expect(v).toMatchObject({ phase: "pending", status: "delivered" });
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
    expect(v).toMatchObject({ id: "cmd-other-001", target: "F", phase: "pending" });
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
    expect(v).toMatchObject({ id: "cmd-newest-01", phase: "pending", target: "F" });
  });

  it("gives up on a command the room never acknowledged, and a later answer still wins", () => {
    let v = run({ type: "sent", id: "cmd-00000001", target: "C", at: 10_000 });
    v = reduceScaleCommand(v, { type: "tick", now: 10_000 + SEND_TIMEOUT_MS - 1 });
    expect(v?.phase).toBe("sending");
    v = reduceScaleCommand(v, { type: "tick", now: 10_000 + SEND_TIMEOUT_MS });
    expect(v?.phase).toBe("timed-out");
    v = reduceScaleCommand(v, { type: "record", record: record("cmd-00000001", "queued", 10_500) });
    expect(v?.phase).toBe("pending");
  });

  it("describes each phase in words, not only colour", () => {
    expect(describeCommand(null)).toEqual({ text: "", tone: "none" });
    expect(describeCommand(run({ type: "sent", id: "cmd-00000001", target: "F", at: 0 })).text).toBe("Sending: switch to °F…");
    expect(describeCommand(run({ type: "record", record: record("cmd-00000001", "queued") })).text).toMatch(/^Pending: .*queued/);
    expect(describeCommand(run({ type: "record", record: record("cmd-00000001", "applied") })).text).toBe(
      "Applied: the device switched to °C",
    );
    expect(describeCommand(run({ type: "record", record: record("cmd-00000001", "timed-out") })).tone).toBe("bad");
  });
});
