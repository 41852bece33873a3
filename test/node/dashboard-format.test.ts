import { describe, expect, it } from "vitest";
import { formatAgo, formatDuration, formatNumber, formatRange, formatTemperature, TimeFormat, unit } from "../../dashboard/src/format";

describe("dashboard formatting", () => {
  it("shows one decimal with the unit of the reading's scale", () => {
    expect(formatTemperature(76.891, "F")).toBe("76.9 °F");
    expect(formatTemperature(24.94, "C")).toBe("24.9 °C");
    expect(unit("C")).toBe("°C");
  });

  it("writes negatives with a real minus sign and never shows minus zero", () => {
    expect(formatNumber(-5.25)).toBe("\u22125.3");
    expect(formatNumber(-0.04)).toBe("0.0");
    expect(formatNumber(0)).toBe("0.0");
  });

  it("tells ages in the largest unit that fits", () => {
    const now = 1_700_000_000_000;
    expect(formatAgo(null, now)).toBe("never");
    expect(formatAgo(now - 500, now)).toBe("just now");
    expect(formatAgo(now - 12_400, now)).toBe("12 s ago");
    expect(formatAgo(now - 3 * 60_000 - 5_000, now)).toBe("3 min ago");
    expect(formatAgo(now - 2 * 3_600_000, now)).toBe("2 h ago");
    expect(formatAgo(now - 3 * 86_400_000, now)).toBe("3 d ago");
  });

  it("reads a time in the future (a device clock ahead of ours) as just now", () => {
    expect(formatAgo(2_000_000, 1_000_000)).toBe("just now");
  });

  it("says which rows of the fleet a page shows", () => {
    expect(formatRange(0, 50, 10_000, "en-US")).toBe("1\u201350 of 10,000");
    expect(formatRange(100, 21, 121, "en-US")).toBe("101\u2013121 of 121");
    expect(formatRange(0, 0, 0, "en-US")).toBe("0 of 0");
  });
});

describe("durations and times as people read them (issue 14)", () => {
  it("says durations in the largest two units, never 10000 ms", () => {
    expect(formatDuration(850)).toBe("850 ms");
    expect(formatDuration(1_400)).toBe("1.4 s");
    expect(formatDuration(10_000)).toBe("10 s");
    expect(formatDuration(90_000)).toBe("1 min 30 s");
    expect(formatDuration(600_000)).toBe("10 min");
    expect(formatDuration(2 * 3_600_000 + 5 * 60_000 + 7_000)).toBe("2 h 5 min");
    expect(formatDuration(3 * 86_400_000 + 4 * 3_600_000)).toBe("3 d 4 h");
    expect(formatDuration(-5)).toBe("0 ms");
  });

  it("formats times in the locale and zone given, and names the zone", () => {
    const ts = Date.UTC(2025, 1, 9, 12, 20, 58);
    const de = new TimeFormat("de-DE", "Europe/Berlin", ts);
    expect(de.time(ts)).toBe("13:20:58");
    expect(de.zone).toBe("MEZ");
    const us = new TimeFormat("en-US", "America/New_York", ts);
    // ICU puts a narrow no-break space before AM (older versions a plain one).
    expect(us.time(ts)).toMatch(/^7:20:58\sAM$/);
    expect(us.zone).toBe("EST");
    expect(new TimeFormat("en-GB", "Asia/Kolkata", ts).zone).toBe("GMT+5:30");
  });

  it("labels axis ticks with the time within a day, and dates over longer windows", () => {
    const f = new TimeFormat("en-GB", "UTC");
    const noon = Date.UTC(2025, 1, 9, 12, 0);
    const midnight = Date.UTC(2025, 1, 10, 0, 0);
    expect(f.tick(noon, 3_600_000)).toBe("12:00");
    // Ticks seconds apart (a device a minute old): with seconds, so no two labels read the same.
    expect(f.tick(noon + 10_000, 60_000, 10_000)).toBe("12:00:10");
    expect(f.tick(midnight, 7 * 86_400_000)).toBe("10 Feb");
    expect(f.tick(noon, 7 * 86_400_000)).toBe("Sun 12:00");
  });
});
