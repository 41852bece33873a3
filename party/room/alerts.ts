/**
 * Alerts: a device's rules (its own, plus the fleet-wide defaults it has not overridden),
 * evaluated in its room as readings arrive and from the room's one alarm, with each alert's
 * lifecycle (active → acknowledged → cleared) kept in the room's SQLite and every change sent
 * to a webhook (./webhooks.ts). docs/alerts.md is the long version.
 *
 * Read in the order a reading travels:
 *  1. onReadings: a frame's new readings against the threshold rules. In memory, no row
 *     written unless something changes state (a breach starts or ends, an alert is raised or
 *     cleared): the hot path costs a comparison per reading per rule, nothing more.
 *  2. Hysteresis and duration: an `above` breach starts at a reading over the threshold and
 *     ends only at one at or below `threshold − deadband`; it raises an alert once readings
 *     spanning `forMs` (by their own timestamps) have stayed in it. So noise within the
 *     deadband neither flaps an alert nor restarts the clock. The breach's start is kept in
 *     KV (a row when it starts or ends), since a hibernating room forgets its memory.
 *  3. check (the alarm, and presence changes): no-data (no reading arrived for `forMs`) and
 *     offline (`forMs` after the device went offline). nextDue says when the alarm must run
 *     for them; the room only ever moves its alarm earlier.
 *  4. raise / clear / acknowledge: one row each, a dashboard message, and a webhook delivery.
 *
 * Rule durations are measured by readings' own times for thresholds (so a batch that arrives
 * late still says how long the value stayed up), and by the room's clock for no-data and
 * offline (they are about arrivals, which only the room sees).
 */
import {
  ALERT_LIMITS,
  convert,
  type AlertDefaults,
  type AlertEvent,
  type AlertRecord,
  type AlertRule,
  type AlertRuleView,
  type DeviceAlerts,
  type Reading,
} from "../protocol";
import type { Meter } from "./meter";
import { WebhookOutbox, type WebhookSettings } from "./webhooks";
import { durationText } from "../duration";

/**
 * A threshold rule asks its device to send at least every quarter of its duration, but no
 * more often than every 10 s while nobody watches: a "for 0 s" rule would otherwise turn each
 * reading into its own frame and its own stored chunk (a row per reading).
 */
export const LATENCY_FRACTION = 4;
export const MIN_ALERT_BATCH_MS = 10_000;

export type AlertSettings = WebhookSettings & {
  /** Where alerts go when their rule names no webhook (ALERT_WEBHOOK_URL); null: only rules with their own. */
  webhookUrl: string | null;
};

function int(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`var ${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

/** The alert vars and secret, read once per room (wrangler.toml `[vars]`, ALERT_WEBHOOK_SECRET a secret). */
export function alertSettings(env: Env): AlertSettings {
  return {
    webhookUrl: env.ALERT_WEBHOOK_URL ? env.ALERT_WEBHOOK_URL : null,
    secret: env.ALERT_WEBHOOK_SECRET ? env.ALERT_WEBHOOK_SECRET : null,
    retryBaseMs: int(env.ALERT_RETRY_BASE_MS, 30_000, "ALERT_RETRY_BASE_MS"),
    timeoutMs: int(env.ALERT_WEBHOOK_TIMEOUT_MS, 10_000, "ALERT_WEBHOOK_TIMEOUT_MS"),
  };
}

/** What the room tells its alerts, and what they tell it back. */
export type AlertHooks = {
  device(): string;
  presence(): { online: boolean; lastSeen: number | null };
  /** An alert was raised, acknowledged or cleared: dashboards and the fleet row hear it. */
  changed(alert: AlertRecord): void;
  waitUntil(promise: Promise<unknown>): void;
  /** A deadline or a delivery's retry moved: the room's alarm may have to move earlier. */
  reschedule(): void;
};

type Effective = { rule: AlertRule; source: "device" | "default"; /** when it took effect here */ at: number };
type OwnRule = { rule: AlertRule; at: number };

type AlertRow = {
  id: number;
  rule: string;
  kind: string;
  status: string;
  message: string;
  since: number;
  raised: number;
  acked: number | null;
  acked_by: string | null;
  cleared: number | null;
  value: number | null;
  scale: string | null;
};

export class RoomAlerts {
  readonly webhooks: WebhookOutbox;
  readonly #sql: SqlStorage;
  readonly #kv: SyncKvStorage;
  readonly #meter: Meter;
  readonly #settings: AlertSettings;
  readonly #hooks: AlertHooks;
  #own: Map<string, OwnRule>;
  #defaults: AlertDefaults & { at: number };
  #effective: Effective[] = [];
  /** Threshold breaches timing their duration: rule id → the first breaching reading's time. */
  #pending: Record<string, number>;
  /** Alerts not yet cleared, by rule id (at most one per rule). */
  readonly #open = new Map<string, AlertRecord>();
  /** When the last reading arrived (room clock): what no-data counts from. No row for it. */
  #lastReadingAt: number | null;
  /** Readings older than the newest one evaluated (a gap filled late) do not move a breach back in time. */
  #evaluatedTs = Number.NEGATIVE_INFINITY;

  constructor(sql: SqlStorage, kv: SyncKvStorage, meter: Meter, settings: AlertSettings, hooks: AlertHooks, lastReadingAt: number | null) {
    this.#sql = sql;
    this.#kv = kv;
    this.#meter = meter;
    this.#settings = settings;
    this.#hooks = hooks;
    this.#lastReadingAt = lastReadingAt;
    this.webhooks = new WebhookOutbox(sql, meter, settings);
    sql.exec(`CREATE TABLE IF NOT EXISTS alerts (
      id INTEGER PRIMARY KEY, rule TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, message TEXT NOT NULL,
      since INTEGER NOT NULL, raised INTEGER NOT NULL, acked INTEGER, acked_by TEXT, cleared INTEGER, value REAL, scale TEXT)`);
    this.#own = new Map((kv.get<OwnRule[]>("alertRules") ?? []).map((r) => [r.rule.id, r]));
    this.#defaults = kv.get<AlertDefaults & { at: number }>("alertDefaults") ?? { version: 0, rules: [], at: 0 };
    this.#pending = kv.get<Record<string, number>>("alertPending") ?? {};
    for (const row of sql.exec<AlertRow>("SELECT * FROM alerts WHERE status != 'cleared'").toArray()) {
      this.#open.set(row.rule, this.#record(row));
    }
    this.#effective = this.#computeEffective();
  }

  // -------------------------------------------------------------------------
  // 1–2. Readings (the hot path)
  // -------------------------------------------------------------------------

  /** A frame's new readings, in seq order. Writes nothing unless a breach or an alert changes state. */
  onReadings(readings: readonly Reading[], now: number): void {
    if (readings.length === 0) return;
    this.#lastReadingAt = now;
    const silent = [...this.#open.values()].filter((a) => a.kind === "no-data");
    for (const alert of silent) this.#clear(alert, now);
    let pendingChanged = false;
    for (const { rule } of this.#effective) {
      if (rule.kind !== "above" && rule.kind !== "below") continue;
      const up = rule.kind === "above";
      for (const r of readings) {
        if (r.ts < this.#evaluatedTs) continue;
        const v = convert(r.temperature, r.scale, rule.scale);
        const breach = up ? v > rule.threshold : v < rule.threshold;
        const settled = up ? v <= rule.threshold - rule.deadband : v >= rule.threshold + rule.deadband;
        const open = this.#open.get(rule.id);
        if (open) {
          if (settled) this.#clear(open, now);
          continue;
        }
        let since = this.#pending[rule.id];
        if (since === undefined && breach) {
          since = this.#pending[rule.id] = r.ts;
          pendingChanged = true;
        } else if (since !== undefined && settled) {
          delete this.#pending[rule.id];
          pendingChanged = true;
          continue;
        }
        if (since !== undefined && r.ts - since >= rule.forMs) {
          delete this.#pending[rule.id];
          pendingChanged = true;
          const message = `${label(rule)}: ${round(v)} °${rule.scale} ${rule.kind} ${rule.threshold} °${rule.scale}${rule.forMs ? ` for ${durationText(rule.forMs)}` : ""}`;
          this.#raise(rule, since, now, message, round(v));
        }
      }
    }
    this.#evaluatedTs = Math.max(this.#evaluatedTs, readings[readings.length - 1]!.ts);
    if (pendingChanged) this.#putPending();
  }

  // -------------------------------------------------------------------------
  // 3. Time: no data, offline (the alarm and presence changes)
  // -------------------------------------------------------------------------

  /** Raise what is due and clear offline alerts of a device that is back; then send due webhooks. */
  check(now: number): void {
    const { online } = this.#hooks.presence();
    for (const e of this.#effective) {
      const open = this.#open.get(e.rule.id);
      if (e.rule.kind === "offline" && online && open) this.#clear(open, now);
      if (open || (e.rule.kind !== "no-data" && e.rule.kind !== "offline")) continue;
      const deadline = this.#deadline(e);
      if (deadline !== null && now >= deadline) {
        const since = deadline - e.rule.forMs;
        const message =
          e.rule.kind === "no-data"
            ? `${label(e.rule)}: no reading for ${durationText(e.rule.forMs)}`
            : `${label(e.rule)}: offline${e.rule.forMs ? ` for ${durationText(e.rule.forMs)}` : ""}`;
        this.#raise(e.rule, since, now, message, null);
      }
    }
    this.sendWebhooks(now);
  }

  /** The earliest time the alarm must run for a rule or a webhook retry (null: none). */
  nextDue(): number | null {
    let next = this.webhooks.nextAttemptAt() ?? Number.POSITIVE_INFINITY;
    for (const e of this.#effective) {
      if (this.#open.has(e.rule.id)) continue;
      const deadline = this.#deadline(e);
      if (deadline !== null) next = Math.min(next, deadline);
    }
    return Number.isFinite(next) ? next : null;
  }

  /** When a no-data or offline rule without an open alert would raise one, as things stand. */
  #deadline(e: Effective): number | null {
    if (e.rule.kind === "no-data") return Math.max(this.#lastReadingAt ?? 0, e.at) + e.rule.forMs;
    if (e.rule.kind === "offline") {
      const { online, lastSeen } = this.#hooks.presence();
      return online ? null : Math.max(lastSeen ?? 0, e.at) + e.rule.forMs;
    }
    return null;
  }

  /** Try due webhook deliveries off the caller's path; the alarm retries what fails. */
  sendWebhooks(now: number): void {
    const next = this.webhooks.nextAttemptAt();
    if (next === null || next > now) return;
    this.#hooks.waitUntil(
      this.webhooks.sendDue(now).then(
        () => this.#hooks.reschedule(),
        (err: unknown) => console.error(`room ${this.#hooks.device()}: webhook deliveries failed:`, err),
      ),
    );
  }

  // -------------------------------------------------------------------------
  // 4. Lifecycle
  // -------------------------------------------------------------------------

  #raise(rule: AlertRule, since: number, now: number, message: string, value: number | null): void {
    const scale = rule.kind === "above" || rule.kind === "below" ? rule.scale : null;
    const row = this.#sql
      .exec<AlertRow>(
        "INSERT INTO alerts (rule, kind, status, message, since, raised, value, scale) VALUES (?, ?, 'active', ?, ?, ?, ?, ?) RETURNING *",
        rule.id,
        rule.kind,
        message.slice(0, 300),
        since,
        now,
        value,
        scale,
      )
      .one();
    this.#meter.row();
    const alert = this.#record(row);
    this.#open.set(rule.id, alert);
    // Bounded history: the oldest cleared alerts go (open ones are at most one per rule).
    this.#meter.wrote(
      this.#sql.exec(
        "DELETE FROM alerts WHERE status = 'cleared' AND id <= (SELECT id FROM alerts ORDER BY id DESC LIMIT 1 OFFSET ?)",
        ALERT_LIMITS.keepAlerts,
      ),
    );
    console.log(`room ${this.#hooks.device()}: alert ${alert.id} raised: ${alert.message}`);
    this.#changed(alert, "alert.raised", rule, now);
  }

  #clear(alert: AlertRecord, now: number): void {
    this.#meter.wrote(this.#sql.exec("UPDATE alerts SET status = 'cleared', cleared = ? WHERE id = ?", now, alert.id));
    this.#open.delete(alert.rule);
    const cleared: AlertRecord = { ...alert, status: "cleared", clearedAt: now };
    console.log(`room ${this.#hooks.device()}: alert ${alert.id} cleared: ${alert.message}`);
    this.#changed(cleared, "alert.cleared", this.#rule(alert.rule), now);
  }

  /** An operator saw it. Idempotent (`changed` false the second time); a cleared alert stays cleared. */
  acknowledge(id: number, by: string, now: number): { alert: AlertRecord; changed: boolean } | "not_found" | "cleared" {
    const open = [...this.#open.values()].find((a) => a.id === id);
    if (!open) return this.#sql.exec("SELECT 1 FROM alerts WHERE id = ?", id).toArray().length ? "cleared" : "not_found";
    if (open.status === "acknowledged") return { alert: open, changed: false };
    this.#meter.wrote(this.#sql.exec("UPDATE alerts SET status = 'acknowledged', acked = ?, acked_by = ? WHERE id = ?", now, by, id));
    const acked: AlertRecord = { ...open, status: "acknowledged", acknowledgedAt: now, acknowledgedBy: by };
    this.#open.set(open.rule, acked);
    this.#changed(acked, "alert.acknowledged", this.#rule(open.rule), now);
    return { alert: acked, changed: true };
  }

  #changed(alert: AlertRecord, event: AlertEvent, rule: AlertRule | null, now: number): void {
    this.#hooks.changed(alert);
    const url = rule?.webhook ?? this.#settings.webhookUrl;
    if (!url) return;
    this.webhooks.enqueue({ event, delivery: crypto.randomUUID(), device: this.#hooks.device(), alert, rule, at: now }, url, now);
    this.sendWebhooks(now);
  }

  get activeCount(): number {
    return this.#open.size;
  }

  /** `GET /api/devices/:id/alerts`. */
  list(): DeviceAlerts {
    const active = [...this.#open.values()].sort((a, b) => b.id - a.id);
    const history = this.#sql
      .exec<AlertRow>("SELECT * FROM alerts WHERE status = 'cleared' ORDER BY id DESC LIMIT 50")
      .toArray()
      .map((row) => this.#record(row));
    return { active, history, deliveries: this.webhooks.recent(50) };
  }

  // -------------------------------------------------------------------------
  // Rules
  // -------------------------------------------------------------------------

  /** This device's own rules. */
  get ownRules(): AlertRule[] {
    return [...this.#own.values()].map((r) => r.rule);
  }

  get defaultsVersion(): number {
    return this.#defaults.version;
  }

  /** Add or replace one of this device's rules; false when it would be one too many. */
  setRule(rule: AlertRule, now: number): boolean {
    if (!this.#own.has(rule.id) && this.#own.size >= ALERT_LIMITS.maxRules) return false;
    this.#own.set(rule.id, { rule, at: now });
    this.#putOwn();
    this.#rulesChanged(now, rule.id);
    return true;
  }

  deleteRule(id: string, now: number): boolean {
    if (!this.#own.delete(id)) return false;
    this.#putOwn();
    this.#rulesChanged(now, id);
    return true;
  }

  /** The fleet-wide defaults, when their version differs from the cached one. True when they changed. */
  setDefaults(defaults: AlertDefaults, now: number): boolean {
    if (defaults.version === this.#defaults.version) return false;
    const before = new Map(this.#defaults.rules.map((r) => [r.id, JSON.stringify(r)]));
    this.#defaults = { ...defaults, at: now };
    this.#kv.put("alertDefaults", this.#defaults);
    this.#meter.row();
    const touched = new Set([...before.keys(), ...defaults.rules.map((r) => r.id)]);
    for (const id of touched) {
      const after = defaults.rules.find((r) => r.id === id);
      if (!after || before.get(id) !== JSON.stringify(after)) this.#rulesChanged(now, id);
    }
    return true;
  }

  /**
   * A rule changed: its breach timing starts over, and an open alert it can no longer end (the
   * rule is gone, off, or of another kind) is cleared now.
   */
  #rulesChanged(now: number, id: string): void {
    this.#effective = this.#computeEffective();
    if (id in this.#pending) {
      delete this.#pending[id];
      this.#putPending();
    }
    const open = this.#open.get(id);
    const rule = this.#rule(id);
    if (open && (!rule || rule.kind !== open.kind)) this.#clear(open, now);
    this.#hooks.reschedule();
  }

  /**
   * The bound this device should batch within while nobody watches, for its rules' sake
   * (Infinity: no rule asks). A threshold rule's alert can only be as early as the readings
   * that show it; a no-data rule must hear from a device more often than its duration, or it
   * would fire between two batches.
   */
  batchingBoundMs(): number {
    let bound = Number.POSITIVE_INFINITY;
    for (const { rule } of this.#effective) {
      if (rule.kind === "above" || rule.kind === "below") bound = Math.min(bound, Math.max(MIN_ALERT_BATCH_MS, Math.floor(rule.forMs / LATENCY_FRACTION)));
      if (rule.kind === "no-data") bound = Math.min(bound, Math.floor(rule.forMs / LATENCY_FRACTION));
    }
    return bound;
  }

  /** Every rule this device has (its own, and defaults not overridden), with its effective latency. */
  views(ctx: { unwatchedBatchingMs: number; heartbeatTimeoutMs: number; unwatchedCheckMs: number }): AlertRuleView[] {
    const shown = [
      ...this.ownRules.map((rule) => ({ rule, source: "device" as const })),
      ...this.#defaults.rules.filter((r) => !this.#own.has(r.id)).map((rule) => ({ rule, source: "default" as const })),
    ];
    return shown.map(({ rule, source }) => ({ rule, source, ...latencyOf(rule, ctx) }));
  }

  #computeEffective(): Effective[] {
    const own = [...this.#own.values()].map(({ rule, at }) => ({ rule, source: "device" as const, at }));
    const defaults = this.#defaults.rules.filter((r) => !this.#own.has(r.id)).map((rule) => ({ rule, source: "default" as const, at: this.#defaults.at }));
    return [...own, ...defaults].filter((e) => e.rule.enabled);
  }

  #rule(id: string): AlertRule | null {
    return this.#effective.find((e) => e.rule.id === id)?.rule ?? null;
  }

  #putOwn(): void {
    this.#kv.put("alertRules", [...this.#own.values()]);
    this.#meter.row();
  }

  #putPending(): void {
    this.#kv.put("alertPending", this.#pending);
    this.#meter.row();
  }

  #record(row: AlertRow): AlertRecord {
    return {
      id: row.id,
      device: this.#hooks.device(),
      rule: row.rule,
      kind: row.kind as AlertRecord["kind"], // written by #raise from a parsed rule
      status: row.status as AlertRecord["status"],
      message: row.message,
      since: row.since,
      raisedAt: row.raised,
      acknowledgedAt: row.acked,
      acknowledgedBy: row.acked_by,
      clearedAt: row.cleared,
      value: row.value,
      scale: row.scale === "F" || row.scale === "C" ? row.scale : null,
    };
  }
}

/** How late a rule's alert can be, beyond its own duration, as the room runs now. */
export function latencyOf(
  rule: AlertRule,
  ctx: { unwatchedBatchingMs: number; heartbeatTimeoutMs: number; unwatchedCheckMs: number },
): { latencyMs: number; latency: string } {
  if (!rule.enabled) return { latencyMs: 0, latency: "off: not evaluated" };
  const after = rule.forMs ? ` after the ${durationText(rule.forMs)}` : "";
  switch (rule.kind) {
    case "above":
    case "below":
      return {
        latencyMs: ctx.unwatchedBatchingMs,
        latency: `≤ ${durationText(ctx.unwatchedBatchingMs)}${after}: the device sends at least every ${durationText(ctx.unwatchedBatchingMs)} while nobody watches, at once while watched`,
      };
    case "no-data":
      return { latencyMs: 0, latency: `at the deadline: an alarm ${durationText(rule.forMs)} after the last reading arrived` };
    case "offline": {
      const halfOpen = ctx.heartbeatTimeoutMs + ctx.unwatchedCheckMs;
      return {
        latencyMs: halfOpen,
        latency: `at once${after} when the device disconnects; ≤ ${durationText(halfOpen)}${after} when its connection dies silently (heartbeat time-out + presence check)`,
      };
    }
  }
}

function label(rule: AlertRule): string {
  return rule.name ?? rule.id;
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}
