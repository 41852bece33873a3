/** Issue 14, point 6: the chart's text alternative (dashboard/src/chart-summary.ts). */
import { describe, expect, it } from "vitest";
import type { Reading } from "../../party/protocol";
import { chartTable, summarizeChart } from "../../dashboard/src/chart-summary";
import { TimeFormat } from "../../dashboard/src/format";

const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const time = new TimeFormat("en-GB", "UTC", T0);
const r = (seq: number, minutes: number, temperature: number, scale: "F" | "C" = "C"): Reading => ({ seq, ts: T0 + minutes * 60_000, temperature, scale });

describe("the chart in words", () => {
  it("says the range, the count, the lowest, highest and latest with their times, and the gaps", () => {
    const readings = [r(1, 0, 20), r(2, 1, 18.26), r(3, 2, 22.5), r(4, 10, 21)];
    const text = summarizeChart({ caption: "Last hour", readings, scale: "C", gaps: [{ from: T0 + 120_000, to: T0 + 600_000 }], time, rangeMs: 3_600_000 });
    expect(text).toBe(
      "Last hour, times in UTC: 4 readings from 12:00:00 to 12:10:00. " +
        "Lowest 18.3 °C at 12:01:00, highest 22.5 °C at 12:02:00, latest 21.0 °C at 12:10:00. " +
        "1 gap, the longest 8 min (from 12:02:00).",
    );
  });

  it("converts readings taken in the other scale, and says when there are no gaps", () => {
    const text = summarizeChart({ caption: "Last 15 minutes", readings: [r(1, 0, 212, "F"), r(2, 1, 0)], scale: "C", gaps: [], time, rangeMs: 900_000 });
    expect(text).toBe("Last 15 minutes, times in UTC: 2 readings from 12:00:00 to 12:01:00. Lowest 0.0 °C at 12:01:00, highest 100.0 °C at 12:00:00, latest 0.0 °C at 12:01:00. No gaps.");
  });

  it("says so when there is nothing, and dates times on ranges over a day", () => {
    expect(summarizeChart({ caption: "Last hour", readings: [], scale: "F", gaps: [], time, rangeMs: 3_600_000 })).toBe("Last hour, times in UTC: no readings.");
    expect(summarizeChart({ caption: "Last 7 days", readings: [r(1, 0, 5)], scale: "C", gaps: [], time, rangeMs: 7 * 86_400_000 })).toMatch(/^Last 7 days, times in UTC: 1 reading from 15 Jan, 12:00:00 to 15 Jan, 12:00:00\./);
  });
});

describe("the chart as a table", () => {
  it("cuts the window into slices with each one's count, lowest, highest and mean", () => {
    const readings = [r(1, 0, 10), r(2, 1, 20), r(3, 11, 30), r(4, 59, 40, "F")];
    const rows = chartTable(readings, "C", [T0, T0 + 3_600_000], 6);
    expect(rows).toHaveLength(6);
    expect(rows.map((x) => x.count)).toEqual([2, 1, 0, 0, 0, 1]);
    expect(rows[0]).toMatchObject({ from: T0, to: T0 + 600_000, min: 10, max: 20, mean: 15 });
    expect(rows[2]).toMatchObject({ min: null, max: null, mean: null });
    expect(rows[5]!.min).toBeCloseTo(4.444, 2);
  });

  it("leaves out readings outside the window, and counts one at its very end in the last slice", () => {
    const rows = chartTable([r(1, -5, 1), r(2, 60, 2)], "C", [T0, T0 + 3_600_000], 12);
    expect(rows.reduce((a, x) => a + x.count, 0)).toBe(1);
    expect(rows[11]!.count).toBe(1);
  });
});
