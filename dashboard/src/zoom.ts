/**
 * The chart's zoom, pan, keyboard read-out and alert marks, as pure functions (chart.ts draws;
 * device-view.ts owns the state). Unit-tested in Node (test/node/dashboard-zoom.test.ts).
 *
 * A zoom is an absolute span of time [from, to] in ms, not an offset from now: a live chart
 * keeps sliding under it, and what the operator picked stays where it is, as Grafana does.
 */
import type { AlertRecord } from "../../party/protocol";
import { RANGES, type ChartRange } from "./series";

export type Span = [number, number];

/** The narrowest zoom: a few readings at 1 Hz, so a slip of the mouse never zooms into one pixel of nothing. */
export const MIN_ZOOM_MS = 5_000;

/**
 * A drag from `a` to `b` (ms, either order) inside the window shown: the span to zoom to, or null
 * for a drag too small to mean anything (a click). Kept inside `window` and at least MIN_ZOOM_MS wide.
 */
export function zoomFromDrag(a: number, b: number, window: Span): Span | null {
  let from = Math.max(window[0], Math.min(a, b));
  let to = Math.min(window[1], Math.max(a, b));
  if (to - from < MIN_ZOOM_MS / 5) return null;
  if (to - from < MIN_ZOOM_MS) {
    const mid = (from + to) / 2;
    from = Math.max(window[0], mid - MIN_ZOOM_MS / 2);
    to = Math.min(window[1], from + MIN_ZOOM_MS);
  }
  return [Math.round(from), Math.round(to)];
}

/**
 * Move a zoom by half its width, earlier (-1) or later (+1), stopping at the window's edges
 * (its width stays the same). Null when it cannot move (already at that edge).
 */
export function panZoom(zoom: Span, direction: -1 | 1, window: Span): Span | null {
  const width = zoom[1] - zoom[0];
  const shift = (direction * width) / 2;
  const from = Math.min(Math.max(zoom[0] + shift, window[0]), Math.max(window[0], window[1] - width));
  if (Math.round(from) === zoom[0]) return null;
  return [Math.round(from), Math.round(from + width)];
}

/**
 * The keyboard read-out's next point: from index `at` (null: none yet, start from the newest,
 * or the oldest going right), one step in `direction` to a point that has a value and lies in
 * `[from, to]` (s, as uPlot holds them); `at` itself when there is none further.
 */
export function stepPoint(xs: ArrayLike<number>, ys: ArrayLike<number | null | undefined>, at: number | null, direction: -1 | 1, span: Span): number | null {
  const inside = (i: number) => ys[i] != null && xs[i]! >= span[0] && xs[i]! <= span[1];
  let i = at === null ? (direction < 0 ? xs.length : -1) : at;
  for (i += direction; i >= 0 && i < xs.length; i += direction) if (inside(i)) return i;
  return at !== null && inside(at) ? at : null;
}

/** One alert event on the chart: a raise or a clear, at its time, named by its rule. */
export type AlertMark = { ts: number; kind: "raised" | "cleared"; rule: string; message: string };

/** Raises and clears inside `window`, oldest first (an alert raised before the window may still clear inside it). */
export function alertMarks(alerts: readonly AlertRecord[], window: Span): AlertMark[] {
  const marks: AlertMark[] = [];
  const seen = new Set<number>();
  for (const a of alerts) {
    // The panel's lists may briefly hold the same alert twice (active, then history): one mark.
    if (seen.has(a.id)) continue;
    seen.add(a.id);
    if (a.raisedAt >= window[0] && a.raisedAt <= window[1]) marks.push({ ts: a.raisedAt, kind: "raised", rule: a.rule, message: a.message });
    if (a.clearedAt !== null && a.clearedAt >= window[0] && a.clearedAt <= window[1]) marks.push({ ts: a.clearedAt, kind: "cleared", rule: a.rule, message: a.message });
  }
  return marks.sort((x, y) => x.ts - y.ts);
}

/** "Alert too-warm raised" / "Alert too-warm cleared": in the read-out, the list and the canvas label. */
export function describeMark(mark: AlertMark): string {
  return `Alert ${mark.rule} ${mark.kind}`;
}

/** Where the chosen range is remembered, per browser (not per device: people pick a habit, not a device's). */
export const RANGE_KEY = "iot.chart.range";

/** The remembered range, or the default for anything unknown (a key from an older build, tampering, nothing). */
export function rangeFromKey(key: string | null | undefined, fallback: ChartRange): ChartRange {
  return RANGES.find((r) => r.key === key) ?? fallback;
}
