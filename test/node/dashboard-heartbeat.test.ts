import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Heartbeat } from "../../dashboard/src/heartbeat";

describe("dashboard heartbeat", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  const make = () => {
    const calls = { pings: 0, dead: 0 };
    const hb = new Heartbeat({ everyMs: 1_000, silenceMs: 2_500, ping: () => void calls.pings++, dead: () => void calls.dead++ });
    return { hb, calls };
  };

  it("pings every interval while the socket answers", () => {
    const { hb, calls } = make();
    hb.start();
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(1_000);
      hb.heard(); // the pong
    }
    expect(calls).toEqual({ pings: 10, dead: 0 });
    hb.stop();
  });

  it("declares the socket dead once after the silence, and stops pinging", () => {
    const { hb, calls } = make();
    hb.start();
    vi.advanceTimersByTime(2_000);
    expect(calls).toEqual({ pings: 2, dead: 0 });
    vi.advanceTimersByTime(1_000); // 3 s of nothing > 2.5 s
    expect(calls).toEqual({ pings: 2, dead: 1 });
    vi.advanceTimersByTime(10_000);
    expect(calls).toEqual({ pings: 2, dead: 1 });
  });

  it("counts any frame as life, and starts afresh on a new socket", () => {
    const { hb, calls } = make();
    hb.start();
    vi.advanceTimersByTime(2_000);
    hb.heard(); // a reading, not a pong
    vi.advanceTimersByTime(2_000);
    expect(calls.dead).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(calls.dead).toBe(1);
    hb.start(); // reconnected
    vi.advanceTimersByTime(2_000);
    expect(calls).toEqual({ pings: 6, dead: 1 });
    hb.stop();
    vi.advanceTimersByTime(10_000);
    expect(calls).toEqual({ pings: 6, dead: 1 });
  });
});
