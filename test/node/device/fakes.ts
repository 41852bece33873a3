/**
 * Byte-exact stand-ins for the hardware seams: a TMP102 on an I2C bus, and a
 * logger that remembers what it was told.
 */
import type { Logger } from "../../../device/log.ts";
import { CONFIG_POWER_UP, CONFIG_REG, TEMP_REG, encodeTemperature, type I2cBus } from "../../../device/sensors/tmp102.ts";

export function errno(code: string, message = code): NodeJS.ErrnoException {
  return Object.assign(new Error(`${message}`), { code });
}

/**
 * A TMP102 at `address`: a pointer register selects one of its 16-bit
 * registers, sent MSB first. The temperature register follows the EM bit of
 * the configuration register, as the chip does. Block reads/writes only,
 * like the chip's I2C protocol (write pointer, then read or write 2 bytes).
 */
export class FakeTmp102Bus implements I2cBus {
  readonly address: number;
  celsius = 25;
  config: [number, number] = [...CONFIG_POWER_UP];
  /** Every transaction, as `read 0x48 [0x00] -> 19 00` / `write 0x48 [0x01] <- 60 40`. */
  readonly transactions: string[] = [];
  /** Errors thrown by the next transactions, first first. */
  readonly failNext: Error[] = [];
  /** When set, raw bytes returned for the temperature register instead of encoding `celsius`. */
  rawTemperature: [number, number] | null = null;
  closed = false;

  constructor(address = 0x48) {
    this.address = address;
  }

  get extended(): boolean {
    return (this.config[1] & 0x10) !== 0;
  }

  async readI2cBlock(address: number, command: number, length: number, buffer: Buffer) {
    this.#check(address);
    const bytes = command === TEMP_REG ? (this.rawTemperature ?? encodeTemperature(this.celsius, this.extended)) : command === CONFIG_REG ? this.config : null;
    if (!bytes) throw errno("EREMOTEIO", `no register ${command}`);
    const n = Math.min(length, 2);
    for (let i = 0; i < n; i++) buffer[i] = bytes[i]!;
    this.transactions.push(`read 0x${address.toString(16)} [0x0${command}] -> ${hex(bytes.slice(0, n))}`);
    return { bytesRead: n, buffer };
  }

  async writeI2cBlock(address: number, command: number, length: number, buffer: Buffer) {
    this.#check(address);
    const bytes = [...buffer.subarray(0, length)];
    this.transactions.push(`write 0x${address.toString(16)} [0x0${command}] <- ${hex(bytes)}`);
    if (command === CONFIG_REG && length === 2) {
      // AL (byte 2, bit 5) is read-only on the chip: a write leaves it as it was.
      this.config = [bytes[0]!, (bytes[1]! & ~0x20) | (this.config[1] & 0x20)];
    }
    return { bytesWritten: length, buffer };
  }

  async close() {
    this.closed = true;
  }

  #check(address: number) {
    const err = this.failNext.shift();
    if (err) throw err;
    // No ACK from an absent address: the kernel says EREMOTEIO.
    if (address !== this.address) throw errno("EREMOTEIO", "Remote I/O error");
  }
}

function hex(bytes: readonly number[]): string {
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

export type MemoryLogger = Logger & { lines: string[]; warnings: string[] };

export function memoryLogger(): MemoryLogger {
  const lines: string[] = [];
  const warnings: string[] = [];
  return {
    lines,
    warnings,
    info: (l) => void lines.push(l),
    warn: (l) => {
      lines.push(l);
      warnings.push(l);
    },
    error: (l) => {
      lines.push(l);
      warnings.push(l);
    },
  };
}
