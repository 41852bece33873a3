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

/**
 * The one "seen" phrase of the page: "seen 3 s ago" while online, "last seen 5 min ago"
 * once offline. The device header and the fleet list both call this with the same
 * lastSeen and the same `now` (clock.ts), so they never disagree.
 */
export function formatSeen(online: boolean, lastSeen: number | null, now: number): string {
  return `${online ? "seen" : "last seen"} ${formatAgo(lastSeen, now)}`;
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

/**
 * A duration as people say it: "850 ms", "10 s", "1 min 30 s", "2 h 5 min", "3 d 4 h".
 * Two units at most: an operator reading "1 h 2 min 3 s" only needs the first two.
 */
export function formatDuration(ms: number): string {
  const abs = Math.max(0, Math.round(ms));
  if (abs < 1000) return `${abs} ms`;
  // Under ten seconds a tenth still means something ("1.4 s" for a slow command step).
  if (abs < 10_000) return `${Number((abs / 1000).toFixed(1))} s`;
  const s = Math.round(abs / 1000);
  if (s < 60) return `${s} s`;
  const units: [number, string][] = [
    [86_400, "d"],
    [3_600, "h"],
    [60, "min"],
    [1, "s"],
  ];
  const i = units.findIndex(([size]) => s >= size);
  const [big, bigName] = units[i]!;
  const [small, smallName] = units[i + 1]!;
  const whole = Math.floor(s / big);
  const rest = Math.floor((s - whole * big) / small);
  return rest ? `${whole} ${bigName} ${rest} ${smallName}` : `${whole} ${bigName}`;
}

/**
 * Times in the browser's own locale and time zone (Intl), never a fixed
 * US format; the zone's short name is said once beside them ("CET",
 * "GMT+5:30"), so a screenshot shared across zones is not misread.
 * `locale`/`timeZone` are for tests; the page passes neither.
 */
export class TimeFormat {
  readonly zone: string;
  readonly #time: Intl.DateTimeFormat;
  readonly #short: Intl.DateTimeFormat;
  readonly #day: Intl.DateTimeFormat;
  readonly #dayTime: Intl.DateTimeFormat;
  readonly #dateTime: Intl.DateTimeFormat;
  readonly #clock24: Intl.DateTimeFormat;

  constructor(locale?: string, timeZone?: string, at = Date.now()) {
    const o = (opts: Intl.DateTimeFormatOptions) => new Intl.DateTimeFormat(locale, { ...opts, ...(timeZone ? { timeZone } : {}) });
    this.#time = o({ hour: "numeric", minute: "2-digit", second: "2-digit" });
    this.#short = o({ hour: "numeric", minute: "2-digit" });
    this.#day = o({ month: "short", day: "numeric" });
    this.#dayTime = o({ weekday: "short", hour: "numeric", minute: "2-digit" });
    this.#dateTime = o({ month: "short", day: "numeric", hour: "numeric", minute: "2-digit", second: "2-digit" });
    this.#clock24 = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23", ...(timeZone ? { timeZone } : {}) });
    this.zone = o({ timeZoneName: "short" }).formatToParts(at).find((p) => p.type === "timeZoneName")?.value ?? "";
  }

  /** "13:20:58" / "1:20:58 PM". */
  time(ts: number): string {
    return this.#time.format(ts);
  }

  /** "13:20" / "1:20 PM": axis ticks and gap spans. */
  short(ts: number): string {
    return this.#short.format(ts);
  }

  /** A time that may be on another day than today: with its date. */
  dateTime(ts: number): string {
    return this.#dateTime.format(ts);
  }

  /**
   * An axis tick for a window `spanMs` wide with ticks `stepMs` apart: the time of day
   * within a day (with seconds when ticks are under a minute apart, so no two read the
   * same); over longer windows the date at midnight and weekday + time otherwise.
   */
  tick(ts: number, spanMs: number, stepMs = 60_000): string {
    if (stepMs < 60_000) return this.time(ts);
    if (spanMs <= 86_400_000) return this.short(ts);
    return this.#isMidnight(ts) ? this.#day.format(ts) : this.#dayTime.format(ts);
  }

  #isMidnight(ts: number): boolean {
    // In the formatter's zone, not the machine's; a 24-hour clock whatever the locale uses.
    return this.#clock24.format(ts) === "00:00";
  }
}
