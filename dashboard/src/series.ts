/**
 * The chart's data: readings for the last hour, kept sorted and without
 * duplicates however they arrive (history from the REST API, the snapshot,
 * live readings, and backfill that a device sends late after an outage),
 * and turned into uPlot's columns with gaps where the device was silent.
 *
 * Pure logic, unit-tested in Node (test/node/dashboard-series.test.ts).
 */
import { convert, type Reading, type Scale } from "../../party/protocol";

/** The chart shows the last hour until the viewer picks another range. */
export const WINDOW_MS = 60 * 60 * 1000;

/** The range presets, shortest first. */
export const RANGES = [
  { key: "15m", label: "15 min", caption: "Last 15 minutes", ms: 15 * 60_000 },
  { key: "1h", label: "1 h", caption: "Last hour", ms: WINDOW_MS },
  { key: "6h", label: "6 h", caption: "Last 6 hours", ms: 6 * WINDOW_MS },
  { key: "24h", label: "24 h", caption: "Last 24 hours", ms: 24 * WINDOW_MS },
  { key: "7d", label: "7 d", caption: "Last 7 days", ms: 7 * 24 * WINDOW_MS },
] as const;
export type ChartRange = (typeof RANGES)[number];
export const DEFAULT_RANGE: ChartRange = RANGES[1];

/** The narrowest x window: a device's first seconds are spread over a minute, not drawn as one column. */
export const MIN_WINDOW_MS = 60_000;

/**
 * The x window [from, to] in ms: the range ending now, or, while the data covers less than
 * the range (a device that started ten minutes ago on the 1 h view), the data's own span, so
 * its first minutes fill the chart instead of a 1-px sliver at the right edge.
 */
export function chartWindow(firstTs: number | undefined, rangeMs: number, now: number): [number, number] {
  const from = now - rangeMs;
  if (firstTs === undefined || firstTs <= from) return [from, now];
  return [Math.min(firstTs, now - MIN_WINDOW_MS), now];
}

/** Above this many readings a range's history is sampled rather than fetched whole (4 pages of the API). */
export const DENSE_MAX_READINGS = 20_000;
/** How many slices a sampled range is cut into: one request (one reading) each. */
export const SAMPLE_BUCKETS = 150;

/**
 * How to fetch a range's history: whole when it is small enough (an hour at 1 Hz is
 * 3,600 readings), else one reading per slice. 7 days at 1 Hz is 604,800 readings
 * (~36 MB of JSON): the API has no aggregate, so the page asks for the first reading at
 * or after each slice's start, 150 small requests instead of 121 big ones.
 */
export function historyPlan(rangeMs: number, intervalMs: number): { kind: "dense" } | { kind: "sampled"; bucketMs: number } {
  if (rangeMs / Math.max(intervalMs, 1) <= DENSE_MAX_READINGS) return { kind: "dense" };
  return { kind: "sampled", bucketMs: Math.ceil(rangeMs / SAMPLE_BUCKETS) };
}

/** The start of every slice of [from, to), `bucketMs` apart. */
export function bucketStarts(from: number, to: number, bucketMs: number): number[] {
  const out: number[] = [];
  for (let t = from; t < to; t += bucketMs) out.push(Math.floor(t));
  return out;
}

/**
 * Two readings with others between them (seq not consecutive) that the page did not
 * fetch: a sampled stretch. Time between them is not a silence, so no gap is drawn.
 */
export type Apart = (a: Reading, b: Reading) => boolean;
const never: Apart = () => false;

/**
 * In sampled history, pairs of neighbours further apart than a slice (plus the gap
 * threshold) may hide a silence: for each, the reading just before the later one (its
 * seq − 1) tells where that silence began. Returns the later readings to ask about.
 */
export function silenceCandidates(readings: readonly Reading[], bucketMs: number, thresholdMs: number, apart: Apart): Reading[] {
  const out: Reading[] = [];
  for (let i = 1; i < readings.length; i++) {
    const a = readings[i - 1]!;
    const b = readings[i]!;
    if (apart(a, b) && b.ts - a.ts > bucketMs + thresholdMs) out.push(b);
  }
  return out;
}

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
  /** Seqs fetched as samples of a long range: their neighbours on the chart are not their neighbours in seq. */
  #sampled = new Set<number>();
  #maxSeq = 0;

  /** Neighbours on the chart with readings between them that were not fetched (see Apart). */
  readonly apart: Apart = (a, b) => b.seq - a.seq > 1 && (this.#sampled.has(a.seq) || this.#sampled.has(b.seq));

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

  /** Add readings in any order (`sampled`: one per slice of a long range); returns how many were new. */
  add(readings: readonly Reading[], sampled = false): number {
    let added = 0;
    for (const r of readings) {
      if (this.#seqs.has(r.seq)) continue;
      if (sampled) this.#sampled.add(r.seq);
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
    for (const r of items.slice(0, n)) {
      this.#seqs.delete(r.seq);
      this.#sampled.delete(r.seq);
    }
    this.#items = items.slice(n);
    // maxSeq stays: it is where catch-up resumes, and trimming only drops old readings.
    return n;
  }

  clear(): void {
    this.#items = [];
    this.#seqs.clear();
    this.#sampled.clear();
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

/** Silences longer than `thresholdMs` between consecutive readings (sorted by time), except across sampled stretches. */
export function findGaps(readings: readonly Reading[], thresholdMs: number, apart: Apart = never): Gap[] {
  const gaps: Gap[] = [];
  for (let i = 1; i < readings.length; i++) {
    const a = readings[i - 1]!;
    const b = readings[i]!;
    if (b.ts - a.ts > thresholdMs && !apart(a, b)) gaps.push({ from: a.ts, to: b.ts });
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
export function toChartData(readings: readonly Reading[], scale: Scale, thresholdMs: number, apart: Apart = never): ChartData {
  const xs: number[] = [];
  const ys: (number | null)[] = [];
  let prev: Reading | undefined;
  for (const r of readings) {
    if (prev && r.ts - prev.ts > thresholdMs && !apart(prev, r)) {
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
