/**
 * What one device costs a month on Cloudflare, from the rows and requests the
 * hub's rooms were measured to spend per reading, at Durable Objects' list
 * prices (Workers Paid plan, beyond the included monthly amounts, which are
 * per account and so no part of what one more device costs).
 *
 * Prices as read on 2026-12-01 from Cloudflare's Durable Objects pricing page,
 * https://developers.cloudflare.com/durable-objects/platform/pricing/ (through
 * a stored copy of the page and of its source in cloudflare/cloudflare-docs,
 * src/content/partials/workers/durable_objects_pricing.mdx and
 * storage_api_pricing.mdx):
 *   - requests: $0.15 / million; "HTTP requests, RPC sessions, WebSocket
 *     messages, and alarm invocations"; "a 20:1 ratio is applied to incoming
 *     WebSocket messages"; no charge for outgoing messages or protocol pings
 *   - duration: $12.50 / million GB-s, "for the 128 MB of memory your Durable
 *     Object is allocated", wall-clock while active; objects "idle and eligible
 *     for hibernation are not billed for duration"
 *   - SQLite storage: rows written $1.00 / million, rows read $0.001 / million
 *     ("Each setAlarm is billed as a single row written"); stored data
 *     $0.20 / GB-month (left out here: a retention question, not a per-reading one)
 * They match the figures issue 10 gives.
 */
export const PRICES = {
  url: "https://developers.cloudflare.com/durable-objects/platform/pricing/",
  read: "2026-12-01",
  requestsPerMillion: 0.15,
  wsMessagesPerRequest: 20,
  gbSecondsPerMillion: 12.5,
  memoryGb: 128 / 1024,
  rowsWrittenPerMillion: 1.0,
  rowsReadPerMillion: 0.001,
} as const;

/** A 30-day month of seconds: 2,592,000 readings at 1 Hz. */
export const MONTH_SECONDS = 30 * 24 * 3600;

export type PerReading = {
  /** SQLite rows written per stored reading. */
  rows: number;
  /** Chunks committed per stored reading: each is deleted once by retention when history is full (a row each). */
  chunks: number;
  /** Billed requests per stored reading (incoming frames / 20 + alarms + calls). */
  requests: number;
  /** Times the object ran per stored reading (incoming frames + alarms + calls, unweighted): what duration is billed on. */
  events: number;
};

export type DeviceMonth = {
  readings: number;
  rows: number;
  /** Measured requests plus heartbeat pings (see `deviceMonth`). */
  requests: number;
  /** Assumed: `billedMsPerEvent` of wall clock per event, hibernation-eligible in between. */
  duration: number;
  total: number;
  /** With retention's deletes once history is full: one more row per chunk. */
  steady: number;
  /** Duration alone if the object were never hibernation-eligible (a timer always pending, or no hibernation). */
  neverIdle: number;
};

/**
 * $ per device-month at `hz` readings a second. Heartbeat pings are answered by the runtime's
 * auto-response and never reach the room's counters; whether they are billed as incoming messages
 * the page does not say (it exempts protocol pings, and these are application frames), so they are
 * charged: `pingsPerSecond` of them at 20:1. Rows read are not counted (the rooms do not count
 * them); at $0.001 / million even 100 rows read per reading would add $0.0003.
 */
export function deviceMonth(per: PerReading, billedMsPerEvent: number, pingsPerSecond: number, hz = 1): DeviceMonth {
  const readings = MONTH_SECONDS * hz;
  const rows = (readings * per.rows * PRICES.rowsWrittenPerMillion) / 1e6;
  const pings = (MONTH_SECONDS * pingsPerSecond) / PRICES.wsMessagesPerRequest;
  const requests = ((readings * per.requests + pings) * PRICES.requestsPerMillion) / 1e6;
  const gbSeconds = ((readings * per.events * billedMsPerEvent) / 1000) * PRICES.memoryGb;
  const duration = (gbSeconds * PRICES.gbSecondsPerMillion) / 1e6;
  const neverIdle = (MONTH_SECONDS * PRICES.memoryGb * PRICES.gbSecondsPerMillion) / 1e6;
  const retention = (readings * per.chunks * PRICES.rowsWrittenPerMillion) / 1e6;
  const total = rows + requests + duration;
  return { readings, rows, requests, duration, total, steady: total + retention, neverIdle };
}

export const dollars = (v: number) => (Number.isNaN(v) ? "—" : v >= 1 ? `$${v.toFixed(2)}` : v >= 0.01 ? `$${v.toFixed(3)}` : `$${v.toFixed(5)}`);
