import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { findHeaderChip, sysfsGpioNumber } from "../../../device/gpio.ts";
import { startHeartbeatLed, type GpioClass } from "../../../device/led.ts";
import { memoryLogger } from "./fakes.ts";

const root = mkdtempSync(join(tmpdir(), "iot-gpio-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A fake /sys/class/gpio with the given chips (name → [label, base]). */
function sysfs(name: string, chips: Record<string, [string, number]>): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  // The real directory also holds export/unexport files, which are not chips.
  writeFileSync(join(dir, "export"), "");
  writeFileSync(join(dir, "unexport"), "");
  for (const [chip, [label, base]] of Object.entries(chips)) {
    mkdirSync(join(dir, chip));
    writeFileSync(join(dir, chip, "label"), `${label}\n`);
    writeFileSync(join(dir, chip, "base"), `${base}\n`);
    writeFileSync(join(dir, chip, "ngpio"), "54\n");
  }
  return dir;
}

describe("sysfs GPIO base discovery", () => {
  it("base 0: an older kernel on a Pi 3 / Zero (pinctrl-bcm2835 at 0)", async () => {
    const dir = sysfs("base0", {
      gpiochip0: ["pinctrl-bcm2835", 0],
      gpiochip100: ["brcmvirt-gpio", 100],
      gpiochip504: ["raspberrypi-exp-gpio", 504],
    });
    expect(await sysfsGpioNumber(12, dir)).toMatchObject({ gpio: 12, chip: { chip: "gpiochip0", base: 0 } });
  });

  it("base 512: kernel 6.6+ on a Pi 4 (pinctrl-bcm2711 at 512) and a Zero 2W (pinctrl-bcm2835 at 512)", async () => {
    const pi4 = sysfs("base512-pi4", {
      gpiochip512: ["pinctrl-bcm2711", 512],
      gpiochip570: ["raspberrypi-exp-gpio", 570],
    });
    expect(await sysfsGpioNumber(12, pi4)).toMatchObject({ gpio: 524, chip: { label: "pinctrl-bcm2711" } });
    const zero2w = sysfs("base512-zero2w", {
      gpiochip512: ["pinctrl-bcm2835", 512],
      gpiochip566: ["raspberrypi-exp-gpio", 566],
    });
    expect(await sysfsGpioNumber(12, zero2w)).toMatchObject({ gpio: 524 });
  });

  it("base 571: a Pi 5, whose header is on the RP1 (pinctrl-rp1 at 571), not the bcm2712 chips", async () => {
    const dir = sysfs("base571", {
      gpiochip512: ["gpio-brcmstb@107d508500", 512],
      gpiochip544: ["gpio-brcmstb@107d508520", 544],
      gpiochip550: ["pinctrl-bcm2712", 550],
      gpiochip571: ["pinctrl-rp1", 571],
    });
    expect(await sysfsGpioNumber(12, dir)).toMatchObject({ gpio: 583, chip: { chip: "gpiochip571", label: "pinctrl-rp1" } });
  });

  it("none: no SoC pin controller, or no sysfs GPIO at all", async () => {
    const dir = sysfs("none", { gpiochip0: ["gpio-mockup-A", 0] });
    expect(await findHeaderChip(dir)).toBeNull();
    expect(await sysfsGpioNumber(12, dir)).toEqual({ gpio: null, reason: expect.stringMatching(/no gpiochip labelled/) });
    expect(await findHeaderChip(join(root, "does-not-exist"))).toBeNull();
  });
});

/** onoff's Gpio as a recorder. */
function fakeGpio(accessible = true) {
  const writes: number[] = [];
  const opened: number[] = [];
  let unexported = false;
  const Gpio = class {
    static accessible = accessible;
    constructor(gpio: number) {
      opened.push(gpio);
    }
    writeSync(v: 0 | 1) {
      writes.push(v);
    }
    unexport() {
      unexported = true;
    }
  } satisfies GpioClass;
  return { Gpio, writes, opened, unexported: () => unexported };
}

describe("heartbeat LED", () => {
  it("opens header GPIO12 at the discovered base, toggles it, and switches it off on close", async () => {
    const dir = sysfs("led512", { gpiochip512: ["pinctrl-bcm2711", 512] });
    const fake = fakeGpio();
    const led = await startHeartbeatLed({ line: 12, periodMs: 5, log: memoryLogger(), sysfsRoot: dir, loadGpio: async () => fake.Gpio });
    expect(led?.gpio).toBe(524);
    expect(fake.opened).toEqual([524]);
    await expect.poll(() => fake.writes.length).toBeGreaterThanOrEqual(3);
    led!.close();
    expect(fake.writes.slice(0, 3)).toEqual([1, 0, 1]);
    expect(fake.writes.at(-1)).toBe(0);
    expect(fake.unexported()).toBe(true);
  });

  it("is a logged warning, not a crash, without GPIO, without onoff, or without permission", async () => {
    const log = memoryLogger();
    const none = sysfs("led-none", {});
    expect(await startHeartbeatLed({ line: 12, log, sysfsRoot: none, loadGpio: async () => fakeGpio().Gpio })).toBeNull();
    const pi = sysfs("led-pi", { gpiochip0: ["pinctrl-bcm2835", 0] });
    const broken = () => Promise.reject(new Error("NODE_MODULE_VERSION 115. This version of Node.js requires 127"));
    expect(await startHeartbeatLed({ line: 12, log, sysfsRoot: pi, loadGpio: broken })).toBeNull();
    expect(await startHeartbeatLed({ line: 12, log, sysfsRoot: pi, loadGpio: async () => fakeGpio(false).Gpio })).toBeNull();
    const Forbidden = class {
      static accessible = true;
      constructor() {
        throw Object.assign(new Error("EACCES: permission denied, open '/sys/class/gpio/export'"), { code: "EACCES" });
      }
      writeSync() {}
      unexport() {}
    } satisfies GpioClass;
    expect(await startHeartbeatLed({ line: 12, log, sysfsRoot: pi, loadGpio: async () => Forbidden })).toBeNull();
    expect(log.warnings).toHaveLength(4);
    expect(log.warnings.join("\n")).toMatch(/no gpiochip[\s\S]*onoff could not be loaded[\s\S]*not accessible[\s\S]*EACCES/);
  });
});
