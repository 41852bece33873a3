/**
 * Issue 14, point 7: the fleet list's pure parts (dashboard/src/fleet-order.ts, format.ts formatSeen,
 * clock.ts): the page's sort, the sparkline's path and words, one "seen" phrase counted to one clock.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { DeviceSummary } from "../../party/protocol";
import { Clock } from "../../dashboard/src/clock";
import { describeSpark, isFleetSort, sortPage, sparkPath } from "../../dashboard/src/fleet-order";
import { formatSeen } from "../../dashboard/src/format";

const device = (id: string, over: Partial<DeviceSummary> = {}): DeviceSummary => ({
  id,
  online: false,
  lastSeen: null,
  ip: null,
  fw: null,
  scale: "F",
  temperature: null,
  readingTs: null,
  lastSeq: null,
  registeredAt: 0,
  alerts: 0,
  spark: [],
  ...over,
});

describe("sorting the page shown", () => {
  const page = [
    device("a", { lastSeen: 3_000, temperature: 70, scale: "F" }),
    device("b", { lastSeen: null, temperature: null }),
    device("c", { lastSeen: 9_000, temperature: 25, scale: "C", alerts: 2 }),
    device("d", { lastSeen: 1_000, temperature: 50, scale: "F" }),
  ];
  const ids = (rows: DeviceSummary[]) => rows.map((d) => d.id);

  it("keeps the API's id order for 'id'", () => {
    expect(ids(sortPage([...page].reverse(), "id"))).toEqual(["a", "b", "c", "d"]);
  });

  it("sorts by last seen either way, never-seen devices last both ways", () => {
    expect(ids(sortPage(page, "seen-new"))).toEqual(["c", "a", "d", "b"]);
    expect(ids(sortPage(page, "seen-old"))).toEqual(["d", "a", "c", "b"]);
  });

  it("compares °C and °F rows on one scale (25 °C = 77 °F is the hottest), rows without a reading last", () => {
    expect(ids(sortPage(page, "temp-high"))).toEqual(["c", "a", "d", "b"]);
    expect(ids(sortPage(page, "temp-low"))).toEqual(["d", "a", "c", "b"]);
  });

  it("puts alerting devices first, ties in id order", () => {
    expect(ids(sortPage(page, "alerts"))).toEqual(["c", "a", "b", "d"]);
  });

  it("does not change the array it is given", () => {
    const copy = [...page];
    sortPage(page, "temp-high");
    expect(page).toEqual(copy);
  });

  it("knows its sort keys", () => {
    expect(isFleetSort("seen-old")).toBe(true);
    expect(isFleetSort("price")).toBe(false);
  });
});

describe("the sparkline", () => {
  it("draws nothing for fewer than two points", () => {
    expect(sparkPath([], 64, 20)).toBe("");
    expect(sparkPath([70], 64, 20)).toBe("");
  });

  it("spans the box inside a 1 px inset, highest at the top", () => {
    expect(sparkPath([0, 10, 5], 64, 20)).toBe("M1.0 19.0L32.0 1.0L63.0 10.0");
  });

  it("keeps at least one degree of height, so a tenth of noise stays a flat line", () => {
    const d = sparkPath([70, 70.1, 70], 64, 20);
    const ys = d.split(/[ML]/).filter(Boolean).map((p) => Number(p.split(" ")[1]));
    expect(Math.max(...ys) - Math.min(...ys)).toBeLessThan(2);
  });

  it("says its range and trend in words", () => {
    expect(describeSpark([68.2, 69, 70.1], "F")).toBe("last 3 points, 68.2 to 70.1 °F, rising");
    expect(describeSpark([-14.5, -18], "C")).toBe("last 2 points, \u221218.0 to \u221214.5 °C, falling");
    expect(describeSpark([20, 20.3], "C")).toBe("last 2 points, 20.0 to 20.3 °C, steady");
    expect(describeSpark([20], "C")).toBe("no trend yet");
  });
});

describe("seen ages: one phrase, one clock", () => {
  afterEach(() => vi.useRealTimers());

  it("words presence and age the same way wherever it is shown", () => {
    const now = 1_700_000_000_000;
    expect(formatSeen(true, now - 500, now)).toBe("seen just now");
    expect(formatSeen(false, now - 12_400, now)).toBe("last seen 12 s ago");
    expect(formatSeen(false, null, now)).toBe("last seen never");
  });

  it("gives every reader the same now between ticks, and moves it for all at once", () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const clock = new Clock(1000);
    const heard: number[] = [];
    clock.onTick((now) => heard.push(now));
    const stop = clock.onTick((now) => heard.push(now));
    vi.advanceTimersByTime(400);
    expect(clock.now()).toBe(1_000_000);
    vi.advanceTimersByTime(600);
    expect(clock.now()).toBe(1_001_000);
    expect(heard).toEqual([1_001_000, 1_001_000]);
    stop();
    vi.advanceTimersByTime(1000);
    expect(heard).toEqual([1_001_000, 1_001_000, 1_002_000]);
    clock.stop();
  });
});
