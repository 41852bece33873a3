/**
 * Where GPIO N of the 40-pin header is in the sysfs numbering.
 *
 * sysfs GPIO numbers are `chip base + line`. Older Raspberry Pi kernels gave
 * the SoC's chip base 0; since 6.6 the kernel allocates bases dynamically from
 * 512 upwards (the SoC chip lands on 512 on a Pi 3/4/Zero 2W, and the Pi 5's
 * RP1 header chip on 571). So the base is read at run time from
 * /sys/class/gpio/gpiochip*\/{label,base}, picking the chip whose label is the
 * SoC's pin controller, never assumed.
 */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";

export const SYSFS_GPIO_ROOT = "/sys/class/gpio";

/**
 * Labels of the chips that carry the header's GPIO0..27, best first.
 * Pi 5: the header is on the RP1 south bridge (`pinctrl-rp1`), while its
 * `pinctrl-bcm2712` chips are SoC-internal, so those are not listed.
 * Pi 4 / 400 / CM4: `pinctrl-bcm2711`. Pi 1/2/3/Zero/Zero 2W: `pinctrl-bcm2835`.
 */
export const HEADER_CHIP_LABELS = ["pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835"] as const;

export type GpioChip = { chip: string; label: string; base: number };

/** The header's gpiochip, or null when there is none (not a Pi, no sysfs GPIO, unreadable). */
export async function findHeaderChip(root = SYSFS_GPIO_ROOT): Promise<GpioChip | null> {
  let entries: string[];
  try {
    entries = (await readdir(root)).filter((name) => name.startsWith("gpiochip"));
  } catch {
    // No /sys/class/gpio (not Linux, or sysfs GPIO compiled out): no chip, and the caller says so.
    return null;
  }
  const chips: GpioChip[] = [];
  for (const chip of entries.sort()) {
    try {
      const label = (await readFile(join(root, chip, "label"), "utf8")).trim();
      const base = Number((await readFile(join(root, chip, "base"), "utf8")).trim());
      if (Number.isInteger(base) && base >= 0) chips.push({ chip, label, base });
    } catch {
      // A chip whose files vanish or cannot be read is not the one we can use; look at the others.
    }
  }
  for (const label of HEADER_CHIP_LABELS) {
    const hit = chips.find((c) => c.label === label);
    if (hit) return hit;
  }
  return null;
}

/** sysfs number of header GPIO `line` (e.g. 12 → 12, 524 or 583), or null with the reason. */
export async function sysfsGpioNumber(
  line: number,
  root = SYSFS_GPIO_ROOT,
): Promise<{ gpio: number; chip: GpioChip } | { gpio: null; reason: string }> {
  const chip = await findHeaderChip(root);
  if (!chip) return { gpio: null, reason: `no gpiochip labelled ${HEADER_CHIP_LABELS.join(" / ")} under ${root}` };
  return { gpio: chip.base + line, chip };
}
