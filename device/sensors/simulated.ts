/**
 * A plausible room temperature with no hardware: a slow daily-ish swing, a
 * random walk on top, quantised to the TMP102's 0.0625 °C steps so the
 * simulated twin's numbers look like the real sensor's. Used with --simulate,
 * or when no I2C bus exists (a laptop, CI, a container).
 */
import type { Sensor } from "./index.ts";
import { LSB_CELSIUS } from "./tmp102.ts";

export type SimulatedOptions = {
  /** Centre of the swing, °C. */
  baseCelsius?: number;
  random?: () => number;
  now?: () => number;
};

/** Period of the slow swing: ten minutes, so a demo shows a visible curve. */
const SWING_PERIOD_MS = 10 * 60_000;
const SWING_CELSIUS = 1.5;
const WALK_STEP_CELSIUS = 0.05;
const WALK_LIMIT_CELSIUS = 1;

export class SimulatedSensor implements Sensor {
  readonly name = "simulated";
  readonly errors = 0;
  #base: number;
  #random: () => number;
  #now: () => number;
  #walk = 0;

  constructor(opts: SimulatedOptions = {}) {
    this.#base = opts.baseCelsius ?? 22;
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? Date.now;
  }

  async readCelsius(): Promise<number> {
    this.#walk += (this.#random() * 2 - 1) * WALK_STEP_CELSIUS;
    this.#walk = Math.max(-WALK_LIMIT_CELSIUS, Math.min(WALK_LIMIT_CELSIUS, this.#walk));
    const swing = SWING_CELSIUS * Math.sin((2 * Math.PI * this.#now()) / SWING_PERIOD_MS);
    return Math.round((this.#base + swing + this.#walk) / LSB_CELSIUS) * LSB_CELSIUS;
  }

  async close(): Promise<void> {
    // Nothing to release.
  }
}
