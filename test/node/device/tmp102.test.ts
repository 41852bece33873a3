import { describe, expect, it } from "vitest";
import { SimulatedSensor } from "../../../device/sensors/simulated.ts";
import { SENSOR_RETRY_MS, chooseSensor } from "../../../device/sensors/index.ts";
import {
  Tmp102,
  looksLikeTmp102,
  celsiusToCode,
  codeToCelsius,
  configBytes,
  decodeTemperature,
  encodeTemperature,
  type ConversionRate,
} from "../../../device/sensors/tmp102.ts";
import { FakeTmp102Bus, errno, memoryLogger } from "./fakes.ts";

/**
 * Every row of the TMP102 datasheet's temperature-to-digital tables
 * (TI SBOS397, "Temperature Register": Table 5 "12-Bit Temperature Data
 * Format" and Table 6 "13-Bit Temperature Data Format" in revision C; the
 * same tables are numbered 6-2/6-3 or 7-2/7-3 in later revisions).
 * [°C, hex code]. The first 12-bit row is the chip saturating: at 128 °C it
 * still reports 7FF, which reads back as 127.9375 °C.
 */
const NORMAL_12_BIT: [number, number][] = [
  [128, 0x7ff],
  [127.9375, 0x7ff],
  [100, 0x640],
  [80, 0x500],
  [75, 0x4b0],
  [50, 0x320],
  [25, 0x190],
  [0.25, 0x004],
  [0, 0x000],
  [-0.25, 0xffc],
  [-25, 0xe70],
  [-55, 0xc90],
];
const EXTENDED_13_BIT: [number, number][] = [
  [150, 0x0960],
  [128, 0x0800],
  [127.9375, 0x07ff],
  [100, 0x0640],
  [80, 0x0500],
  [75, 0x04b0],
  [50, 0x0320],
  [25, 0x0190],
  [0.25, 0x0004],
  [0, 0x0000],
  [-0.25, 0x1ffc],
  [-25, 0x1e70],
  [-55, 0x1c90],
];

describe("TMP102 conversion (datasheet tables)", () => {
  it.each(NORMAL_12_BIT)("12-bit: %s °C ⇄ 0x%s", (celsius, code) => {
    expect(celsiusToCode(celsius, 12)).toBe(code);
    expect(codeToCelsius(code, 12)).toBe(Math.min(celsius, 127.9375));
    // On the wire: the 12 bits left-aligned in two bytes, low nibble 0000 (EM = 0).
    const [msb, lsb] = encodeTemperature(celsius, false);
    expect((msb << 8) | lsb).toBe(code << 4);
    expect(decodeTemperature(msb, lsb)).toBe(Math.min(celsius, 127.9375));
  });

  it.each(EXTENDED_13_BIT)("13-bit: %s °C ⇄ 0x%s", (celsius, code) => {
    expect(celsiusToCode(celsius, 13)).toBe(code);
    expect(codeToCelsius(code, 13)).toBe(celsius);
    // On the wire: the 13 bits left-aligned, then 001 (bit D0 of byte 2 flags extended mode).
    const [msb, lsb] = encodeTemperature(celsius, true);
    expect((msb << 8) | lsb).toBe((code << 3) | 1);
    expect(decodeTemperature(msb, lsb)).toBe(celsius);
  });

  it("resolves one LSB, 0.0625 °C, on both sides of zero", () => {
    expect(codeToCelsius(0x001, 12)).toBe(0.0625);
    expect(codeToCelsius(0xfff, 12)).toBe(-0.0625);
    expect(codeToCelsius(0x1fff, 13)).toBe(-0.0625);
    expect(codeToCelsius(0x800, 12)).toBe(-128);
  });
});

describe("TMP102 configuration register", () => {
  it.each<[ConversionRate, boolean, [number, number]]>([
    [0.25, false, [0x60, 0x00]],
    [1, false, [0x60, 0x40]],
    [4, false, [0x60, 0x80]],
    [8, false, [0x60, 0xc0]],
    [1, true, [0x60, 0x50]],
    [8, true, [0x60, 0xd0]],
  ])("%s Hz, extended %s, from power-up 60 A0 → %j", (rateHz, extended, bytes) => {
    expect(configBytes([0x60, 0xa0], { rateHz, extended })).toEqual(bytes);
  });

  it("keeps the thermostat bits, clears shutdown and one-shot", () => {
    // OS=1 R1 R0 F1=1 F0=1 POL=1 TM=1 SD=1
    expect(configBytes([0xff, 0xa0], { rateHz: 1, extended: false })).toEqual([0x7e, 0x40]);
  });
});

function driver(bus: FakeTmp102Bus, over: Partial<ConstructorParameters<typeof Tmp102>[0]> = {}) {
  const log = memoryLogger();
  let opened = 0;
  const sensor = new Tmp102({
    openBus: async (n) => {
      opened++;
      if (n !== 1) throw errno("ENOENT", `no /dev/i2c-${n}`);
      return bus;
    },
    bus: 1,
    address: 0x48,
    rateHz: 1,
    extended: false,
    retryDelayMs: 1,
    log,
    ...over,
  });
  return { sensor, log, opened: () => opened };
}

describe("TMP102 driver over a fake bus", () => {
  it("writes the conversion rate once, then reads the temperature register MSB first", async () => {
    const bus = new FakeTmp102Bus();
    bus.celsius = 25;
    const { sensor } = driver(bus);
    expect(await sensor.readCelsius()).toBe(25);
    expect(await sensor.readCelsius()).toBe(25);
    expect(bus.transactions).toEqual([
      "read 0x48 [0x01] -> 60 a0",
      "write 0x48 [0x01] <- 60 40",
      "read 0x48 [0x00] -> 19 00",
      "read 0x48 [0x00] -> 19 00",
    ]);
    expect(sensor.errors).toBe(0);
  });

  it("takes byte 1 as the most significant: 0xE7 0x00 is -25 °C, not a little-endian word", async () => {
    const bus = new FakeTmp102Bus();
    bus.rawTemperature = [0xe7, 0x00];
    expect(await driver(bus).sensor.readCelsius()).toBe(-25);
    bus.rawTemperature = [0x32, 0x00];
    expect(await driver(bus).sensor.readCelsius()).toBe(50);
    // The same bytes swapped, as an SMBus (little-endian) word read would deliver them: 0x003 → 0.1875 °C.
    bus.rawTemperature = [0x00, 0x32];
    expect(await driver(bus).sensor.readCelsius()).toBe(0.1875);
  });

  it("in extended mode sets EM and reads 150 °C", async () => {
    const bus = new FakeTmp102Bus();
    bus.celsius = 150;
    const { sensor } = driver(bus, { extended: true, rateHz: 8 });
    expect(await sensor.readCelsius()).toBe(150);
    expect(bus.transactions).toContain("write 0x48 [0x01] <- 60 d0");
    expect(bus.extended).toBe(true);
    expect(bus.transactions.at(-1)).toBe("read 0x48 [0x00] -> 4b 01");
  });

  it("retries I2C errors, counts every one, and succeeds when the bus recovers", async () => {
    const bus = new FakeTmp102Bus();
    bus.celsius = -55;
    const { sensor, opened } = driver(bus);
    bus.failNext.push(errno("EREMOTEIO", "Remote I/O error"), errno("EIO", "I/O error"));
    expect(await sensor.readCelsius()).toBe(-55);
    expect(sensor.errors).toBe(2);
    // Each failure drops the bus; the next attempt reopens it and reconfigures the chip.
    expect(opened()).toBe(3);
  });

  it("gives up a sample after its retries, logs once, and does not throw past readCelsius's promise", async () => {
    const bus = new FakeTmp102Bus(0x49); // nothing answers at 0x48
    const { sensor, log } = driver(bus, { retries: 2 });
    await expect(sensor.readCelsius()).rejects.toMatchObject({ code: "EREMOTEIO" });
    expect(sensor.errors).toBe(3);
    await expect(sensor.readCelsius()).rejects.toMatchObject({ code: "EREMOTEIO" });
    expect(sensor.errors).toBe(6);
    expect(log.warnings).toHaveLength(1); // throttled: one line per 30 s, with the running count
    expect(log.warnings[0]).toMatch(/TMP102 on i2c-1 at 0x48: EREMOTEIO.*3 I2C errors/);
  });

  it("counts a missing bus (ENOENT) and a forbidden one (EACCES) as I2C errors", async () => {
    const { sensor } = driver(new FakeTmp102Bus(), { bus: 7, retries: 0 });
    await expect(sensor.readCelsius()).rejects.toMatchObject({ code: "ENOENT" });
    const bus = new FakeTmp102Bus();
    bus.failNext.push(errno("EACCES", "permission denied"));
    const second = driver(bus, { retries: 0 }).sensor;
    await expect(second.readCelsius()).rejects.toMatchObject({ code: "EACCES" });
    expect(sensor.errors + second.errors).toBe(2);
    expect(await second.readCelsius()).toBe(25);
  });
});

describe("TMP102 identity, checked before anything is written", () => {
  const opts = (bus: FakeTmp102Bus) => ({ openBus: async () => bus, bus: 1, address: 0x48, rateHz: 4 as const, extended: false, log: memoryLogger(), retryDelayMs: 1 });

  it.each([
    ["an ADS1115 at 0x48 (power-up configuration 0x8583)", [0x85, 0x83] as [number, number]],
    ["a bus nothing drives (FF FF)", [0xff, 0xff] as [number, number]],
    ["a chip whose resolution bits are not 11", [0x20, 0xa0] as [number, number]],
  ])("refuses %s: no reading, no configuration write, the reason as the sensor's problem", async (_name, config) => {
    const bus = new FakeTmp102Bus();
    bus.config = config;
    const sensor = new Tmp102(opts(bus));
    await expect(sensor.readCelsius()).rejects.toThrow(/is not a TMP102/);
    expect(bus.transactions.filter((t) => t.startsWith("write"))).toEqual([]);
    expect(bus.config).toEqual(config);
    expect(sensor.problem).toMatch(new RegExp(`configuration register reads ${config.map((b) => b.toString(16).padStart(2, "0").toUpperCase()).join(" ")}`));
  });

  it("accepts the power-up configuration and a configured one, and clears the problem", async () => {
    expect(looksLikeTmp102([0x60, 0xa0])).toBe(true);
    expect(looksLikeTmp102([0x60, 0x90])).toBe(true);
    const bus = new FakeTmp102Bus();
    const sensor = new Tmp102(opts(bus));
    expect(await sensor.readCelsius()).toBe(25);
    expect(sensor.problem).toBeUndefined();
  });
});

describe("choosing a sensor", () => {
  it("uses the simulated one only when asked; with no bus or no loadable i2c-bus there is no sensor, never an invented one", async () => {
    const log = memoryLogger();
    const base = { i2cBus: 1, i2cAddress: 0x48, tmp102RateHz: 4 as const, tmp102Extended: false };
    expect((await chooseSensor({ ...base, simulate: true }, log)).name).toBe("simulated");
    const noBus = await chooseSensor({ ...base, simulate: false }, log, { busExists: () => false });
    expect(noBus.name).toBe("unavailable");
    expect(noBus.problem).toMatch(/no I2C bus \/dev\/i2c-1: enable I2C/);
    await expect(noBus.readCelsius()).rejects.toThrow(/sensor unavailable/);
    const broken = await chooseSensor({ ...base, simulate: false }, log, {
      busExists: () => true,
      loadI2c: () => Promise.reject(new Error("was compiled against a different Node.js version")),
    });
    expect(broken.name).toBe("unavailable");
    expect(broken.problem).toMatch(/i2c-bus could not be loaded \(was compiled against a different Node.js version\): rebuild it/);
    expect(log.warnings.join("\n")).toMatch(/Sensor unavailable: no I2C bus[\s\S]*Sensor unavailable: i2c-bus could not be loaded/);
    const bus = new FakeTmp102Bus();
    const real = await chooseSensor({ ...base, simulate: false }, log, { busExists: () => true, loadI2c: async () => async () => bus });
    expect(real.name).toBe("tmp102");
    expect(await real.readCelsius()).toBe(25);
  });

  it("looks for a missing TMP102 again every 30 s and reads it once it answers", async () => {
    const log = memoryLogger();
    const base = { i2cBus: 1, i2cAddress: 0x48, tmp102RateHz: 4 as const, tmp102Extended: false };
    let now = 1_000_000;
    let present = false;
    const bus = new FakeTmp102Bus();
    const sensor = await chooseSensor({ ...base, simulate: false }, log, {
      busExists: () => present,
      loadI2c: async () => async () => bus,
      now: () => now,
    });
    expect(sensor.name).toBe("unavailable");
    present = true;
    // Not before the retry is due: still nothing, and no reading invented.
    await expect(sensor.readCelsius()).rejects.toThrow(/unavailable/);
    now += SENSOR_RETRY_MS;
    expect(await sensor.readCelsius()).toBe(25);
    expect(sensor.name).toBe("tmp102");
    expect(sensor.problem).toBeUndefined();
  });

  it("the simulated sensor drifts plausibly in TMP102 steps", async () => {
    const sensor = new SimulatedSensor({ baseCelsius: 22, random: () => 1 });
    const values: number[] = [];
    for (let i = 0; i < 100; i++) values.push(await sensor.readCelsius());
    for (const v of values) {
      expect(v).toBeGreaterThan(19);
      expect(v).toBeLessThan(25);
      expect(Number.isInteger(v / 0.0625)).toBe(true);
    }
    expect(new Set(values).size).toBeGreaterThan(1);
  });
});
