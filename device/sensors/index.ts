/**
 * One small interface for every temperature source, and the choice between
 * them: the simulated sensor only when asked for (--simulate); otherwise the
 * TMP102, or, when it cannot be reached, no sensor at all: no readings, a
 * reason, and a retry (MissingSensor). Invented numbers are never sent as real.
 *
 * i2c-bus is a native addon and an optional dependency: it is imported only
 * here, lazily, so a machine where it did not build (or was built for another
 * Node ABI) still runs the agent (link, heartbeats, commands) and says why
 * there are no readings.
 */
import { existsSync } from "node:fs";
import { errorText, type Logger } from "../log.ts";
import { SimulatedSensor } from "./simulated.ts";
import { Tmp102, type ConversionRate, type OpenBus } from "./tmp102.ts";

export interface Sensor {
  /** Reported to the room as `state.sensor`. */
  readonly name: string;
  /** I2C errors since start (0 for the simulated sensor); reported as `state.sensorErrors`. */
  readonly errors: number;
  /** Degrees Celsius. Rejects when the hardware could not be read; the agent skips that sample. */
  readCelsius(): Promise<number>;
  /** Why this sensor produces no readings at all (a missing TMP102); reported as `state.sensorProblem`. */
  readonly problem?: string;
  close(): Promise<void>;
}

export type SensorChoice = {
  simulate: boolean;
  i2cBus: number;
  i2cAddress: number;
  tmp102RateHz: ConversionRate;
  tmp102Extended: boolean;
};

export type SensorDeps = {
  /** Whether /dev/i2c-N exists (injectable for tests). */
  busExists?: (bus: number) => boolean;
  /** Loads i2c-bus's `openPromisified` (injectable for tests). */
  loadI2c?: () => Promise<OpenBus>;
  now?: () => number;
};

/** How often a missing TMP102 is looked for again. */
export const SENSOR_RETRY_MS = 30_000;

export async function chooseSensor(choice: SensorChoice, log: Logger, deps: SensorDeps = {}): Promise<Sensor> {
  if (choice.simulate) return new SimulatedSensor();
  const busExists = deps.busExists ?? ((bus: number) => existsSync(`/dev/i2c-${bus}`));
  const open = async (): Promise<Sensor> => {
    if (!busExists(choice.i2cBus)) {
      throw new Error(`no I2C bus /dev/i2c-${choice.i2cBus}: enable I2C (sudo raspi-config nonint do_i2c 0) and check the wiring`);
    }
    let openBus: OpenBus;
    try {
      openBus = await (deps.loadI2c ?? loadI2cBus)();
    } catch (err) {
      throw new Error(`i2c-bus could not be loaded (${errorText(err).split("\n")[0]}): rebuild it with \`npm rebuild i2c-bus\` under this Node`);
    }
    return new Tmp102({ openBus, bus: choice.i2cBus, address: choice.i2cAddress, rateHz: choice.tmp102RateHz, extended: choice.tmp102Extended, log });
  };
  try {
    const sensor = await open();
    log.info(`Sensor: TMP102 on /dev/i2c-${choice.i2cBus} at 0x${choice.i2cAddress.toString(16)}`);
    return sensor;
  } catch (err) {
    const reason = errorText(err);
    log.warn(`Sensor unavailable: ${reason}. No readings until it is fixed (looked for again every ${SENSOR_RETRY_MS / 1000} s); --simulate for a demo without hardware.`);
    return new MissingSensor(open, reason, log, deps.now);
  }
}

/**
 * The TMP102 that is not there (no /dev/i2c-N, or i2c-bus not loadable under this Node). It
 * produces no readings at all — never simulated values passed off as real (DESIGN.md,
 * contract 4) — reports itself as "unavailable" with the reason, and looks for the hardware
 * again every SENSOR_RETRY_MS, becoming the real sensor once it answers.
 */
export class MissingSensor implements Sensor {
  #open: () => Promise<Sensor>;
  #reason: string;
  #log: Logger;
  #now: () => number;
  #inner: Sensor | null = null;
  #nextTry: number;

  constructor(open: () => Promise<Sensor>, reason: string, log: Logger, now: () => number = Date.now) {
    this.#open = open;
    this.#reason = reason;
    this.#log = log;
    this.#now = now;
    this.#nextTry = now() + SENSOR_RETRY_MS;
  }

  get name(): string {
    return this.#inner?.name ?? "unavailable";
  }

  get errors(): number {
    return this.#inner?.errors ?? 0;
  }

  /** Why there are no readings (undefined once the hardware answered). */
  get problem(): string | undefined {
    return this.#inner ? this.#inner.problem : this.#reason;
  }

  async readCelsius(): Promise<number> {
    if (!this.#inner && this.#now() >= this.#nextTry) {
      this.#nextTry = this.#now() + SENSOR_RETRY_MS;
      try {
        this.#inner = await this.#open();
        this.#log.info(`Sensor found: ${this.#inner.name}; readings start now.`);
      } catch (err) {
        const reason = errorText(err);
        if (reason !== this.#reason) this.#log.warn(`Sensor still unavailable: ${reason}`);
        this.#reason = reason;
      }
    }
    if (!this.#inner) throw new Error(`sensor unavailable: ${this.#reason}`);
    return this.#inner.readCelsius();
  }

  async close(): Promise<void> {
    await this.#inner?.close();
  }
}

/** i2c-bus's promisified open, imported only when asked for (a native addon that may be missing). */
export async function loadI2cBus(): Promise<OpenBus> {
  const mod = await import("i2c-bus");
  const openPromisified = mod.openPromisified ?? mod.default.openPromisified;
  return (bus) => openPromisified(bus);
}
