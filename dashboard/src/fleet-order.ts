/**
 * The fleet list's pure parts: how a page is sorted, the sparkline's path, and
 * what the sparkline says in words. No DOM; unit-tested in Node
 * (test/node/dashboard-fleet.test.ts).
 *
 * Why sorting happens within the page: the API pages in id order with a cursor on
 * the id, merged from 16 shards. Paging by last seen or temperature would need an
 * index on a column every push rewrites (one more row written per push, for every
 * device, all day) or a scan of every shard per refresh; a sort of the 50 rows shown
 * costs nothing. The filter (online / offline) and the search go to the API and
 * cover the whole fleet.
 */
import type { DeviceSummary, Scale } from "../../party/protocol";
import { formatNumber, unit } from "./format";

export const SORTS = [
  { key: "id", label: "Id (A–Z)" },
  { key: "seen-new", label: "Seen, most recent" },
  { key: "seen-old", label: "Seen, longest ago" },
  { key: "temp-high", label: "Temperature, highest" },
  { key: "temp-low", label: "Temperature, lowest" },
  { key: "alerts", label: "Alerts first" },
] as const;
export type FleetSort = (typeof SORTS)[number]["key"];

export function isFleetSort(value: string): value is FleetSort {
  return SORTS.some((s) => s.key === value);
}

const byId = (a: DeviceSummary, b: DeviceSummary) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * The page's devices in `sort` order. Missing values (never seen, no reading) go last
 * whichever way a column is sorted; ties keep id order, so rows do not jump between refreshes.
 */
export function sortPage(devices: readonly DeviceSummary[], sort: FleetSort): DeviceSummary[] {
  const rows = [...devices];
  const last = (a: number | null, b: number | null, desc: boolean) =>
    a === null && b === null ? 0 : a === null ? 1 : b === null ? -1 : desc ? b - a : a - b;
  const compare: Record<FleetSort, (a: DeviceSummary, b: DeviceSummary) => number> = {
    id: () => 0,
    "seen-new": (a, b) => last(a.lastSeen, b.lastSeen, true),
    "seen-old": (a, b) => last(a.lastSeen, b.lastSeen, false),
    // Celsius and Fahrenheit rows compared on one scale.
    "temp-high": (a, b) => last(inC(a), inC(b), true),
    "temp-low": (a, b) => last(inC(a), inC(b), false),
    alerts: (a, b) => b.alerts - a.alerts,
  };
  return rows.sort((a, b) => compare[sort](a, b) || byId(a, b));
}

function inC(d: DeviceSummary): number | null {
  if (d.temperature === null) return null;
  return d.scale === "F" ? ((d.temperature - 32) * 5) / 9 : d.temperature;
}

/**
 * An SVG path for `values` in a `width` × `height` box (1 px inset so a flat line is not
 * clipped), or "" when there is no line to draw (fewer than two points). A flat series
 * draws mid-height; the y range is the data's own, at least 1 degree, so noise of a
 * tenth does not look like a storm.
 */
export function sparkPath(values: readonly number[], width: number, height: number): string {
  if (values.length < 2) return "";
  let min = Math.min(...values);
  let max = Math.max(...values);
  if (max - min < 1) {
    const mid = (max + min) / 2;
    min = mid - 0.5;
    max = mid + 0.5;
  }
  const step = (width - 2) / (values.length - 1);
  const y = (v: number) => 1 + (height - 2) * (1 - (v - min) / (max - min));
  return values.map((v, i) => `${i === 0 ? "M" : "L"}${(1 + i * step).toFixed(1)} ${y(v).toFixed(1)}`).join("");
}

/** The sparkline in words, for its accessible name: "last 24 points, 68.2 to 70.1 °F, rising". */
export function describeSpark(values: readonly number[], scale: Scale | null): string {
  if (values.length < 2 || !scale) return "no trend yet";
  const min = Math.min(...values);
  const max = Math.max(...values);
  const delta = values[values.length - 1]! - values[0]!;
  // Within half a degree either way, a sensor's noise: "steady".
  const trend = Math.abs(delta) < 0.5 ? "steady" : delta > 0 ? "rising" : "falling";
  return `last ${values.length} points, ${formatNumber(min)} to ${formatNumber(max)} ${unit(scale)}, ${trend}`;
}
