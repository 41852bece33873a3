/**
 * The chart: uPlot (≈ 20 KB gzipped, draws tens of thousands of points on a
 * canvas in a few ms, made for streaming). It is only ever given ready columns
 * from series.ts; this file is sizing, styling, and what uPlot does not do for
 * us: y ticks whose decimals follow their step (axis.ts), times in the
 * browser's locale and zone (format.ts TimeFormat), silences shaded with their
 * duration, and a read-out of the value and time under the pointer or finger.
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

/** Redraw at most this often: at 10 Hz a redraw per reading would only cost battery on a phone. */
const MIN_REDRAW_MS = 250;
/** About one y label per this many CSS pixels of height. */
const Y_LABEL_PX = 45;

type Pending = { data: ChartData; window: [number, number]; gaps: readonly Gap[] };

export class Chart {
  #plot: uPlot | null = null;
  #scale: Scale | null = null;
  #pending: Pending | null = null;
  #shown: Pending | null = null;
  #lastDraw = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #y: YTicks = yTicks(null, null);
  readonly #resize: ResizeObserver;
  readonly #time: TimeFormat;
  readonly #readout = h("div", { class: "readout", hidden: true });
  /** The OS switched between light and dark: uPlot takes its colours once, so the plot is made again from the theme. */
  readonly #theme = matchMedia("(prefers-color-scheme: dark)");
  readonly #onTheme = () => this.#restyle();

  constructor(
    private readonly host: HTMLElement,
    time: TimeFormat,
  ) {
    this.#time = time;
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
    const [from, to] = pending.window;
    if (!this.#plot) {
      this.#plot = new uPlot(this.#options(this.#scale), pending.data, this.host);
      this.#plot.over.append(this.#readout);
      this.#listenForTouch(this.#plot);
    } else {
      this.#plot.setData(pending.data, false);
    }
    // The window the view chose (the range, or the data's span when it covers less), whatever uPlot would pick.
    this.#plot.setScale("x", { min: from / 1000, max: to / 1000 });
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
      if (e.pointerType === "mouse") return;
      const rect = plot.over.getBoundingClientRect();
      plot.setCursor({ left: e.clientX - rect.left, top: e.clientY - rect.top });
    };
    plot.over.addEventListener("pointerdown", move);
    plot.over.addEventListener("pointermove", move);
  }

  /** The read-out: the reading nearest the pointer, its value and its time. */
  #showReadout(u: uPlot): void {
    const idx = u.cursor.idx;
    const x = idx == null ? undefined : u.data[0][idx];
    const y = idx == null ? undefined : u.data[1]![idx];
    if (x === undefined || y === undefined || y === null || !this.#scale) {
      this.#readout.hidden = true;
      return;
    }
    const ts = x * 1000;
    const span = (this.#shown?.window[1] ?? 0) - (this.#shown?.window[0] ?? 0);
    const when = span > 86_400_000 ? this.#time.dateTime(ts) : this.#time.time(ts);
    setText(this.#readout, `${formatNumber(y)} ${unit(this.#scale)} · ${when}`);
    setAttr(this.#readout, "data-ts", String(Math.round(ts)));
    this.#readout.hidden = false;
    // Beside the point, flipped to its left past the middle so it never leaves the plot.
    const left = u.valToPos(x, "x");
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

  #options(scale: Scale): uPlot.Options {
    const css = getComputedStyle(this.host);
    const ink = css.getPropertyValue("--ink").trim() || "#1b1f24";
    const muted = css.getPropertyValue("--muted").trim() || "#4a5360";
    const line = css.getPropertyValue("--accent").trim() || "#0b5cad";
    const grid = css.getPropertyValue("--grid").trim() || "#d8dee4";
    const gapFill = css.getPropertyValue("--gap").trim() || "#eceff3";
    const axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    // The colours drawn, where a test can read them (the canvas cannot be asked).
    setAttr(this.host, "data-colors", JSON.stringify({ line, ink, grid, gap: gapFill }));
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
      cursor: { drag: { x: false, y: false }, points: { size: 8 } },
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
        setCursor: [(u) => this.#showReadout(u)],
      },
    };
  }
}
