/**
 * Webhook deliveries of a room's alerts: a durable outbox, one row per event to deliver, tried
 * off the ingestion path (ctx.waitUntil right after the event, then the room's alarm for
 * retries), each attempt recorded in the row so the API can show what happened.
 *
 * Read in the order a delivery travels: enqueue (the row, with its body fixed once), due (what
 * the alarm or the event sends now), send (sign, POST, time-out), record (delivered, or the next
 * try with exponential backoff, or failed after MAX_ATTEMPTS).
 *
 * The signature (docs/alerts.md has verification code): header
 * `X-IoT-Signature: t=<ms since epoch>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. The time
 * is the attempt's, so a receiver can refuse old or replayed requests (5 min is a sensible
 * window); `X-IoT-Delivery` is the same on every retry of one event, so it can also drop repeats.
 */
import type { AlertEvent, DeliveryAttempt, WebhookDelivery, WebhookPayload } from "../protocol";
import { ALERT_LIMITS } from "../protocol";
import type { Meter } from "./meter";

/** Tries per event: with the default 30 s base, the last goes ~64 min after the first (30 s · (2⁷ − 1); each wait capped at 1 h). */
export const MAX_ATTEMPTS = 8;
const MAX_BACKOFF_MS = 3_600_000;

export const SIGNATURE_HEADER = "x-iot-signature";
export const DELIVERY_HEADER = "x-iot-delivery";
export const EVENT_HEADER = "x-iot-event";

export type WebhookSettings = {
  /** Secret the signature is made with; null: nothing is sent (each delivery fails, saying why). */
  secret: string | null;
  /** First retry this long after a failure, doubling each time. */
  retryBaseMs: number;
  /** An attempt that has no answer by then counts as failed (and is retried). */
  timeoutMs: number;
};

type DeliveryRow = {
  id: string;
  alert: number;
  event: string;
  url: string;
  body: string;
  status: string;
  attempts: string;
  next_at: number | null;
  created: number;
};

const encoder = new TextEncoder();

/** `v1=` of the signature header: hex HMAC-SHA256 of `<t>.<body>` with `secret`. Receivers compute the same. */
export async function signWebhook(secret: string, t: number, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${t}.${body}`));
  return [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export class WebhookOutbox {
  readonly #sql: SqlStorage;
  readonly #meter: Meter;
  readonly #settings: WebhookSettings;
  /** Deliveries being tried by this instance: the alarm and an event's waitUntil never send one twice at once. */
  readonly #inFlight = new Set<string>();
  /** Earliest pending try, once asked (undefined: ask SQLite). */
  #nextAt: number | null | undefined;

  constructor(sql: SqlStorage, meter: Meter, settings: WebhookSettings) {
    this.#sql = sql;
    this.#meter = meter;
    this.#settings = settings;
    sql.exec(`CREATE TABLE IF NOT EXISTS alert_deliveries (
      id TEXT PRIMARY KEY, alert INTEGER NOT NULL, event TEXT NOT NULL, url TEXT NOT NULL, body TEXT NOT NULL,
      status TEXT NOT NULL, attempts TEXT NOT NULL, next_at INTEGER, created INTEGER NOT NULL)`);
  }

  /** A delivery of one event, due now. Prunes the oldest finished ones past ALERT_LIMITS.keepDeliveries. */
  enqueue(payload: WebhookPayload, url: string, now: number): void {
    this.#meter.wrote(
      this.#sql.exec(
        "INSERT INTO alert_deliveries (id, alert, event, url, body, status, attempts, next_at, created) VALUES (?, ?, ?, ?, ?, 'pending', '[]', ?, ?)",
        payload.delivery,
        payload.alert.id,
        payload.event,
        url,
        JSON.stringify(payload),
        now,
        now,
      ),
    );
    this.#nextAt = undefined;
    this.#meter.wrote(
      this.#sql.exec(
        `DELETE FROM alert_deliveries WHERE status != 'pending' AND id NOT IN
           (SELECT id FROM alert_deliveries ORDER BY created DESC, rowid DESC LIMIT ?)`,
        ALERT_LIMITS.keepDeliveries,
      ),
    );
  }

  /** When the next pending try is due (null: none). */
  nextAttemptAt(): number | null {
    if (this.#nextAt === undefined) {
      this.#nextAt = this.#sql.exec<{ t: number | null }>("SELECT MIN(next_at) AS t FROM alert_deliveries WHERE status = 'pending'").one().t;
    }
    return this.#nextAt;
  }

  /** Newest first. */
  recent(limit = 50): WebhookDelivery[] {
    return this.#sql
      .exec<DeliveryRow>("SELECT * FROM alert_deliveries ORDER BY created DESC, rowid DESC LIMIT ?", limit)
      .toArray()
      .map(deliveryFromRow);
  }

  /**
   * Try every delivery that is due, one after another (a room's alerts are few). Runs in
   * ctx.waitUntil or the alarm, never in a frame handler's synchronous path. Returns when done.
   */
  async sendDue(now: number): Promise<void> {
    const due = this.#sql
      .exec<DeliveryRow>("SELECT * FROM alert_deliveries WHERE status = 'pending' AND next_at <= ? ORDER BY created, rowid LIMIT 20", now)
      .toArray()
      .filter((row) => !this.#inFlight.has(row.id));
    for (const row of due) {
      this.#inFlight.add(row.id);
      try {
        const attempt = await this.#send(row);
        this.#record(row, attempt);
      } finally {
        this.#inFlight.delete(row.id);
      }
    }
  }

  async #send(row: DeliveryRow): Promise<DeliveryAttempt> {
    const at = Date.now();
    if (!this.#settings.secret) return { at, status: null, error: "ALERT_WEBHOOK_SECRET is not set: nothing unsigned is sent", ms: 0 };
    try {
      const signature = await signWebhook(this.#settings.secret, at, row.body);
      const res = await fetch(row.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "iot-edge-alerts/1",
          [SIGNATURE_HEADER]: `t=${at},v1=${signature}`,
          [DELIVERY_HEADER]: row.id,
          [EVENT_HEADER]: row.event,
        },
        body: row.body,
        redirect: "manual",
        signal: AbortSignal.timeout(this.#settings.timeoutMs),
      });
      // The answer's body is not needed; cancelling it frees the connection at once.
      await res.body?.cancel().catch(() => undefined);
      const ok = res.status >= 200 && res.status < 300;
      return { at, status: res.status, error: ok ? null : `answered ${res.status}`, ms: Date.now() - at };
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
      const error = timedOut ? `no answer within ${this.#settings.timeoutMs} ms` : err instanceof Error ? err.message : String(err);
      return { at, status: null, error: error.slice(0, 200), ms: Date.now() - at };
    }
  }

  /** One row written per attempt: the attempt appended, and delivered / next try / failed. */
  #record(row: DeliveryRow, attempt: DeliveryAttempt): void {
    const attempts = [...(JSON.parse(row.attempts) as DeliveryAttempt[]), attempt];
    const delivered = attempt.error === null;
    const failed = !delivered && (attempts.length >= MAX_ATTEMPTS || !this.#settings.secret);
    const status = delivered ? "delivered" : failed ? "failed" : "pending";
    const nextAt = status === "pending" ? attempt.at + Math.min(MAX_BACKOFF_MS, this.#settings.retryBaseMs * 2 ** (attempts.length - 1)) : null;
    this.#meter.wrote(
      this.#sql.exec("UPDATE alert_deliveries SET status = ?, attempts = ?, next_at = ? WHERE id = ?", status, JSON.stringify(attempts), nextAt, row.id),
    );
    this.#nextAt = undefined;
    if (!delivered) console.warn(`webhook ${row.event} ${row.id} to ${row.url}: attempt ${attempts.length} failed (${attempt.error})${nextAt ? `; next at ${new Date(nextAt).toISOString()}` : "; giving up"}`);
  }
}

function deliveryFromRow(row: DeliveryRow): WebhookDelivery {
  return {
    id: row.id,
    alert: row.alert,
    event: row.event as AlertEvent, // written by enqueue() from a parsed payload
    url: row.url,
    status: row.status as WebhookDelivery["status"],
    attempts: JSON.parse(row.attempts) as DeliveryAttempt[],
    nextAttemptAt: row.next_at,
    createdAt: row.created,
  };
}
