/**
 * The REST calls the dashboard makes, each answer parsed with a schema.
 * A 401 anywhere means the session is gone: it is reported once through
 * `onUnauthorized` (the app shows the sign-in form) and thrown as `Unauthorized`.
 */
import * as z from "zod";
import { ApiError, AuditPage, DevicesPage, LIMITS, Reading, SessionsList, TicketResponse } from "../../party/protocol";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
export class Unauthorized extends HttpError {}

let unauthorizedHandler: () => void = () => {};
/** Called whenever the endpoint answers 401: the app drops back to the sign-in form. */
export function onUnauthorized(handler: () => void): void {
  unauthorizedHandler = handler;
}

/** Exported for views with their own calls (alerts-view.ts). */
export async function request<T extends z.ZodType>(path: string, schema: T, init: RequestInit = {}): Promise<z.infer<T>> {
  const res = await fetch(path, {
    credentials: "same-origin",
    ...init,
    headers: { accept: "application/json", ...(init.body ? { "content-type": "application/json" } : {}), ...init.headers },
  });
  const json: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const err = ApiError.safeParse(json);
    const code = err.success ? err.data.error.code : "http_error";
    const message = err.success ? err.data.error.message : `${path} answered ${res.status}`;
    if (res.status === 401) {
      unauthorizedHandler();
      throw new Unauthorized(401, code, message);
    }
    throw new HttpError(res.status, code, message);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new HttpError(res.status, "bad_answer", `${path}: the answer did not match its schema`);
  return parsed.data;
}

export type TicketAnswer = TicketResponse;

export type TicketTarget = { device: string };

/** A one-use, 60-second ticket to open a socket; fetched anew for every (re)connect. */
export function fetchTicket(target: TicketTarget): Promise<TicketAnswer> {
  return request("/api/tickets", TicketResponse, { method: "POST", body: JSON.stringify(target) });
}

/** What the fleet list asks for: a page of `limit` devices after `cursor` (null: the first), ids containing `q`, online or offline only (null: both). */
export type FleetQuery = { cursor: string | null; q: string; limit: number; online: boolean | null };

/** One page of the fleet (`GET /api/devices`). */
export function fetchDevices(query: FleetQuery, signal?: AbortSignal): Promise<DevicesPage> {
  const params = new URLSearchParams({ limit: String(query.limit) });
  if (query.cursor !== null) params.set("cursor", query.cursor);
  if (query.q) params.set("q", query.q);
  if (query.online !== null) params.set("online", String(query.online));
  return request(`/api/devices?${params}`, DevicesPage, { signal });
}

const ReadingsAnswer = z.object({ readings: z.array(Reading) });

/** Pages of history beyond which we stop: an hour at 10 Hz is 36,000 readings, which is plenty for a chart. */
const MAX_HISTORY_PAGES = 8;

/**
 * Readings of device `id` with seq > `after` and ts ≥ `since`, in seq order,
 * following pages until the room has no more (or MAX_HISTORY_PAGES).
 */
export async function fetchReadings(id: string, opts: { since: number; after?: number }): Promise<Reading[]> {
  const all: Reading[] = [];
  let after = opts.after ?? 0;
  for (let page = 0; page < MAX_HISTORY_PAGES; page++) {
    const query = new URLSearchParams({ since: String(Math.floor(opts.since)), after: String(after), limit: String(LIMITS.maxReadingsPage) });
    const { readings } = await request(`/api/devices/${encodeURIComponent(id)}/readings?${query}`, ReadingsAnswer);
    all.push(...readings);
    if (readings.length < LIMITS.maxReadingsPage) break;
    after = readings[readings.length - 1]!.seq;
  }
  return all;
}

/** One page of readings: `limit` readings with seq > `after` and (given) ts ≥ `since`, in seq order. */
export async function fetchReadingsPage(id: string, opts: { after: number; since?: number; limit: number }): Promise<Reading[]> {
  const query = new URLSearchParams({ after: String(opts.after), limit: String(opts.limit) });
  if (opts.since !== undefined) query.set("since", String(Math.floor(opts.since)));
  return (await request(`/api/devices/${encodeURIComponent(id)}/readings?${query}`, ReadingsAnswer)).readings;
}

/** Run `work` over `items`, at most `parallel` at a time (a sampled range is 150 small requests). */
export async function eachLimited<T>(items: readonly T[], parallel: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, worker));
}

/** A page of the audit trail, newest first (`GET /api/audit`, operators only); `cursor` from the previous page's `next`. */
export function fetchAudit(cursor: number | null, limit: number): Promise<AuditPage> {
  const params = new URLSearchParams({ limit: String(limit) });
  if (cursor !== null) params.set("cursor", String(cursor));
  return request(`/api/audit?${params}`, AuditPage);
}

/** Live sessions: the caller's own, or everyone's for an operator (`GET /api/sessions`). */
export function fetchSessions(): Promise<SessionsList> {
  return request("/api/sessions", SessionsList);
}

const RevokeAnswer = z.object({ id: z.string(), revoked: z.literal(true) });

/** End one session at once (`DELETE /api/sessions/:id`). */
export async function revokeSession(id: string): Promise<void> {
  await request(`/api/sessions/${encodeURIComponent(id)}`, RevokeAnswer, { method: "DELETE" });
}
