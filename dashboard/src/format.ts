/**
 * Pure formatting for the views: numbers, units, "last seen" ages.
 * No DOM, no clock of its own (callers pass `now`), so it is unit-tested in Node.
 */
import type { Scale } from "../../party/protocol";

/** "°F" / "°C". */
export function unit(scale: Scale): string {
  return scale === "F" ? "°F" : "°C";
}

/**
 * One decimal: the TMP102 resolves 0.0625 °C, so a second decimal would be
 * noise to an operator. Negative values get a real minus sign (U+2212), which
 * lines up with the digits in tabular figures and reads as "minus" aloud.
 */
export function formatNumber(value: number): string {
  const text = Math.abs(value).toFixed(1);
  // -0.04 rounds to "0.0": no sign on a zero.
  return value < 0 && text !== "0.0" ? `\u2212${text}` : text;
}

/** "72.4 °F" */
export function formatTemperature(value: number, scale: Scale): string {
  return `${formatNumber(value)} ${unit(scale)}`;
}

/**
 * "just now", "12 s ago", "3 min ago", "2 h ago", "4 d ago", or "never".
 * A time in the future (a device clock ahead of ours) reads "just now"
 * rather than a negative age.
 */
export function formatAgo(ts: number | null, now: number): string {
  if (ts === null) return "never";
  const s = Math.floor((now - ts) / 1000);
  if (s < 2) return "just now";
  if (s < 60) return `${s} s ago`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min ago`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.floor(h / 24)} d ago`;
}

/** "1,234" in the user's locale. */
export function formatCount(n: number, locale?: string): string {
  return n.toLocaleString(locale);
}

/** "1–50 of 1,234": the rows a page shows (from `offset`, `count` of them) out of `total`. */
export function formatRange(offset: number, count: number, total: number, locale?: string): string {
  if (count === 0) return `0 of ${formatCount(total, locale)}`;
  return `${formatCount(offset + 1, locale)}\u2013${formatCount(offset + count, locale)} of ${formatCount(total, locale)}`;
}
