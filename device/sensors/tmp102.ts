/**
 * TMP102 digital temperature sensor over I2C (TI datasheet SBOS397).
 *
 * The conversion between register bytes and degrees is a set of pure
 * functions; the driver talks to the chip through `I2cBus`, the subset of
 * i2c-bus's promisified bus it needs, so tests drive it with a byte-exact fake.
 *
 * Registers (pointer register, datasheet "Pointer Register"):
 *   0x00 temperature (read-only), 0x01 configuration, 0x02 T_LOW, 0x03 T_HIGH.
 * Every register is two bytes, most significant byte first on the wire.
 */
import type { Sensor } from "./index.ts";
import { errorText, sleep, throttle, type Logger } from "../log.ts";

export const TEMP_REG = 0x00;
export const CONFIG_REG = 0x01;
export const DEFAULT_ADDRESS = 0x48;

/** One LSB of the temperature register (datasheet: "One LSB equals 0.0625°C"). */
export const LSB_CELSIUS = 0.0625;

/** Configuration register bits (byte 1: OS R1 R0 F1 F0 POL TM SD; byte 2: CR1 CR0 AL EM 0 0 0 0). */
const CONFIG_SD = 0x01; // byte 1 bit 0: shutdown; cleared for continuous conversion
const CONFIG_OS = 0x80; // byte 1 bit 7: one-shot; written 0 (it only matters in shutdown mode)
const CONFIG_CR_SHIFT = 6; // byte 2 bits 7..6: conversion rate
const CONFIG_EM = 0x10; // byte 2 bit 4: extended (13-bit) mode
/** Power-up value of the configuration register: 0x60A0 (12-bit, 4 Hz, comparator mode). */
export const CONFIG_POWER_UP: readonly [number, number] = [0x60, 0xa0];

/** Conversion rate bits CR1:CR0 (datasheet "Conversion Rate" table): 0.25, 1, 4 (power-up), 8 Hz. */
export const CONVERSION_RATES = { 0.25: 0b00, 1: 0b01, 4: 0b10, 8: 0b11 } as const;
export type ConversionRate = keyof typeof CONVERSION_RATES;
export function isConversionRate(hz: number): hz is ConversionRate {
  return Object.hasOwn(CONVERSION_RATES, String(hz));
}

// ---------------------------------------------------------------------------
// Pure conversions
// ---------------------------------------------------------------------------

/** A 12-bit (normal) or 13-bit (extended mode) two's-complement code → °C. */
export function codeToCelsius(code: number, bits: 12 | 13): number {
  const signBit = 1 << (bits - 1);
  const value = code & signBit ? code - (1 << bits) : code;
  return value * LSB_CELSIUS;
}

/**
 * °C → the code the chip reports. The datasheet's rule: divide by 0.0625 °C
 * per LSB; negative numbers in two's complement. Temperatures past the range
 * saturate as the chip does (its 12-bit table lists 128 °C as 7FF).
 */
export function celsiusToCode(celsius: number, bits: 12 | 13): number {
  const max = (1 << (bits - 1)) - 1;
  const min = -(1 << (bits - 1));
  const counts = Math.min(max, Math.max(min, Math.round(celsius / LSB_CELSIUS)));
  return counts < 0 ? counts + (1 << bits) : counts;
}

/**
 * The two temperature-register bytes → °C. Bit D0 of byte 2 says which format
 * they are in (datasheet: "Bit D0 of byte 2 indicates normal mode (EM bit = 0)
 * or extended mode (EM bit = 1)"): the code is left-aligned, 12 bits followed
 * by 0000, or 13 bits followed by 001.
 */
export function decodeTemperature(msb: number, lsb: number): number {
  const word = ((msb & 0xff) << 8) | (lsb & 0xff);
  const extended = (lsb & 0x01) === 1;
  return extended ? codeToCelsius(word >> 3, 13) : codeToCelsius(word >> 4, 12);
}

/** °C → the two temperature-register bytes the chip would send (for fakes and tests). */
export function encodeTemperature(celsius: number, extended: boolean): [number, number] {
  const word = extended ? (celsiusToCode(celsius, 13) << 3) | 0x01 : celsiusToCode(celsius, 12) << 4;
  return [(word >> 8) & 0xff, word & 0xff];
}

/**
 * Whether configuration-register bytes can be a TMP102's, read before anything is written:
 * R1:R0 (byte 1, bits 6..5) are read-only and always 11 ("converter resolution", 12 bits),
 * and byte 2's low four bits are reserved and read as 0. An ADS1115 at 0x48 (power-up
 * configuration 0x8583) fails it, and so does a bus nothing drives (FF FF).
 */
export function looksLikeTmp102(config: readonly [number, number]): boolean {
  return (config[0] & 0x60) === 0x60 && (config[1] & 0x0f) === 0;
}

/**
 * The configuration bytes to write: the current ones with continuous
 * conversion (SD = 0, OS = 0), the conversion rate and the EM bit set; the
 * thermostat bits (F1 F0 POL TM) are left as they were.
 */
export function configBytes(
  current: readonly [number, number],
  opts: { rateHz: ConversionRate; extended: boolean },
): [number, number] {
  const msb = current[0] & ~CONFIG_SD & ~CONFIG_OS & 0xff;
  const lsb = (CONVERSION_RATES[opts.rateHz] << CONFIG_CR_SHIFT) | (opts.extended ? CONFIG_EM : 0);
  return [msb, lsb];
}

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

/** What the driver needs of i2c-bus's PromisifiedBus (`i2c.openPromisified(n)`). */
export interface I2cBus {
  readI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesRead: number; buffer: Buffer }>;
  writeI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesWritten: number; buffer: Buffer }>;
  close(): Promise<void>;
}
export type OpenBus = (busNumber: number) => Promise<I2cBus>;

export type Tmp102Options = {
  openBus: OpenBus;
  bus: number;
  address: number;
  rateHz: ConversionRate;
  extended: boolean;
  log: Logger;
  /** Extra attempts after a failed read before the sample is given up. */
  retries?: number;
  retryDelayMs?: number;
};

/**
 * The chip on the bus. Any I2C error (EREMOTEIO: no ACK, chip missing or
 * miswired; ENOENT: no /dev/i2c-N; EACCES: not in the i2c group; EIO…) is
 * counted and retried, the bus reopened and the chip reconfigured; after the
 * retries the read rejects and the agent skips that sample. Nothing here throws
 * past `readCelsius`, and nothing crashes the agent.
 */
export class Tmp102 implements Sensor {
  readonly name = "tmp102";
  #opts: Required<Tmp102Options>;
  #bus: I2cBus | null = null;
  #configured = false;
  #errors = 0;
  #problem: string | undefined;
  #logGate = throttle(30_000);

  constructor(opts: Tmp102Options) {
    if (!Number.isInteger(opts.address) || opts.address < 0x03 || opts.address > 0x77) {
      throw new Error(`TMP102: I2C address must be 0x03..0x77, got ${opts.address}`);
    }
    this.#opts = { retries: 2, retryDelayMs: 50, ...opts };
  }

  get errors(): number {
    return this.#errors;
  }

  /** Set while the device at the address does not answer like a TMP102 (no readings then). */
  get problem(): string | undefined {
    return this.#problem;
  }

  async readCelsius(): Promise<number> {
    const { retries, retryDelayMs } = this.#opts;
    let lastError: unknown;
    for (let attempt = 0; attempt <= retries; attempt++) {
      try {
        const bus = await this.#open();
        if (!this.#configured) await this.#configure(bus);
        return await this.#readTemperature(bus);
      } catch (err) {
        lastError = err;
        this.#errors++;
        // A bus that failed may be stale (adapter reset, device node recreated): start over.
        await this.#drop();
        if (attempt < retries) await sleep(retryDelayMs * 2 ** attempt);
      }
    }
    if (this.#logGate()) {
      this.#opts.log.warn(
        `TMP102 on i2c-${this.#opts.bus} at 0x${this.#opts.address.toString(16)}: ${errorText(lastError)} (${this.#errors} I2C errors so far)`,
      );
    }
    throw lastError;
  }

  async close(): Promise<void> {
    await this.#drop();
  }

  async #open(): Promise<I2cBus> {
    this.#bus ??= await this.#opts.openBus(this.#opts.bus);
    return this.#bus;
  }

  /** Read-modify-write of the configuration register: rate and EM, thermostat bits kept. */
  async #configure(bus: I2cBus): Promise<void> {
    const { address, rateHz, extended } = this.#opts;
    const current = await readRegister(bus, address, CONFIG_REG);
    if (!looksLikeTmp102(current)) {
      // Another chip at this address: its configuration must not be overwritten, and its
      // numbers are not temperatures. Refused, not retried into a reading.
      this.#problem = `the chip at 0x${address.toString(16)} on i2c-${this.#opts.bus} is not a TMP102 (its configuration register reads ${hex2(current)}; a TMP102's has R1:R0 = 11 and four low bits 0); nothing was written to it`;
      throw new Error(this.#problem);
    }
    this.#problem = undefined;
    const next = configBytes(current, { rateHz, extended });
    await bus.writeI2cBlock(address, CONFIG_REG, 2, Buffer.from(next));
    this.#configured = true;
  }

  async #readTemperature(bus: I2cBus): Promise<number> {
    const [msb, lsb] = await readRegister(bus, this.#opts.address, TEMP_REG);
    return decodeTemperature(msb, lsb);
  }

  async #drop(): Promise<void> {
    const bus = this.#bus;
    this.#bus = null;
    this.#configured = false;
    if (!bus) return;
    try {
      await bus.close();
    } catch {
      // Closing a bus that already failed can fail too; it is discarded either way.
    }
  }
}

function hex2(bytes: readonly [number, number]): string {
  return bytes.map((b) => b.toString(16).padStart(2, "0").toUpperCase()).join(" ");
}

/** Write the pointer, read two bytes back: byte 1 (MSB) first, as the chip sends them. */
async function readRegister(bus: I2cBus, address: number, register: number): Promise<[number, number]> {
  const buffer = Buffer.alloc(2);
  const { bytesRead } = await bus.readI2cBlock(address, register, 2, buffer);
  if (bytesRead !== 2) throw new Error(`TMP102: short read of register ${register} (${bytesRead} of 2 bytes)`);
  return [buffer[0]!, buffer[1]!];
}
