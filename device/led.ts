/**
 * The heartbeat LED on header GPIO12, toggled once a second while the agent runs.
 *
 * onoff (and its native `epoll` addon) is loaded lazily and only here: a
 * machine without GPIO, or where the addon did not build for this Node, gets a
 * logged warning and no LED, never a crash. The pin is released on exit.
 */
import { errorText, type Logger } from "./log.ts";
import { SYSFS_GPIO_ROOT, sysfsGpioNumber } from "./gpio.ts";

/** The part of onoff's Gpio the LED uses. */
export interface GpioPin {
  writeSync(value: 0 | 1): void;
  unexport(): void;
}
export type GpioClass = {
  new (gpio: number, direction: "out"): GpioPin;
  readonly accessible: boolean;
};

export type LedOptions = {
  line: number;
  periodMs?: number;
  log: Logger;
  sysfsRoot?: string;
  loadGpio?: () => Promise<GpioClass>;
};

export type HeartbeatLed = { readonly gpio: number; close(): void };

export async function startHeartbeatLed(opts: LedOptions): Promise<HeartbeatLed | null> {
  const { log } = opts;
  const where = await sysfsGpioNumber(opts.line, opts.sysfsRoot ?? SYSFS_GPIO_ROOT);
  if (where.gpio === null) {
    log.warn(`Heartbeat LED off: ${where.reason}.`);
    return null;
  }
  let Gpio: GpioClass;
  try {
    Gpio = await (opts.loadGpio ?? loadOnoff)();
  } catch (err) {
    log.warn(`Heartbeat LED off: onoff could not be loaded (${errorText(err).split("\n")[0]}); \`npm rebuild epoll\` under this Node.`);
    return null;
  }
  if (!Gpio.accessible) {
    log.warn("Heartbeat LED off: GPIO is not accessible (is this user in the gpio group?).");
    return null;
  }
  let pin: GpioPin;
  try {
    pin = new Gpio(where.gpio, "out");
  } catch (err) {
    log.warn(`Heartbeat LED off: GPIO${opts.line} (sysfs ${where.gpio}) cannot be opened: ${errorText(err)}`);
    return null;
  }
  log.info(`Heartbeat LED on GPIO${opts.line} (sysfs ${where.gpio}, ${where.chip.chip} ${where.chip.label} base ${where.chip.base})`);
  let on: 0 | 1 = 0;
  const timer = setInterval(() => {
    on = on ? 0 : 1;
    try {
      pin.writeSync(on);
    } catch (err) {
      clearInterval(timer);
      log.warn(`Heartbeat LED off: write failed: ${errorText(err)}`);
    }
  }, opts.periodMs ?? 1000);
  return {
    gpio: where.gpio,
    close() {
      clearInterval(timer);
      try {
        pin.writeSync(0);
        pin.unexport();
      } catch {
        // Exiting anyway: a pin we could not switch off or release is left to the kernel.
      }
    },
  };
}

async function loadOnoff(): Promise<GpioClass> {
  const mod = await import("onoff");
  return mod.Gpio as unknown as GpioClass;
}
