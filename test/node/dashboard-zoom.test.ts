import { describe, expect, it } from "vitest";
import type { AlertRecord } from "../../party/protocol";
import { DEFAULT_RANGE, RANGES } from "../../dashboard/src/series";
import { alertMarks, describeMark, MIN_ZOOM_MS, panZoom, rangeFromKey, stepPoint, zoomFromDrag, type Span } from "../../dashboard/src/zoom";

const WINDOW: Span = [1_000_000, 1_000_000 + 3_600_000];

const alert = (id: number, rule: string, raisedAt: number, clearedAt: number | null = null): AlertRecord => ({
  id,
  device: "pi-1",
  rule,
  kind: "above",
  status: clearedAt === null ? "active" : "cleared",
  message: `${rule} message`,
  since: raisedAt - 1000,
  raisedAt,
  acknowledgedAt: null,
  acknowledgedBy: null,
  clearedAt,
  value: 71,
  scale: "F",
});

describe("chart zoom and pan (issue 14)", () => {
  it("zooms to a drag in either direction, kept inside the window", () => {
    expect(zoomFromDrag(1_600_000, 1_300_000, WINDOW)).toEqual([1_300_000, 1_600_000]);
    expect(zoomFromDrag(500_000, 1_100_000, WINDOW)).toEqual([1_000_000, 1_100_000]);
  });

  it("takes a click (a drag of almost nothing) as no zoom, and widens a tiny drag to the narrowest zoom", () => {
    expect(zoomFromDrag(2_000_000, 2_000_200, WINDOW)).toBeNull();
    const tiny = zoomFromDrag(2_000_000, 2_002_000, WINDOW)!;
    expect(tiny[1] - tiny[0]).toBe(MIN_ZOOM_MS);
    expect(tiny[0]).toBeLessThanOrEqual(2_000_000);
    expect(tiny[1]).toBeGreaterThanOrEqual(2_002_000);
  });

  it("pans by half the zoom's width and stops at the window's edges, keeping the width", () => {
    expect(panZoom([2_000_000, 2_600_000], -1, WINDOW)).toEqual([1_700_000, 2_300_000]);
    expect(panZoom([1_100_000, 1_700_000], -1, WINDOW)).toEqual([1_000_000, 1_600_000]);
    expect(panZoom([1_000_000, 1_600_000], -1, WINDOW)).toBeNull();
    expect(panZoom([4_000_000, 4_500_000], 1, WINDOW)).toEqual([4_100_000, 4_600_000]);
    expect(panZoom([4_100_000, 4_600_000], 1, WINDOW)).toBeNull();
  });
});

describe("keyboard read-out steps (issue 14)", () => {
  const xs = [10, 11, 12, 13, 14, 15];
  const ys = [1, 2, null, 4, 5, 6];

  it("starts at the newest point going left and the oldest going right", () => {
    expect(stepPoint(xs, ys, null, -1, [0, 100])).toBe(5);
    expect(stepPoint(xs, ys, null, 1, [0, 100])).toBe(0);
  });

  it("moves point by point, skipping the nulls that draw gaps, and stays at the ends", () => {
    expect(stepPoint(xs, ys, 3, -1, [0, 100])).toBe(1);
    expect(stepPoint(xs, ys, 1, 1, [0, 100])).toBe(3);
    expect(stepPoint(xs, ys, 0, -1, [0, 100])).toBe(0);
    expect(stepPoint(xs, ys, 5, 1, [0, 100])).toBe(5);
  });

  it("keeps to the span shown (a zoom)", () => {
    expect(stepPoint(xs, ys, null, -1, [10, 13.5])).toBe(3);
    expect(stepPoint(xs, ys, 1, -1, [11, 14])).toBe(1);
    expect(stepPoint(xs, ys, null, 1, [20, 30])).toBeNull();
  });
});

describe("alert marks (issue 14)", () => {
  it("marks raises and clears inside the window, oldest first, once per alert", () => {
    const a1 = alert(1, "too-warm", 1_500_000, 1_800_000);
    const a2 = alert(2, "silent", 500_000, 1_200_000); // raised before the window, cleared inside it
    const a3 = alert(3, "too-warm", 2_000_000);
    expect(alertMarks([a3, a1, a2, a1], WINDOW)).toEqual([
      { ts: 1_200_000, kind: "cleared", rule: "silent", message: "silent message" },
      { ts: 1_500_000, kind: "raised", rule: "too-warm", message: "too-warm message" },
      { ts: 1_800_000, kind: "cleared", rule: "too-warm", message: "too-warm message" },
      { ts: 2_000_000, kind: "raised", rule: "too-warm", message: "too-warm message" },
    ]);
    expect(alertMarks([alert(4, "old", 100, 200)], WINDOW)).toEqual([]);
    expect(describeMark({ ts: 1, kind: "raised", rule: "too-warm", message: "" })).toBe("Alert too-warm raised");
  });
});

describe("remembered range (issue 14)", () => {
  it("restores a known key and falls back to the default for anything else", () => {
    expect(rangeFromKey("7d", DEFAULT_RANGE)).toBe(RANGES.find((r) => r.key === "7d"));
    expect(rangeFromKey("15m", DEFAULT_RANGE).ms).toBe(15 * 60_000);
    for (const junk of [null, undefined, "", "2y", "__proto__"]) expect(rangeFromKey(junk, DEFAULT_RANGE)).toBe(DEFAULT_RANGE);
  });
});
