/**
 * The last-hour chart: uPlot (≈ 20 KB gzipped, draws tens of thousands of
 * points on a canvas in a few ms, made for streaming). It is only ever given
 * ready columns from series.ts; this file is sizing and styling.
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Scale } from "../../party/protocol";
import { unit } from "./format";
import type { ChartData } from "./series";

/** Redraw at most this often: at 10 Hz a redraw per reading would only cost battery on a phone. */
const MIN_REDRAW_MS = 250;

export class Chart {
  #plot: uPlot | null = null;
  #scale: Scale | null = null;
  #pending: { data: ChartData; window: [number, number] } | null = null;
  #lastDraw = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  readonly #resize: ResizeObserver;

  constructor(private readonly host: HTMLElement) {
    this.#resize = new ResizeObserver(() => this.#fit());
    this.#resize.observe(host);
  }

  /** Show `data` in `scale`, x range `window` (ms). Coalesced to one redraw per MIN_REDRAW_MS. */
  update(data: ChartData, scale: Scale, window: [number, number]): void {
    if (scale !== this.#scale) {
      // The axis label carries the unit: rebuild once when the device switches scale.
      this.#plot?.destroy();
      this.#plot = null;
      this.#scale = scale;
    }
    this.#pending = { data, window };
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
    this.#plot?.destroy();
    this.#plot = null;
  }

  #draw(): void {
    const pending = this.#pending;
    if (!pending || !this.#scale) return;
    this.#lastDraw = performance.now();
    const [from, to] = pending.window;
    if (!this.#plot) {
      this.#plot = new uPlot(this.#options(this.#scale), pending.data, this.host);
    } else {
      this.#plot.setData(pending.data, false);
    }
    // A fixed one-hour window that slides with the clock, whatever the data covers.
    this.#plot.setScale("x", { min: from / 1000, max: to / 1000 });
  }

  #size(): { width: number; height: number } {
    const width = Math.max(240, Math.floor(this.host.clientWidth));
    return { width, height: width < 600 ? 220 : 300 };
  }

  #fit(): void {
    this.#plot?.setSize(this.#size());
  }

  #options(scale: Scale): uPlot.Options {
    const css = getComputedStyle(this.host);
    const ink = css.getPropertyValue("--ink").trim() || "#1b1f24";
    const line = css.getPropertyValue("--accent").trim() || "#0b5cad";
    const grid = css.getPropertyValue("--grid").trim() || "#d8dee4";
    const axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    return {
      ...this.#size(),
      scales: { x: { time: true } },
      // The big number above is the readout; a legend would repeat it in small print.
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
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
        // Time labels ("10:45am") are ~55 px wide: keep ticks apart so a phone's axis stays readable.
        { ...axis, space: 90 },
        { ...axis, label: unit(scale), size: 56, values: (_u, ticks) => ticks.map((t) => t.toFixed(1)) },
      ],
    };
  }
}
