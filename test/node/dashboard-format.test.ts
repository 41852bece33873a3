import { describe, expect, it } from "vitest";
import { formatAgo, formatNumber, formatRange, formatTemperature, unit } from "../../dashboard/src/format";

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
