/**
 * The chart: uPlot (≈ 20 KB gzipped, draws tens of thousands of points on a
 * canvas in a few ms, made for streaming). It is only ever given ready columns
 * from series.ts; this file is sizing, styling, and what uPlot does not do for
 * us: y ticks whose decimals follow their step (axis.ts), times in the
 * browser's locale and zone (format.ts TimeFormat), silences shaded with their
 * duration, a read-out of the value and time under the pointer or finger (or,
 * from the keyboard, point by point), zoom by dragging across it, pan, and
 * alerts raised and cleared marked where they happened (zoom.ts holds the
 * arithmetic).
 *
 * The tick labels it drew are left on the host as data attributes
 * (`data-x-ticks`, `data-y-ticks`, JSON arrays), since a canvas has no text a
 * test or a curious person could read.
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Scale } from "../../party/protocol";
import { yTicks, type YTicks } from "./axis";
import { h, setAttr, setText } from "./dom";
import { formatDuration, formatNumber, unit, type TimeFormat } from "./format";
import type { ChartData, Gap } from "./series";
import { alertMarks, describeMark, panZoom, stepPoint, zoomFromDrag, type AlertMark, type Span } from "./zoom";
import type { AlertRecord } from "../../party/protocol";

/** Redraw at most this often: at 10 Hz a redraw per reading would only cost battery on a phone. */
const MIN_REDRAW_MS = 250;
/** About one y label per this many CSS pixels of height. */
const Y_LABEL_PX = 45;

/** A mark this close (CSS px) to the read-out's point is named in it. */
const MARK_NEAR_PX = 8;

type Pending = { data: ChartData; window: [number, number]; gaps: readonly Gap[] };

export type ChartOptions = {
  /** The focusable element that takes the arrow keys (the chart's box). */
  keys?: HTMLElement;
  /** A live region outside the canvas's box, where keyboard read-outs are said (a hover never is). */
  announce?: HTMLElement;
  /** The zoom changed (a drag, a pan, a reset, or the window sliding past it): null is no zoom. */
  onZoom?(zoom: Span | null): void;
};

export class Chart {
  #plot: uPlot | null = null;
  #scale: Scale | null = null;
  #pending: Pending | null = null;
  #shown: Pending | null = null;
  #lastDraw = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #y: YTicks = yTicks(null, null);
  /** The span zoomed into (ms), or null: the whole window. */
  #zoom: Span | null = null;
  /** The keyboard read-out's point (uPlot's x, in s), or null while the pointer has it. */
  #keyX: number | null = null;
  /** Alerts as the alerts panel has them; marked where they fall in the window shown. */
  #alerts: readonly AlertRecord[] = [];
  #marks: AlertMark[] = [];
  readonly #opts: ChartOptions;
  readonly #resize: ResizeObserver;
  readonly #time: TimeFormat;
  readonly #readout = h("div", { class: "readout", hidden: true });
  /** The OS switched between light and dark: uPlot takes its colours once, so the plot is made again from the theme. */
  readonly #theme = matchMedia("(prefers-color-scheme: dark)");
  readonly #onTheme = () => this.#restyle();

  constructor(
    private readonly host: HTMLElement,
    time: TimeFormat,
    opts: ChartOptions = {},
  ) {
    this.#time = time;
    this.#opts = opts;
    opts.keys?.addEventListener("keydown", (e) => this.#onKey(e));
    // Back to the pointer's read-out once the keyboard lets go.
    opts.keys?.addEventListener("blur", () => (this.#keyX = null));
    this.#resize = new ResizeObserver(() => this.#fit());
    this.#resize.observe(host);
    this.#theme.addEventListener("change", this.#onTheme);
  }

  /** Show `data` in `scale` over x window `window` (ms), shading `gaps`. Coalesced to one redraw per MIN_REDRAW_MS. */
  update(data: ChartData, scale: Scale, window: [number, number], gaps: readonly Gap[] = []): void {
    if (scale !== this.#scale) {
      // The axis label carries the unit: rebuild once when the device switches scale.
      this.#plot?.destroy();
      this.#plot = null;
      this.#scale = scale;
    }
    this.#pending = { data, window, gaps };
    if (this.#timer) return;
    const wait = Math.max(0, this.#lastDraw + MIN_REDRAW_MS - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = null;
      requestAnimationFrame(() => this.#draw());
    }, wait);
  }

  get zoom(): Span | null {
    return this.#zoom;
  }

  /** Zoom into `span` (ms), or back out to the whole window (null). */
  setZoom(span: Span | null): void {
    this.#zoom = span;
    this.#opts.onZoom?.(span);
    this.#pending ??= this.#shown;
    if (this.#plot) this.#draw();
  }

  /** Half a zoom's width earlier (-1) or later (+1), within the window. */
  pan(direction: -1 | 1): void {
    const next = this.#zoom && this.#shown ? panZoom(this.#zoom, direction, this.#shown.window) : null;
    if (next) this.setZoom(next);
  }

  /** The device's alerts (active and history): their raises and clears are marked on the next draw. */
  setAlerts(alerts: readonly AlertRecord[]): void {
    this.#alerts = alerts;
    this.#pending ??= this.#shown;
    if (this.#plot) this.#draw();
  }

  destroy(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#resize.disconnect();
    this.#theme.removeEventListener("change", this.#onTheme);
    this.#plot?.destroy();
    this.#plot = null;
  }

  #draw(): void {
    const pending = this.#pending;
    if (!pending || !this.#scale) return;
    this.#lastDraw = performance.now();
    this.#shown = pending;
    // A zoom the sliding window has left behind entirely shows nothing: back to the whole window.
    if (this.#zoom && this.#zoom[1] <= pending.window[0]) {
      this.#zoom = null;
      this.#opts.onZoom?.(null);
    }
    const [from, to] = this.#zoom ?? pending.window;
    this.#marks = alertMarks(this.#alerts, [from, to]);
    setAttr(this.host, "data-marks", this.#marks.length ? JSON.stringify(this.#marks.map(({ ts, kind, rule }) => ({ ts, kind, rule }))) : null);
    if (!this.#plot) {
      this.#plot = new uPlot(this.#options(this.#scale), pending.data, this.host);
      this.#plot.over.append(this.#readout);
      this.#listenForTouch(this.#plot);
    } else {
      this.#plot.setData(pending.data, false);
    }
    // The window the view chose (the range, or the data's span when it covers less), or the zoom, whatever uPlot would pick.
    this.#plot.setScale("x", { min: from / 1000, max: to / 1000 });
    // uPlot keeps the cursor's pixel, not its point: put the keyboard's point back under it as the data slides.
    const i = this.#keyIndex(this.#plot);
    if (i !== null) this.#plot.setCursor({ left: this.#plot.valToPos(this.#keyX!, "x"), top: this.#plot.valToPos(this.#plot.data[1]![i] ?? 0, "y") });
  }

  #restyle(): void {
    this.#plot?.destroy();
    this.#plot = null;
    if (!this.#shown) return;
    this.#pending = this.#shown;
    this.#draw();
  }

  #size(): { width: number; height: number } {
    const width = Math.max(240, Math.floor(this.host.clientWidth));
    return { width, height: width < 600 ? 220 : 300 };
  }

  #fit(): void {
    this.#plot?.setSize(this.#size());
  }

  /** Fingers do not hover: a touch moves the cursor where it lands (and as it slides). */
  #listenForTouch(plot: uPlot): void {
    const move = (e: PointerEvent) => {
      // The pointer takes the read-out back from the keyboard.
      this.#keyX = null;
      if (e.pointerType === "mouse") return;
      const rect = plot.over.getBoundingClientRect();
      plot.setCursor({ left: e.clientX - rect.left, top: e.clientY - rect.top });
    };
    plot.over.addEventListener("pointerdown", move);
    plot.over.addEventListener("pointermove", move);
  }

  /** A drag across the plot (uPlot's selection, which we never let it apply itself): zoom into it. */
  #onSelect(u: uPlot): void {
    const { left, width } = u.select;
    if (width <= 0 || !this.#shown) return;
    const span = zoomFromDrag(u.posToVal(left, "x") * 1000, u.posToVal(left + width, "x") * 1000, this.#shown.window);
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (span) this.setZoom(span);
  }

  /**
   * The keyboard: ←/→ move the read-out point by point (Home/End: first/last shown), Shift+←/→
   * pan a zoom, Escape lets go. The point is kept by its time, so it stays put while live data
   * slides under it.
   */
  #onKey(e: KeyboardEvent): void {
    const u = this.#plot;
    if (!u) return;
    if (e.key === "Escape") {
      this.#keyX = null;
      u.setCursor({ left: -10, top: -10 });
      return;
    }
    const dir = e.key === "ArrowLeft" || e.key === "Home" ? -1 : e.key === "ArrowRight" || e.key === "End" ? 1 : 0;
    if (!dir) return;
    e.preventDefault();
    if (e.shiftKey) return this.pan(dir);
    const xs = u.data[0];
    const span: Span = [u.scales.x.min ?? -Infinity, u.scales.x.max ?? Infinity];
    const at = e.key === "Home" || e.key === "End" ? null : this.#keyIndex(u);
    // Home is the first point shown, End the last: a step from outside the data.
    const i = stepPoint(xs, u.data[1]!, at, (e.key === "Home" ? 1 : e.key === "End" ? -1 : dir) as -1 | 1, span);
    if (i === null) return;
    this.#keyX = xs[i]!;
    u.setCursor({ left: u.valToPos(xs[i]!, "x"), top: u.valToPos(u.data[1]![i] ?? 0, "y") });
    if (this.#opts.announce) setText(this.#opts.announce, this.#readout.textContent ?? "");
  }

  /** Where the keyboard's point is in the data now (the data is replaced on every draw). */
  #keyIndex(u: uPlot): number | null {
    if (this.#keyX === null) return null;
    const xs = u.data[0];
    let lo = 0;
    let hi = xs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid]! < this.#keyX) lo = mid + 1;
      else if (xs[mid]! > this.#keyX) hi = mid - 1;
      else return mid;
    }
    return null;
  }

  /** The read-out: the reading nearest the pointer (or the keyboard's), its value and its time, and an alert marked there. */
  #showReadout(u: uPlot): void {
    const idx = this.#keyX !== null ? this.#keyIndex(u) : u.cursor.idx;
    const x = idx == null ? undefined : u.data[0][idx];
    const y = idx == null ? undefined : u.data[1]![idx];
    // uPlot picks the nearest point even when it lies outside a zoom: no read-out off the plot.
    const outside = x !== undefined && (x < (u.scales.x.min ?? -Infinity) || x > (u.scales.x.max ?? Infinity));
    if (x === undefined || y === undefined || y === null || !this.#scale || outside) {
      this.#readout.hidden = true;
      return;
    }
    const ts = x * 1000;
    const span = (this.#shown?.window[1] ?? 0) - (this.#shown?.window[0] ?? 0);
    const when = span > 86_400_000 ? this.#time.dateTime(ts) : this.#time.time(ts);
    const left = u.valToPos(x, "x");
    const mark = this.#marks.find((m) => Math.abs(u.valToPos(m.ts / 1000, "x") - left) <= MARK_NEAR_PX);
    setText(this.#readout, `${formatNumber(y)} ${unit(this.#scale)} · ${when}${mark ? ` · ${describeMark(mark)}` : ""}`);
    setAttr(this.#readout, "data-ts", String(Math.round(ts)));
    this.#readout.hidden = false;
    // Beside the point, flipped to its left past the middle so it never leaves the plot.
    const right = left > u.over.clientWidth / 2;
    this.#readout.style.left = right ? "" : `${left + 10}px`;
    this.#readout.style.right = right ? `${u.over.clientWidth - left + 10}px` : "";
  }

  /** Silences, shaded behind the line, each labelled with how long it lasted when there is room. */
  #shadeGaps(u: uPlot, fill: string, ink: string): void {
    const gaps = this.#shown?.gaps ?? [];
    if (gaps.length === 0) return;
    const { ctx, bbox } = u;
    const ratio = devicePixelRatio || 1;
    ctx.save();
    ctx.font = `${12 * ratio}px system-ui, sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const gap of gaps) {
      const x0 = Math.max(bbox.left, u.valToPos(gap.from / 1000, "x", true));
      const x1 = Math.min(bbox.left + bbox.width, u.valToPos(gap.to / 1000, "x", true));
      if (x1 <= x0) continue;
      ctx.fillStyle = fill;
      ctx.fillRect(x0, bbox.top, x1 - x0, bbox.height);
      const label = formatDuration(gap.to - gap.from);
      if (ctx.measureText(label).width + 8 * ratio <= x1 - x0) {
        ctx.fillStyle = ink;
        ctx.fillText(label, (x0 + x1) / 2, bbox.top + 4 * ratio);
      }
    }
    ctx.restore();
  }

  /** Alerts raised (solid) and cleared (dashed): a line across the plot where each happened, named at its top. */
  #drawMarks(u: uPlot, color: string): void {
    if (this.#marks.length === 0) return;
    const { ctx, bbox } = u;
    const ratio = devicePixelRatio || 1;
    ctx.save();
    ctx.font = `${11 * ratio}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    ctx.strokeStyle = ctx.fillStyle = color;
    ctx.lineWidth = 2 * ratio;
    // Labels go in rows: one that would overlap the label before it in a row drops to the next row.
    const rowEnds: number[] = [];
    for (const mark of this.#marks) {
      const x = Math.round(u.valToPos(mark.ts / 1000, "x", true));
      if (x < bbox.left || x > bbox.left + bbox.width) continue;
      ctx.setLineDash(mark.kind === "cleared" ? [4 * ratio, 3 * ratio] : []);
      ctx.beginPath();
      ctx.moveTo(x, bbox.top);
      ctx.lineTo(x, bbox.top + bbox.height);
      ctx.stroke();
      const label = `${mark.rule} ${mark.kind}`;
      // Right of the line, or left of it near the right edge.
      const w = ctx.measureText(label).width;
      const right = x + 4 * ratio + w <= bbox.left + bbox.width;
      const x0 = right ? x + 4 * ratio : x - 4 * ratio - w;
      let row = rowEnds.findIndex((end) => end < x0);
      if (row < 0) row = rowEnds.length;
      rowEnds[row] = x0 + w + 6 * ratio;
      ctx.textAlign = "left";
      ctx.fillText(label, x0, bbox.top + (18 + row * 14) * ratio);
    }
    ctx.restore();
  }

  #options(scale: Scale): uPlot.Options {
    const css = getComputedStyle(this.host);
    const ink = css.getPropertyValue("--ink").trim() || "#1b1f24";
    const muted = css.getPropertyValue("--muted").trim() || "#4a5360";
    const line = css.getPropertyValue("--accent").trim() || "#0b5cad";
    const grid = css.getPropertyValue("--grid").trim() || "#d8dee4";
    const gapFill = css.getPropertyValue("--gap").trim() || "#eceff3";
    const alert = css.getPropertyValue("--bad").trim() || "#b42318";
    const axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    // The colours drawn, where a test can read them (the canvas cannot be asked).
    setAttr(this.host, "data-colors", JSON.stringify({ line, ink, grid, gap: gapFill, alert }));
    return {
      ...this.#size(),
      scales: {
        x: { time: true },
        y: {
          range: (u, dataMin, dataMax) => {
            const rows = Math.max(2, Math.floor(u.height / Y_LABEL_PX));
            this.#y = yTicks(dataMin ?? null, dataMax ?? null, rows);
            return [this.#y.min, this.#y.max];
          },
        },
      },
      // The read-out (below) replaces the legend: one line beside the pointer, not a table under the chart.
      legend: { show: false },
      // A drag selects a span; #onSelect zooms to it (uPlot's own setScale would fight the window we set).
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 8 } },
      series: [
        {},
        {
          label: `Temperature (${unit(scale)})`,
          stroke: line,
          width: 2,
          // null means "no reading here": draw a gap, never a line across it.
          spanGaps: false,
          points: { show: false },
        },
      ],
      axes: [
        {
          ...axis,
          // Time labels ("10:45 AM", "Tue 10:45") are up to ~70 px wide: keep ticks apart so a phone's axis stays readable.
          space: 90,
          values: (u, splits, _axis, _space, incr) => {
            const span = ((u.scales.x.max ?? 0) - (u.scales.x.min ?? 0)) * 1000;
            const labels = splits.map((s) => this.#time.tick(s * 1000, span, incr * 1000));
            setAttr(this.host, "data-x-ticks", JSON.stringify(labels));
            return labels;
          },
        },
        {
          ...axis,
          label: unit(scale),
          size: 56,
          splits: () => this.#y.ticks,
          values: () => {
            setAttr(this.host, "data-y-ticks", JSON.stringify(this.#y.labels));
            return this.#y.labels;
          },
        },
      ],
      hooks: {
        drawClear: [(u) => this.#shadeGaps(u, gapFill, muted)],
        draw: [(u) => this.#drawMarks(u, alert)],
        setCursor: [(u) => this.#showReadout(u)],
        setSelect: [(u) => this.#onSelect(u)],
      },
    };
  }
}
