import { describe, expect, it } from "vitest";
import type { Reading } from "../../party/protocol";
import { bucketStarts, chartWindow, findGaps, gapThresholdMs, historyPlan, MIN_WINDOW_MS, ReadingSeries, silenceCandidates, toChartData } from "../../dashboard/src/series";

const T0 = 1_739_129_986_000;
/** Reading `seq` taken at T0 + `second` s. */
const r = (seq: number, second = seq, temperature = 70 + seq / 10, scale: "F" | "C" = "F"): Reading => ({
  seq,
  ts: T0 + second * 1000,
  temperature,
  scale,
});
const seqs = (s: ReadingSeries) => s.items.map((x) => x.seq);

describe("ReadingSeries: merging history, snapshot, live and backfill", () => {
  it("keeps readings in time order and drops duplicates whatever the order they arrive in", () => {
    const s = new ReadingSeries();
    expect(s.add([r(5), r(6), r(7)])).toBe(3); // snapshot
    expect(s.add([r(1), r(2), r(3), r(4), r(5)])).toBe(4); // history overlapping it
    expect(s.add([r(8)])).toBe(1); // live
    expect(s.add([r(7), r(8)])).toBe(0); // the same again (a reconnect's snapshot)
    expect(seqs(s)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(s.maxSeq).toBe(8);
  });

  it("inserts backfilled readings where they belong on the time axis, not at the end", () => {
    const s = new ReadingSeries();
    s.add([r(1), r(2), r(10), r(11)]); // the device was offline for seq 3..9, then came back live
    s.add([r(3), r(4), r(5)]); // its outbox backlog arrives after the live ones
    s.add([r(9), r(6), r(8), r(7)]); // out of order within a batch, too
    expect(seqs(s)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(s.latest?.seq).toBe(11);
  });

  it("names the highest seq as latest even when a device clock went backwards", () => {
    const s = new ReadingSeries();
    s.add([r(1, 100), r(2, 101), r(3, 50)]); // seq 3 stamped earlier than seq 1
    expect(seqs(s)).toEqual([3, 1, 2]);
    expect(s.latest?.seq).toBe(3);
  });

  it("trims readings older than the window but remembers where to resume", () => {
    const s = new ReadingSeries();
    s.add([r(1), r(2), r(3), r(4)]);
    expect(s.trimBefore(T0 + 3000)).toBe(2);
    expect(seqs(s)).toEqual([3, 4]);
    expect(s.maxSeq).toBe(4);
  });
});

describe("gap detection", () => {
  it("uses three sample intervals, and at least two seconds", () => {
    expect(gapThresholdMs(1000)).toBe(3000);
    expect(gapThresholdMs(100)).toBe(2000);
    expect(gapThresholdMs(60_000)).toBe(180_000);
  });

  it("finds silences longer than the threshold and nothing else", () => {
    const readings = [r(1, 0), r(2, 1), r(3, 2), r(4, 10), r(5, 11), r(6, 14.5)];
    expect(findGaps(readings, 3000)).toEqual([
      { from: T0 + 2000, to: T0 + 10_000 },
      { from: T0 + 11_000, to: T0 + 14_500 },
    ]);
    expect(findGaps(readings, 10_000)).toEqual([]);
  });

  it("puts one null in the middle of each gap so uPlot breaks the line there", () => {
    const [xs, ys] = toChartData([r(1, 0, 70), r(2, 1, 71), r(3, 20, 72)], "F", 3000);
    expect(xs).toEqual([T0 / 1000, T0 / 1000 + 1, T0 / 1000 + 10.5, T0 / 1000 + 20]);
    expect(ys).toEqual([70, 71, null, 72]);
  });

  it("draws every point in the chart's scale, whatever scale it was taken in", () => {
    const [, ys] = toChartData([r(1, 0, 212, "F"), r(2, 1, 100, "C"), r(3, 2, 25, "C")], "C", 3000);
    expect(ys).toEqual([100, 100, 25]);
    const [, fs] = toChartData([r(1, 0, 25, "C")], "F", 3000);
    expect(fs).toEqual([77]);
  });

  it("gives empty columns for no readings", () => {
    expect(toChartData([], "F", 3000)).toEqual([[], []]);
  });
});

describe("chart ranges (issue 14)", () => {
  const HOUR = 3_600_000;

  it("fits the window to the data while it covers less than the range, so the first minutes are not a sliver", () => {
    const now = T0 + 10 * 60_000;
    expect(chartWindow(T0, HOUR, now)).toEqual([T0, now]);
    // A device seconds old still gets a minute's width.
    expect(chartWindow(now - 5_000, HOUR, now)).toEqual([now - MIN_WINDOW_MS, now]);
    // Data older than the range: the range itself.
    expect(chartWindow(now - 2 * HOUR, HOUR, now)).toEqual([now - HOUR, now]);
    expect(chartWindow(undefined, HOUR, now)).toEqual([now - HOUR, now]);
  });

  it("fetches short ranges whole and samples long ones, one request per slice", () => {
    expect(historyPlan(HOUR, 1000)).toEqual({ kind: "dense" });
    expect(historyPlan(7 * 24 * HOUR, 1000)).toEqual({ kind: "sampled", bucketMs: Math.ceil((7 * 24 * HOUR) / 150) });
    expect(bucketStarts(0, 1000, 300)).toEqual([0, 300, 600, 900]);
  });

  it("draws no gap between samples that have readings between them, but does across a real silence", () => {
    const s = new ReadingSeries();
    // One reading per 60 s slice (seqs 1, 61, 121: the readings between were not fetched)…
    s.add([r(1, 0), r(61, 60), r(121, 120)], true);
    expect(findGaps(s.items, 3_000, s.apart)).toEqual([]);
    // …then a slice that came back with a reading 10 min later: a candidate for a silence.
    s.add([r(181, 720)], true);
    const candidates = silenceCandidates(s.items, 60_000, 3_000, s.apart);
    expect(candidates.map((x) => x.seq)).toEqual([181]);
    // Its seq − 1 is where the silence began (at 121 s + 59 s): neighbours in seq, far apart in time.
    s.add([r(180, 179)]);
    expect(findGaps(s.items, 3_000, s.apart)).toEqual([{ from: T0 + 179_000, to: T0 + 720_000 }]);
    const [, ys] = toChartData(s.items, "F", 3_000, s.apart);
    expect(ys.filter((y) => y === null)).toHaveLength(1);
  });
});
