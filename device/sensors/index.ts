/**
 * One small interface for every temperature source, and the choice between
 * them: the TMP102 when asked for and present, the simulated sensor when asked
 * for (--simulate) or when there is no I2C bus to talk to.
 *
 * i2c-bus is a native addon and an optional dependency: it is imported only
 * here, lazily, so a machine where it did not build (or was built for another
 * Node ABI) still runs the agent, on the simulated sensor, with a warning.
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
};

export async function chooseSensor(choice: SensorChoice, log: Logger, deps: SensorDeps = {}): Promise<Sensor> {
  if (choice.simulate) return new SimulatedSensor();
  const busExists = deps.busExists ?? ((bus: number) => existsSync(`/dev/i2c-${bus}`));
  if (!busExists(choice.i2cBus)) {
    log.warn(`No I2C bus /dev/i2c-${choice.i2cBus} (enable I2C, see README); using the simulated sensor.`);
    return new SimulatedSensor();
  }
  let openBus: OpenBus;
  try {
    openBus = await (deps.loadI2c ?? loadI2cBus)();
  } catch (err) {
    log.warn(`i2c-bus could not be loaded (${errorText(err).split("\n")[0]}); using the simulated sensor. Rebuild it with \`npm rebuild i2c-bus\` under this Node.`);
    return new SimulatedSensor();
  }
  log.info(`Sensor: TMP102 on /dev/i2c-${choice.i2cBus} at 0x${choice.i2cAddress.toString(16)}`);
  return new Tmp102({
    openBus,
    bus: choice.i2cBus,
    address: choice.i2cAddress,
    rateHz: choice.tmp102RateHz,
    extended: choice.tmp102Extended,
    log,
  });
}

async function loadI2cBus(): Promise<OpenBus> {
  const mod = await import("i2c-bus");
  const openPromisified = mod.openPromisified ?? mod.default.openPromisified;
  return (bus) => openPromisified(bus);
}
