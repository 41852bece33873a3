/**
 * The chart's y axis, worked out here rather than left to uPlot: its default
 * splits over a flat temperature gave "69.0" four times and then "68.9" four
 * times (one-decimal labels on a 0.025 step), and uneven steps (23.3 / 23.0 /
 * 22.8). Here the step is a "nice" number (1, 2, 2.5 or 5 × 10^k), the labels
 * carry exactly the decimals the step needs, and the span never shrinks below
 * MIN_SPAN, so a steady sensor draws a calm line, not magnified noise.
 *
 * Pure: unit-tested in Node (test/node/dashboard-axis.test.ts).
 */

/** The smallest span the y axis shows, in degrees: the TMP102's noise is ~0.1 °, so one degree reads as flat. */
export const MIN_SPAN = 1;

export type YTicks = { min: number; max: number; step: number; decimals: number; ticks: number[]; labels: string[] };

const NICE = [1, 2, 2.5, 5, 10];

/** The nice step that gives at most `maxTicks` intervals over `span`. */
export function niceStep(span: number, maxTicks: number): number {
  const raw = span / Math.max(1, maxTicks);
  const pow = 10 ** Math.floor(Math.log10(raw));
  return NICE.find((n) => n * pow >= raw - 1e-12)! * pow;
}

/** Decimals a step needs to be written exactly: 5 → 0, 0.5 → 1, 0.25 → 2. */
export function decimalsFor(step: number): number {
  for (let d = 0; d < 10; d++) if (Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) < 1e-9) return d;
  return 10;
}

/**
 * Ticks for data from `dataMin` to `dataMax` (null: no data yet). `maxTicks`
 * follows the chart's height (about one label per 40 px).
 */
export function yTicks(dataMin: number | null, dataMax: number | null, maxTicks = 6, minSpan = MIN_SPAN): YTicks {
  let lo = dataMin ?? 0;
  let hi = dataMax ?? lo;
  if (hi - lo < minSpan) {
    // Centre the data in the minimum span.
    const mid = (lo + hi) / 2;
    lo = mid - minSpan / 2;
    hi = mid + minSpan / 2;
  }
  const step = niceStep(hi - lo, maxTicks);
  const decimals = decimalsFor(step);
  const min = Math.floor(lo / step + 1e-9) * step;
  const max = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; min + i * step <= max + step * 1e-6; i++) ticks.push(Number((min + i * step).toFixed(decimals)));
  const labels = ticks.map((t) => formatTick(t, decimals));
  return { min: ticks[0]!, max: ticks[ticks.length - 1]!, step, decimals, ticks, labels };
}

/** A tick label with a real minus sign, as the big number writes negatives. */
export function formatTick(value: number, decimals: number): string {
  const text = Math.abs(value).toFixed(decimals);
  return value < 0 && Number(text) !== 0 ? `\u2212${text}` : text;
}
