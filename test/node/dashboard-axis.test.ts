import { describe, expect, it } from "vitest";
import { decimalsFor, niceStep, yTicks } from "../../dashboard/src/axis";

describe("chart y axis (issue 14)", () => {
  it("never repeats a label over a flat line: the span is at least one degree", () => {
    // The old axis: 69.0 four times, then 68.9 four times.
    const t = yTicks(68.94, 68.96);
    expect(t.max - t.min).toBeGreaterThanOrEqual(1);
    expect(new Set(t.labels).size).toBe(t.labels.length);
  });

  it("writes as many decimals as the step needs, and steps evenly", () => {
    expect(decimalsFor(5)).toBe(0);
    expect(decimalsFor(0.5)).toBe(1);
    expect(decimalsFor(0.25)).toBe(2);
    const t = yTicks(22.2, 23.4, 6);
    expect(t.labels).toEqual(["22.2", "22.4", "22.6", "22.8", "23.0", "23.2", "23.4"]);
    expect(yTicks(22.1, 23.4, 6).labels).toEqual(["22.00", "22.25", "22.50", "22.75", "23.00", "23.25", "23.50"]);
    const steps = t.ticks.slice(1).map((v, i) => Number((v - t.ticks[i]!).toFixed(6)));
    expect(new Set(steps).size).toBe(1);
    expect(yTicks(10, 40, 6).labels).toEqual(["10", "15", "20", "25", "30", "35", "40"]);
  });

  it("picks nice steps only", () => {
    for (const span of [0.3, 1, 7, 13, 99, 250]) expect([1, 2, 2.5, 5, 10]).toContain(niceStep(span, 5) / 10 ** Math.floor(Math.log10(niceStep(span, 5))));
  });

  it("writes negatives with a real minus sign, and a zero without one", () => {
    const t = yTicks(-1.2, 0.3, 4);
    expect(t.labels[0]!.startsWith("\u2212")).toBe(true);
    expect(t.labels).toContain("0.0");
  });

  it("works before any data (no NaN, no empty axis)", () => {
    const t = yTicks(null, null);
    expect(t.ticks.length).toBeGreaterThan(1);
    expect(t.labels.every((l) => !l.includes("NaN"))).toBe(true);
  });
});
