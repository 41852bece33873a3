/**
 * The chart in words (its text alternative): a summary a screen reader reads as the
 * chart's description, and the rows of the table a person can open instead of the
 * canvas. Pure; unit-tested in Node (test/node/dashboard-chart-summary.test.ts).
 */
import { convert, type Reading, type Scale } from "../../party/protocol";
import { formatCount, formatDuration, formatNumber, unit, type TimeFormat } from "./format";
import type { Gap } from "./series";

export type ChartFacts = {
  /** "Last hour". */
  caption: string;
  readings: readonly Reading[];
  scale: Scale;
  gaps: readonly Gap[];
  time: Pick<TimeFormat, "zone" | "time" | "dateTime">;
  /** Times across days are given with their date. */
  rangeMs: number;
};

/**
 * "Last hour, times in IST: 3,412 readings from 14:05:01 to 15:05:00. Lowest 68.2 °F at …,
 * highest 70.1 °F at …, latest 69.4 °F at …. 2 gaps, the longest 5 min (from 14:40:00)."
 */
export function summarizeChart(f: ChartFacts): string {
  const head = `${f.caption}, times in ${f.time.zone}`;
  if (f.readings.length === 0) return `${head}: no readings.`;
  const when = (ts: number) => (f.rangeMs > 86_400_000 ? f.time.dateTime(ts) : f.time.time(ts));
  const u = unit(f.scale);
  let lo = f.readings[0]!;
  let hi = lo;
  const v = (r: Reading) => convert(r.temperature, r.scale, f.scale);
  for (const r of f.readings) {
    if (v(r) < v(lo)) lo = r;
    if (v(r) > v(hi)) hi = r;
  }
  const first = f.readings[0]!;
  const latest = f.readings[f.readings.length - 1]!;
  const n = f.readings.length;
  const parts = [
    `${head}: ${formatCount(n)} ${n === 1 ? "reading" : "readings"} from ${when(first.ts)} to ${when(latest.ts)}.`,
    `Lowest ${formatNumber(v(lo))} ${u} at ${when(lo.ts)}, highest ${formatNumber(v(hi))} ${u} at ${when(hi.ts)}, latest ${formatNumber(v(latest))} ${u} at ${when(latest.ts)}.`,
  ];
  if (f.gaps.length === 0) parts.push("No gaps.");
  else {
    const longest = f.gaps.reduce((a, b) => (b.to - b.from > a.to - a.from ? b : a));
    parts.push(
      `${f.gaps.length} ${f.gaps.length === 1 ? "gap" : "gaps"}, the longest ${formatDuration(longest.to - longest.from)} (from ${when(longest.from)}).`,
    );
  }
  return parts.join(" ");
}

export type TableRow = { from: number; to: number; count: number; min: number | null; max: number | null; mean: number | null };

/** The window [from, to] cut into `rows` equal slices, each with its readings' count, min, max and mean (in `scale`). */
export function chartTable(readings: readonly Reading[], scale: Scale, window: [number, number], rows = 12): TableRow[] {
  const [from, to] = window;
  const width = Math.max(1, (to - from) / rows);
  const out: TableRow[] = Array.from({ length: rows }, (_, i) => ({
    from: from + i * width,
    to: from + (i + 1) * width,
    count: 0,
    min: null,
    max: null,
    mean: null,
  }));
  const sums = new Array<number>(rows).fill(0);
  for (const r of readings) {
    if (r.ts < from || r.ts > to) continue;
    const i = Math.min(rows - 1, Math.floor((r.ts - from) / width));
    const row = out[i]!;
    const value = convert(r.temperature, r.scale, scale);
    row.count++;
    sums[i]! += value;
    row.min = row.min === null ? value : Math.min(row.min, value);
    row.max = row.max === null ? value : Math.max(row.max, value);
  }
  out.forEach((row, i) => (row.mean = row.count ? sums[i]! / row.count : null));
  return out;
}
