/**
 * The fleet registry: which devices exist and a summary of each (presence,
 * latest reading, firmware), for `GET /api/devices` and the dashboard's fleet
 * list. Each device's readings and commands stay in its own DeviceRoom; rooms
 * push summaries here, the registry never polls them.
 *
 * It is sharded so that no one object is a fleet-wide hot spot (docs/fleet.md
 * has the numbers): `FLEET_SHARDS` objects named `shard-0` … `shard-<N-1>`, a
 * device's shard chosen by a stable hash of its id. A page of the fleet asks
 * every shard for its first ids after the cursor and merges them by id.
 *
 * Read in the order a summary travels: fleetFor (which shard), FleetRegistry
 * (what a shard stores and answers), listDevices (a page, merged from all shards).
 */
import { DurableObject } from "cloudflare:workers";
import type { FleetPatch } from "./device-room";
import type { ActiveAlertsPage, AlertDefaults, DeviceSummary, DevicesPage, DevicesQuery } from "./protocol";

// ---------------------------------------------------------------------------
// 1. Which shard
// ---------------------------------------------------------------------------

/**
 * At FLEET_PUSH_MS = 2 s, 16 shards keep each under ~500 requests/s for ~16,000 devices
 * streaming live, or 100,000 that batch while unwatched (docs/fleet.md has the arithmetic).
 */
export const DEFAULT_FLEET_SHARDS = 16;
const MAX_FLEET_SHARDS = 256;

let parsedShards: { raw: string | undefined; n: number } | null = null;

/**
 * `FLEET_SHARDS` from wrangler.toml, checked once per isolate. Changing it moves
 * devices between shards: a deployed fleet must not change it without moving
 * the registry's rows (docs/fleet.md, "Changing the shard count").
 */
export function fleetShards(env: Env): number {
  const raw = env.FLEET_SHARDS;
  if (parsedShards?.raw === raw) return parsedShards.n;
  const n = raw === undefined || raw === "" ? DEFAULT_FLEET_SHARDS : Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_FLEET_SHARDS) {
    throw new Error(`var FLEET_SHARDS must be an integer from 1 to ${MAX_FLEET_SHARDS}, got ${JSON.stringify(raw)}`);
  }
  parsedShards = { raw, n };
  return n;
}

/**
 * FNV-1a (32-bit) of the id's UTF-16 code units; ids are ASCII (protocol's
 * DeviceId), so these are its bytes. Stable across runtimes and releases,
 * which is all a shard choice needs; it spreads similar ids (`pi-001`,
 * `pi-002`, …) evenly, as test/workerd/fleet.test.ts checks.
 */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The shard number (0 … shards-1) that holds a device. */
export function shardOf(deviceId: string, shards: number): number {
  return fnv1a(deviceId) % shards;
}

/**
 * The registry shard that holds a device. Rooms and the Worker reach the
 * registry only through this (and listDevices), so the sharding lives here.
 */
export function fleetFor(env: Env, deviceId: string): DurableObjectStub<FleetRegistry> {
  return shardStub(env, shardOf(deviceId, fleetShards(env)));
}

function shardStub(env: Env, shard: number): DurableObjectStub<FleetRegistry> {
  return env.FLEET.getByName(`shard-${shard}`);
}

// ---------------------------------------------------------------------------
// 2. One shard
// ---------------------------------------------------------------------------

type DeviceRow = {
  id: string;
  online: number;
  last_seen: number | null;
  ip: string | null;
  fw: string | null;
  scale: string | null;
  temperature: number | null;
  reading_ts: number | null;
  last_seq: number | null;
  registered_at: number;
  alerts: number;
  spark: string;
  spark_at: number | null;
};

/**
 * The sparkline each row carries: its last SPARK_POINTS temperatures, at most one per
 * SPARK_EVERY_MS of reading time, kept in the row itself as fixed-width text so the push
 * that already rewrites the row appends to it in the same statement (no read, no extra
 * row written, no request per row per poll). SPARK_WIDTH fits −100.0 … 400.0 (LIMITS).
 */
export const SPARK_POINTS = 24;
export const SPARK_EVERY_MS = 60_000;
const SPARK_WIDTH = 6;

/** What the Worker asks a shard for: up to `limit` matches after `after`, in id order, and how many match in all. */
export type ShardQuery = { after: string | null; limit: number; q: string | null; online: boolean | null };
export type ShardPage = { devices: DeviceSummary[]; count: number };

export class FleetRegistry extends DurableObject<Env> {
  readonly #sql: SqlStorage;
  /** The fleet-wide alert defaults' version, answered to every push (in memory: no read per push). */
  #alertDefaultsVersion: number;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS devices (
      id TEXT PRIMARY KEY, online INTEGER NOT NULL DEFAULT 0, last_seen INTEGER, ip TEXT, fw TEXT,
      scale TEXT, temperature REAL, reading_ts INTEGER, last_seq INTEGER, registered_at INTEGER NOT NULL)`);
    // Counts kept by triggers, so the unfiltered total and online counts of every page
    // read one row instead of scanning the shard (rows read are billed). They move only
    // when a device is added, removed or changes presence, never on a reading.
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS counts (one INTEGER PRIMARY KEY CHECK (one = 1),
      total INTEGER NOT NULL, online INTEGER NOT NULL)`);
    if (this.#sql.exec("SELECT 1 FROM counts").toArray().length === 0) {
      // First start with this table (a new shard, or one from before it existed): count once.
      this.#sql.exec("INSERT INTO counts SELECT 1, count(*), coalesce(sum(online), 0) FROM devices");
    }
    this.#sql.exec(`CREATE TRIGGER IF NOT EXISTS counts_insert AFTER INSERT ON devices BEGIN
      UPDATE counts SET total = total + 1, online = online + NEW.online; END`);
    this.#sql.exec(`CREATE TRIGGER IF NOT EXISTS counts_delete AFTER DELETE ON devices BEGIN
      UPDATE counts SET total = total - 1, online = online - OLD.online; END`);
    this.#sql.exec(`CREATE TRIGGER IF NOT EXISTS counts_presence AFTER UPDATE OF online ON devices
      WHEN NEW.online <> OLD.online BEGIN UPDATE counts SET online = online + NEW.online - OLD.online; END`);
    // Alerts not yet cleared per device (pushed by its room with its summary); a shard from
    // before alerts gets the column once.
    if (!this.#sql.exec<{ name: string }>("PRAGMA table_info(devices)").toArray().some((c) => c.name === "alerts")) {
      this.#sql.exec("ALTER TABLE devices ADD COLUMN alerts INTEGER NOT NULL DEFAULT 0");
    }
    // The sparkline (SPARK_POINTS): a shard from before it gets the columns once.
    if (!this.#sql.exec<{ name: string }>("PRAGMA table_info(devices)").toArray().some((c) => c.name === "spark")) {
      this.#sql.exec("ALTER TABLE devices ADD COLUMN spark TEXT NOT NULL DEFAULT ''");
      this.#sql.exec("ALTER TABLE devices ADD COLUMN spark_at INTEGER");
    }
    // The fleet-wide alert defaults: every shard holds a copy (written to all of them at once by
    // the Worker), so a room reads them from the shard it already pushes to (docs/alerts.md).
    this.#sql.exec("CREATE TABLE IF NOT EXISTS alert_defaults (one INTEGER PRIMARY KEY CHECK (one = 1), version INTEGER NOT NULL, rules TEXT NOT NULL)");
    this.#alertDefaultsVersion = this.#sql.exec<{ version: number }>("SELECT version FROM alert_defaults").toArray()[0]?.version ?? 0;
  }

  /** Make a device known (registration, provisioning). Idempotent. */
  register(id: string, ip: string | null = null): DeviceSummary {
    this.#sql.exec(
      `INSERT INTO devices (id, ip, registered_at) VALUES (?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET ip = COALESCE(excluded.ip, devices.ip)`,
      id,
      ip,
      Date.now(),
    );
    return this.get(id)!;
  }

  /**
   * A room's latest summary (at once on presence and state changes, at most every
   * FLEET_PUSH_MS for readings). Registers the device if it was not known yet.
   * Answers the alert defaults' version (from memory, no read): a room whose copy is older
   * asks for them (alertDefaults), so defaults reach every room that pushes, at no extra call.
   */
  update(id: string, patch: FleetPatch): number {
    this.#sql.exec(
      `INSERT INTO devices (id, online, last_seen, ip, fw, scale, temperature, reading_ts, last_seq, registered_at, alerts, spark, spark_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
         CASE WHEN ?7 IS NULL OR ?8 IS NULL THEN '' ELSE printf('%${SPARK_WIDTH}.1f', ?7) END,
         CASE WHEN ?7 IS NULL THEN NULL ELSE ?8 END)
       ON CONFLICT(id) DO UPDATE SET online = excluded.online, last_seen = excluded.last_seen,
         ip = COALESCE(excluded.ip, devices.ip), fw = COALESCE(excluded.fw, devices.fw),
         scale = COALESCE(excluded.scale, devices.scale),
         temperature = COALESCE(excluded.temperature, devices.temperature),
         reading_ts = COALESCE(excluded.reading_ts, devices.reading_ts),
         last_seq = COALESCE(excluded.last_seq, devices.last_seq), alerts = excluded.alerts,
         -- The sparkline: a new point once the reading is SPARK_EVERY_MS newer than the last
         -- point's; a change of unit starts it afresh (°F and °C on one line would be a cliff).
         spark = CASE
           WHEN ?7 IS NULL OR ?8 IS NULL THEN devices.spark
           WHEN ?6 IS NOT NULL AND ?6 IS NOT devices.scale THEN excluded.spark
           WHEN devices.spark_at IS NOT NULL AND ?8 < devices.spark_at + ${SPARK_EVERY_MS} THEN devices.spark
           ELSE substr(devices.spark || excluded.spark, -${SPARK_POINTS * SPARK_WIDTH}) END,
         spark_at = CASE
           WHEN ?7 IS NULL OR ?8 IS NULL THEN devices.spark_at
           WHEN ?6 IS NOT NULL AND ?6 IS NOT devices.scale THEN ?8
           WHEN devices.spark_at IS NOT NULL AND ?8 < devices.spark_at + ${SPARK_EVERY_MS} THEN devices.spark_at
           ELSE ?8 END`,
      id,
      patch.online ? 1 : 0,
      patch.lastSeen,
      patch.ip,
      patch.fw,
      patch.scale,
      patch.temperature,
      patch.readingTs,
      patch.lastSeq,
      Date.now(),
      patch.alerts,
    );
    return this.#alertDefaultsVersion;
  }

  /** This shard's copy of the fleet-wide alert defaults. */
  alertDefaults(): AlertDefaults {
    const row = this.#sql.exec<{ version: number; rules: string }>("SELECT version, rules FROM alert_defaults").toArray()[0];
    return row ? { version: row.version, rules: JSON.parse(row.rules) as AlertDefaults["rules"] } : { version: 0, rules: [] };
  }

  /** Replace this shard's copy (the Worker writes the same defaults to every shard). */
  setAlertDefaults(defaults: AlertDefaults): void {
    this.#sql.exec(
      "INSERT INTO alert_defaults (one, version, rules) VALUES (1, ?, ?) ON CONFLICT(one) DO UPDATE SET version = excluded.version, rules = excluded.rules",
      defaults.version,
      JSON.stringify(defaults.rules),
    );
    this.#alertDefaultsVersion = defaults.version;
  }

  /** Devices of this shard with alerts not yet cleared (a scan of the shard's rows; alerts are rare). */
  alerting(limit: number): ActiveAlertsPage {
    const devices = this.#sql
      .exec<Pick<DeviceRow, "id" | "alerts" | "online" | "last_seen">>("SELECT id, alerts, online, last_seen FROM devices WHERE alerts > 0 ORDER BY id LIMIT ?", limit)
      .toArray()
      .map((r) => ({ id: r.id, alerts: r.alerts, online: r.online === 1, lastSeen: r.last_seen }));
    const total = this.#sql.exec<{ n: number }>("SELECT count(*) AS n FROM devices WHERE alerts > 0").one().n;
    return { devices, total };
  }

  get(id: string): DeviceSummary | null {
    const row = this.#sql.exec<DeviceRow>("SELECT * FROM devices WHERE id = ?", id).toArray()[0];
    return row ? summaryFromRow(row) : null;
  }

  /** This shard's part of a page: its first `limit` matches after `after`, and its count of matches. */
  page(query: ShardQuery): ShardPage {
    const match = matchClause(query);
    const cursor = query.after === null ? [] : [{ sql: "id > ?", arg: query.after }];
    const page = whereClause([...match, ...cursor]);
    const devices = this.#sql
      .exec<DeviceRow>(`SELECT * FROM devices ${page.sql} ORDER BY id LIMIT ?`, ...page.args, query.limit)
      .toArray()
      .map(summaryFromRow);
    return { devices, count: this.#count(query, whereClause(match)) };
  }

  /** Forget a device (its room keeps its data until deleted separately). */
  remove(id: string): boolean {
    return this.#sql.exec("DELETE FROM devices WHERE id = ?", id).rowsWritten > 0;
  }

  #count(query: ShardQuery, match: Where): number {
    // A search scans the shard (a few thousand rows at 100,000 devices); the rest read the counts row.
    if (query.q) return this.#sql.exec<{ n: number }>(`SELECT count(*) AS n FROM devices ${match.sql}`, ...match.args).one().n;
    const { total, online } = this.#sql.exec<{ total: number; online: number }>("SELECT total, online FROM counts").one();
    return query.online === null ? total : query.online ? online : total - online;
  }
}

type Condition = { sql: string; arg: string | number };
type Where = { sql: string; args: (string | number)[] };

/** The filters of a query. `instr`, not LIKE: ids hold `_` (a LIKE wildcard), and LIKE patterns are capped at 50 bytes. */
function matchClause(query: ShardQuery): Condition[] {
  const conditions: Condition[] = [];
  if (query.q) conditions.push({ sql: "instr(lower(id), lower(?)) > 0", arg: query.q });
  if (query.online !== null) conditions.push({ sql: "online = ?", arg: query.online ? 1 : 0 });
  return conditions;
}

function whereClause(conditions: Condition[]): Where {
  return {
    sql: conditions.length ? `WHERE ${conditions.map((c) => c.sql).join(" AND ")}` : "",
    args: conditions.map((c) => c.arg),
  };
}

function summaryFromRow(row: DeviceRow): DeviceSummary {
  return {
    id: row.id,
    online: row.online === 1,
    lastSeen: row.last_seen,
    ip: row.ip,
    fw: row.fw,
    scale: row.scale === "F" || row.scale === "C" ? row.scale : null,
    temperature: row.temperature,
    readingTs: row.reading_ts,
    lastSeq: row.last_seq,
    registeredAt: row.registered_at,
    alerts: row.alerts ?? 0,
    spark: parseSpark(row.spark),
  };
}

/** The row's fixed-width sparkline text as numbers, oldest first. */
export function parseSpark(text: string | null | undefined): number[] {
  const points: number[] = [];
  for (let i = 0; text && i + SPARK_WIDTH <= text.length; i += SPARK_WIDTH) {
    const value = Number(text.slice(i, i + SPARK_WIDTH));
    if (Number.isFinite(value)) points.push(value);
  }
  return points;
}

// ---------------------------------------------------------------------------
// 3. A page of the whole fleet
// ---------------------------------------------------------------------------

/**
 * `GET /api/devices`: every shard is asked (in parallel) for its first
 * `limit + 1` matches after the cursor; merged by id, the first `limit` are
 * the page. The extra one says whether a next page exists: if all the shards
 * together had no more than `limit` matches left, each of them is exhausted.
 */
export async function listDevices(env: Env, query: DevicesQuery): Promise<DevicesPage> {
  const shardQuery: ShardQuery = {
    after: query.cursor ?? null,
    limit: query.limit + 1,
    q: query.q || null,
    online: query.online ?? null,
  };
  const shards = Array.from({ length: fleetShards(env) }, (_, i) => shardStub(env, i).page(shardQuery));
  const answers = await Promise.all(shards);
  // Plain code-unit order, as SQLite's default (BINARY) collation sorts the ids in each shard.
  const merged = answers.flatMap((a) => a.devices).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const devices = merged.slice(0, query.limit);
  return {
    devices,
    next: merged.length > query.limit ? devices[devices.length - 1]!.id : null,
    total: answers.reduce((sum, a) => sum + a.count, 0),
  };
}

// ---------------------------------------------------------------------------
// 4. Alerts across the fleet
// ---------------------------------------------------------------------------

/**
 * `PUT /api/alerts/defaults/…`: the new defaults to every shard, in parallel. Rooms learn the
 * new version with their next push (at once on a device's hello or presence change; with the
 * alarm's push otherwise) and fetch the rules from their shard then. Sixteen rows per change,
 * against no extra call per room per push: changes are rare, pushes are not.
 */
export async function setAlertDefaultsEverywhere(env: Env, defaults: AlertDefaults): Promise<void> {
  await Promise.all(Array.from({ length: fleetShards(env) }, (_, i) => shardStub(env, i).setAlertDefaults(defaults)));
}

/** The defaults as shard 0 holds them (every shard holds the same once a change has succeeded). */
export function alertDefaults(env: Env): Promise<AlertDefaults> {
  return shardStub(env, 0).alertDefaults();
}

/** `GET /api/alerts`: devices with alerts not yet cleared, merged by id from every shard. */
export async function listAlerting(env: Env, limit: number): Promise<ActiveAlertsPage> {
  const answers = await Promise.all(Array.from({ length: fleetShards(env) }, (_, i) => shardStub(env, i).alerting(limit)));
  const devices = answers.flatMap((a) => a.devices).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { devices: devices.slice(0, limit), total: answers.reduce((sum, a) => sum + a.total, 0) };
}
