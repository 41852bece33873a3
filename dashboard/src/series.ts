/**
 * The chart's data: readings for the last hour, kept sorted and without
 * duplicates however they arrive (history from the REST API, the snapshot,
 * live readings, and backfill that a device sends late after an outage),
 * and turned into uPlot's columns with gaps where the device was silent.
 *
 * Pure logic, unit-tested in Node (test/node/dashboard-series.test.ts).
 */
import { convert, type Reading, type Scale } from "../../party/protocol";

/** The chart shows the last hour. */
export const WINDOW_MS = 60 * 60 * 1000;

/**
 * A silence longer than this many sample intervals is drawn as a gap. Three,
 * not one: a Pi's timer drifts and a reading may be taken a little late, and
 * a gap is a claim that data is missing.
 */
export const GAP_INTERVALS = 3;
/** …and never less than this, so a fast sample rate does not turn jitter into gaps. */
export const MIN_GAP_MS = 2_000;

export function gapThresholdMs(intervalMs: number): number {
  return Math.max(intervalMs * GAP_INTERVALS, MIN_GAP_MS);
}

/** Chart order: by device time, then by seq so equal timestamps stay stable. */
function before(a: Reading, b: Reading): boolean {
  return a.ts < b.ts || (a.ts === b.ts && a.seq < b.seq);
}

/**
 * Readings sorted by time, unique by seq. Appending live readings is the
 * common case and costs O(1) each; a backfilled reading is inserted in place
 * (binary search), so late data lands where it belongs on the time axis.
 */
export class ReadingSeries {
  #items: Reading[] = [];
  #seqs = new Set<number>();
  #maxSeq = 0;

  get length(): number {
    return this.#items.length;
  }

  /** Sorted by time; do not mutate. */
  get items(): readonly Reading[] {
    return this.#items;
  }

  /** Highest seq held (0 when empty): where a catch-up fetch continues from. */
  get maxSeq(): number {
    return this.#maxSeq;
  }

  /** The newest reading the device made: highest seq, which backfill never beats. */
  get latest(): Reading | undefined {
    if (this.#items.length === 0) return undefined;
    // Usually the last item; only a device clock that went backwards makes it differ.
    const last = this.#items[this.#items.length - 1]!;
    if (last.seq === this.#maxSeq) return last;
    return this.#items.find((r) => r.seq === this.#maxSeq);
  }

  /** Add readings in any order; returns how many were new. */
  add(readings: readonly Reading[]): number {
    let added = 0;
    for (const r of readings) {
      if (this.#seqs.has(r.seq)) continue;
      this.#seqs.add(r.seq);
      if (r.seq > this.#maxSeq) this.#maxSeq = r.seq;
      const items = this.#items;
      const last = items[items.length - 1];
      if (!last || before(last, r)) {
        items.push(r);
      } else {
        items.splice(insertionIndex(items, r), 0, r);
      }
      added++;
    }
    return added;
  }

  /** Drop readings older than `cutoffTs`; returns how many were dropped. */
  trimBefore(cutoffTs: number): number {
    const items = this.#items;
    let n = 0;
    while (n < items.length && items[n]!.ts < cutoffTs) n++;
    if (n === 0) return 0;
    for (const r of items.slice(0, n)) this.#seqs.delete(r.seq);
    this.#items = items.slice(n);
    // maxSeq stays: it is where catch-up resumes, and trimming only drops old readings.
    return n;
  }

  clear(): void {
    this.#items = [];
    this.#seqs.clear();
    this.#maxSeq = 0;
  }
}

function insertionIndex(items: readonly Reading[], r: Reading): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (before(items[mid]!, r)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A stretch with no readings: from the last reading before it to the first after it (ms). */
export type Gap = { from: number; to: number };

/** Silences longer than `thresholdMs` between consecutive readings (sorted by time). */
export function findGaps(readings: readonly Reading[], thresholdMs: number): Gap[] {
  const gaps: Gap[] = [];
  for (let i = 1; i < readings.length; i++) {
    const from = readings[i - 1]!.ts;
    const to = readings[i]!.ts;
    if (to - from > thresholdMs) gaps.push({ from, to });
  }
  return gaps;
}

/** uPlot's aligned columns: x in seconds, y in the display scale, null where a gap is drawn. */
export type ChartData = [xs: number[], ys: (number | null)[]];

/**
 * Readings → uPlot columns in one scale (the device may have switched scale
 * within the hour; every point is shown in `scale`). uPlot draws a null y as
 * a break in the line (spanGaps off), so one null point is put in the middle
 * of each gap.
 */
export function toChartData(readings: readonly Reading[], scale: Scale, thresholdMs: number): ChartData {
  const xs: number[] = [];
  const ys: (number | null)[] = [];
  let prev: Reading | undefined;
  for (const r of readings) {
    if (prev && r.ts - prev.ts > thresholdMs) {
      xs.push((prev.ts + r.ts) / 2 / 1000);
      ys.push(null);
    }
    xs.push(r.ts / 1000);
    ys.push(round2(convert(r.temperature, r.scale, scale)));
    prev = r;
  }
  return [xs, ys];
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
