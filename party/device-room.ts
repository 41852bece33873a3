/**
 * DeviceRoom: one Durable Object per device. The device's socket and any
 * number of dashboard sockets meet here (told apart by connection tags).
 *
 * It keeps, in its SQLite storage:
 *  - readings, idempotent by seq, acked up to the highest contiguous seq;
 *  - the device shadow (desired state the operator set, reported state the device sent);
 *  - commands with their queued → delivered → applied / failed / timed-out lifecycle;
 *  - presence (online, last seen), decided by heartbeats, not only close events.
 *
 * Read top to bottom as a lifecycle: constructor (rebuild from storage),
 * getConnectionTags, onConnect, onMessage, onClose, onAlarm, then the RPC
 * methods the Worker calls, then helpers.
 */
import { Server, type Connection, type ConnectionContext, type WSMessage } from "partyserver";
import {
  DashboardMessage,
  applyCommand,
  parseDeviceFrame,
  PING,
  PONG,
  errorMessage,
  parseFrame,
  type CommandBody,
  type CommandRecord,
  type CommandStatus,
  type DesiredState,
  type DeviceState,
  type Reading,
  type ReadingsQuery,
  type ReportedState,
  type ToDashboardMessage,
  type ToDeviceMessage,
} from "./protocol";
import { TICKET_HEADERS, admitSocket, ensureNonceTable, refuse } from "./admission";
import { roomSettings, type RoomSettings } from "./settings";

/** Connection roles. The Worker decides the role (from the ticket) and passes it in a header. */
export type Role = "device" | "dashboard";

/** Close codes the room uses (4000–4999 are the application's). */
export const CLOSE = {
  heartbeatTimeout: 4000,
  replaced: 4001,
  helloRequired: 4002,
  revoked: 4003,
  /** Standard "policy violation": a flood of frames far beyond the rate limit. */
  flood: 1008,
} as const;

/** Readings a dashboard gets in its snapshot; the chart's history comes from the readings API. */
const SNAPSHOT_READINGS = 120;
/** Commands kept for the dashboard's history; older ones are pruned. */
const KEEP_COMMANDS = 50;
/** Rows per multi-row INSERT (4 bound values each; well under SQLite's and the runtime's parameter limits). */
const INSERT_ROWS = 25;
/** Legacy log lines are written together, at most this long after the reading was stored… */
const LOG_FLUSH_MS = 50;
/** …or as soon as this many wait. */
const LOG_FLUSH_LINES = 500;
/** How often last-seen is written to storage while a device streams. */
const LAST_SEEN_PERSIST_MS = 10_000;

type StreamState = { id: string; offset: number };
/** Per-connection, small, survives hibernation (partyserver keeps it in the socket attachment). */
type DeviceConnectionState = { stream: StreamState };

export class DeviceRoom extends Server<Env> {
  static options = { hibernate: true };

  readonly settings: RoomSettings;
  #desired: DesiredState;
  #reported: ReportedState | null;
  /** Highest room seq stored with none missing at or below it. Persisted when it jumps a gap and on each alarm; rebuilt from the readings on start. */
  #acked: number;
  /** Highest room seq stored: when it equals the ack, an in-order frame moves the ack without a query. */
  #maxSeq: number;
  #lost: number;
  #stored: number;
  #lastSeen: number | null;
  #lastSeenPersisted = 0;
  #online: boolean;
  #ip: string | null;
  /** Stream of the current device connection (its outbox); maps device seq → room seq. */
  #stream: StreamState | null = null;
  /** Last time any frame arrived from the device; heartbeats are read from the runtime instead. */
  #lastFrameAt = Date.now();
  #lastFleetPush = 0;
  #fleetDirty = false;
  /** Frame budgets per connection id (token buckets); in memory, so a wake from hibernation starts afresh. */
  #buckets = new Map<string, Bucket>();
  /** Legacy log lines waiting to be written: one console.log per LOG_FLUSH_MS, not one per reading. */
  #logLines: string[] = [];
  #logTimer: ReturnType<typeof setTimeout> | undefined;
  /** The ack and lost count as last written, so an alarm writes them only when they moved. */
  #persisted: { acked: number; lost: number };
  /** A command was inserted since the last prune (in memory: a wake prunes once, harmlessly). */
  #commandsAdded = true;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.settings = roomSettings(env);
    // Synchronous SQLite: the schema and in-memory state are ready before any
    // fetch, RPC call, socket message or alarm runs, with or without hibernation.
    const sql = ctx.storage.sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS readings (
      seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, temperature REAL NOT NULL, scale TEXT NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS commands (
      id TEXT PRIMARY KEY, body TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
      created INTEGER NOT NULL, updated INTEGER NOT NULL, deadline INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS streams (id TEXT PRIMARY KEY, offset INTEGER NOT NULL, created INTEGER NOT NULL)`);
    ensureNonceTable(sql);
    const kv = ctx.storage.kv;
    this.#desired = kv.get<DesiredState>("desired") ?? {
      scale: this.settings.defaultScale,
      intervalMs: this.settings.defaultIntervalMs,
    };
    this.#reported = kv.get<ReportedState>("reported") ?? null;
    this.#acked = kv.get<number>("acked") ?? 0;
    this.#lost = kv.get<number>("lost") ?? 0;
    this.#persisted = { acked: this.#acked, lost: this.#lost };
    this.#lastSeen = kv.get<number>("lastSeen") ?? null;
    this.#ip = kv.get<string>("ip") ?? null;
    this.#stored = sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM readings").one().n;
    this.#maxSeq = sql.exec<{ m: number | null }>("SELECT MAX(seq) AS m FROM readings").one().m ?? 0;
    // Readings stored after the ack was last persisted move it on now.
    this.#advanceAck();
    const streamId = kv.get<string>("stream");
    if (streamId) {
      const row = sql.exec<{ offset: number }>("SELECT offset FROM streams WHERE id = ?", streamId).toArray()[0];
      if (row) this.#stream = { id: streamId, offset: row.offset };
    }
    // Online only if a device socket survived hibernation; the alarm re-checks its heartbeat.
    this.#online = this.#deviceConnections().length > 0;
    // Heartbeats are answered by the runtime without waking the room (see protocol.PING).
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
  }

  // -------------------------------------------------------------------------
  // Lifecycle
  // -------------------------------------------------------------------------

  /**
   * Admission, before partyserver accepts a socket: each ticket opens one
   * socket only, and a device ticket issued before its credentials were
   * rotated or revoked is worthless.
   */
  async fetch(request: Request): Promise<Response> {
    const refusal = admitSocket(request, this.ctx.storage.sql, (admission) => {
      if (admission.role !== "device") return null;
      const credential = this.#credential();
      return !credential.hash || admission.iat < credential.epoch
        ? refuse(401, "credentials_revoked", "this device's credentials were rotated or revoked")
        : null;
    });
    return refusal ?? super.fetch(request);
  }

  /** `["device"]`, or `["dashboard", "operator" | "viewer"]`: only operators may send commands. */
  getConnectionTags(_connection: Connection, context: ConnectionContext): string[] {
    const role = roleOf(context.request);
    if (role === "device") return ["device"];
    return ["dashboard", context.request.headers.get(TICKET_HEADERS.sub) === "operator" ? "operator" : "viewer"];
  }

  onConnect(connection: Connection, context: ConnectionContext): void {
    if (roleOf(context.request) === "device") {
      // One device socket per room: a reconnect replaces a stale (maybe half-open) one.
      for (const other of this.getConnections("device")) {
        if (other.id !== connection.id) closeQuietly(other, CLOSE.replaced, "replaced by a newer connection");
      }
      this.#lastFrameAt = Date.now();
      // Presence flips on `hello`, when the device has said who it is; until then it only holds a socket.
      this.#scheduleAlarm();
    } else {
      this.#sendTo(connection, {
        type: "snapshot",
        state: this.getState(),
        readings: this.#latestReadings(SNAPSHOT_READINGS),
      });
    }
  }

  onMessage(connection: Connection, raw: WSMessage): void {
    if (!this.#allowFrame(connection)) return;
    // partyserver does not await/catch us in hibernation mode: never let a frame throw.
    try {
      if (connection.tags.includes("device")) this.#onDeviceFrame(connection, raw);
      else this.#onDashboardFrame(connection, raw);
    } catch (err) {
      console.error(`room ${this.name}: frame failed:`, err);
      this.#sendTo(connection, errorMessage("internal", "the room could not process this frame"));
    }
  }

  onClose(connection: Connection): void {
    this.#buckets.delete(connection.id);
    if (connection.tags.includes("device") && this.#deviceConnections().length === 0) {
      this.#setOnline(false);
    }
  }

  onAlarm(): void {
    const now = Date.now();
    this.#checkHeartbeat(now);
    this.#expireCommands(now);
    this.#enforceRetention();
    if (this.#fleetDirty) this.#pushFleet(true);
    // Writes only what changed: an alarm every few seconds in every room that writes
    // each time is a commit each time, and the fleet's rooms share one disk.
    this.#persistLastSeen(now, false);
    this.#persistCounters();
    this.#scheduleAlarm();
  }

  // -------------------------------------------------------------------------
  // RPC: what the Worker calls
  // -------------------------------------------------------------------------

  /** `GET /iot/config`: remember the device's LAN address, answer its configuration. */
  register(ip: string): DesiredState {
    this.#ip = ip;
    this.ctx.storage.kv.put("ip", ip);
    this.#pushFleet(true, { ip });
    return this.#desired;
  }

  getState(): DeviceState {
    return {
      id: this.name,
      online: this.#online,
      lastSeen: this.#lastSeen,
      desired: this.#desired,
      reported: this.#reported,
      ackedSeq: this.#acked,
      lost: this.#lost,
      stored: this.#stored,
      commands: this.#recentCommands(),
    };
  }

  getReadings(query: ReadingsQuery): Reading[] {
    const rows =
      query.since === undefined
        ? this.ctx.storage.sql.exec<Reading>(
            "SELECT seq, ts, temperature, scale FROM readings WHERE seq > ? ORDER BY seq LIMIT ?",
            query.after,
            query.limit,
          )
        : this.ctx.storage.sql.exec<Reading>(
            "SELECT seq, ts, temperature, scale FROM readings WHERE seq > ? AND ts >= ? ORDER BY seq LIMIT ?",
            query.after,
            query.since,
            query.limit,
          );
    return rows.toArray();
  }

  /** `POST /iot/data` with a batch: stored exactly as readings over the socket are. */
  ingest(readings: Reading[]): { stored: number; ackedSeq: number } {
    const offset = this.#stream?.offset ?? 0;
    const stored = this.#storeReadings(readings, offset);
    return { stored, ackedSeq: this.#acked - offset };
  }

  /** A command from the REST API or a dashboard socket. Idempotent by id. */
  submitCommand(id: string, command: CommandBody): CommandRecord {
    const existing = this.#getCommand(id);
    if (existing) return existing;
    const now = Date.now();
    this.#desired = applyCommand(this.#desired, command);
    this.ctx.storage.kv.put("desired", this.#desired);
    this.ctx.storage.sql.exec(
      "INSERT INTO commands (id, body, status, error, created, updated, deadline) VALUES (?, ?, 'queued', NULL, ?, ?, ?)",
      id,
      JSON.stringify(command),
      now,
      now,
      now + this.settings.commandTimeoutMs,
    );
    this.#commandsAdded = true;
    this.#broadcastDashboards({ type: "state", desired: this.#desired, reported: this.#reported });
    const device = this.#onlineDevice();
    if (device) {
      this.#sendTo(device, { type: "command", id, command });
      this.#setCommandStatus(id, "delivered");
    } else {
      this.#broadcastDashboards({ type: "command-status", command: this.#getCommand(id)! });
    }
    this.#scheduleAlarm();
    return this.#getCommand(id)!;
  }

  // Credentials: only the SHA-256 of the device's secret is kept, here in its own
  // room, so checking a device token touches one device's storage and nothing shared.

  /** First credentials for this device; false if it already has live ones (rotate instead). */
  provision(hash: string): boolean {
    if (this.#credential().hash) return false;
    this.#setCredential(hash);
    return true;
  }

  /** New credentials; the old token and any socket opened with it stop working at once. */
  rotate(hash: string): boolean {
    if (!this.#credential().hash) return false;
    this.#setCredential(hash);
    this.#disconnectDevice("credentials rotated");
    return true;
  }

  /** No credentials: the device is cut off now and refused until provisioned again. */
  revoke(): boolean {
    const had = this.#credential().hash !== null;
    this.#setCredential(null);
    this.#disconnectDevice("credentials revoked");
    return had;
  }

  verifyCredential(hash: string): boolean {
    const stored = this.#credential().hash;
    return stored !== null && timingSafeEqualHex(stored, hash);
  }

  hasCredential(): boolean {
    return this.#credential().hash !== null;
  }

  // -------------------------------------------------------------------------
  // Device frames
  // -------------------------------------------------------------------------

  #onDeviceFrame(connection: Connection, raw: WSMessage): void {
    this.#lastFrameAt = Date.now();
    const parsed = parseDeviceFrame(raw);
    if (!parsed.ok) return this.#sendTo(connection, parsed.error);
    const msg = parsed.value;
    const stream = (connection.state as DeviceConnectionState | null)?.stream;
    if (msg.type !== "hello" && !stream) {
      return this.#sendTo(connection, errorMessage("hello_required", "send hello before anything else"));
    }
    switch (msg.type) {
      case "hello":
        return this.#onHello(connection, msg.stream, msg.oldest, msg.state);
      case "readings": {
        const offset = stream!.offset;
        // The frame's own text can go to the dashboards as it is (see #storeReadings).
        this.#storeReadings(msg.readings, offset, typeof raw === "string" ? raw : undefined);
        return this.#sendTo(connection, { type: "ack", seq: this.#acked - offset });
      }
      case "result":
        return this.#onCommandResult(msg.id, msg.ok, msg.error, msg.state);
      case "report":
        return this.#setReported(msg.state);
    }
  }

  #onHello(connection: Connection, streamId: string, oldest: number, state: ReportedState): void {
    this.#stream = this.#openStream(streamId);
    connection.setState({ stream: this.#stream } satisfies DeviceConnectionState);
    const offset = this.#stream.offset;
    // The agent says everything below `oldest` has left its outbox. What we do not hold
    // of that will never come: count it as lost (logged) and ack past it, or the agent
    // would wait forever for an ack it cannot earn.
    const floor = offset + oldest - 1;
    if (this.#acked < floor) {
      const held = this.ctx.storage.sql
        .exec<{ n: number }>("SELECT COUNT(*) AS n FROM readings WHERE seq > ? AND seq <= ?", this.#acked, floor)
        .one().n;
      const missing = floor - this.#acked - held;
      if (missing > 0) {
        this.#lost += missing;
        console.warn(`room ${this.name}: ${missing} readings below seq ${oldest} are gone from the agent's outbox; counted as lost`);
      }
      this.#acked = floor;
      this.#advanceAck();
      this.#persistCounters();
    }
    // One fleet update for the whole hello, not one for presence and one for state:
    // after an outage every device says hello at once, into the one registry.
    this.#setOnline(true, false);
    this.#setReported(state, false);
    this.#pushFleet(true);
    this.#sendTo(connection, { type: "desired", state: this.#desired });
    this.#sendTo(connection, { type: "ack", seq: this.#acked - offset });
    // Commands that waited for the device go now.
    for (const cmd of this.#recentCommands()) {
      if (cmd.status === "queued") {
        this.#sendTo(connection, { type: "command", id: cmd.id, command: cmd.command });
        this.#setCommandStatus(cmd.id, "delivered");
      }
    }
  }

  /**
   * A stream is one agent outbox. A new one (first boot, or an agent whose
   * state was wiped and restarts at seq 1) continues after everything stored,
   * so the room's seq stays monotonic and nothing old is overwritten or hidden.
   */
  #openStream(id: string): StreamState {
    const sql = this.ctx.storage.sql;
    const row = sql.exec<{ offset: number }>("SELECT offset FROM streams WHERE id = ?", id).toArray()[0];
    if (row) return this.#rememberStream({ id, offset: row.offset });
    const max = sql.exec<{ m: number | null }>("SELECT MAX(seq) AS m FROM readings").one().m ?? 0;
    const offset = Math.max(max, this.#acked);
    if (offset > this.#acked) {
      // Readings the old stream never delivered: say so, then start clean after them.
      const held = sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM readings WHERE seq > ?", this.#acked).one().n;
      this.#lost += offset - this.#acked - held;
      this.#acked = offset;
      this.#persistCounters();
    }
    sql.exec("INSERT INTO streams (id, offset, created) VALUES (?, ?, ?)", id, offset, Date.now());
    if (offset > 0) console.warn(`room ${this.name}: new agent stream ${id}; its seq 1 is stored as ${offset + 1}`);
    return this.#rememberStream({ id, offset });
  }

  #rememberStream(stream: StreamState): StreamState {
    this.ctx.storage.kv.put("stream", stream.id);
    return stream;
  }

  /**
   * Insert idempotently by seq, advance the ack, log, fan out what is new.
   * Returns how many were new.
   *
   * `frame`: the device's frame text, validated as `readings`. A validated
   * device readings frame is also a valid dashboard `readings` message (the
   * same two keys, the same strict readings), so when its seqs need no offset
   * it is forwarded as received, not parsed data serialised again.
   */
  #storeReadings(readings: Reading[], offset: number, frame?: string): number {
    const sql = this.ctx.storage.sql;
    const fresh: Reading[] = [];
    // The usual frame: seqs rising, all above everything stored, so all new, known
    // without asking SQLite. Those go to the dashboards first, before this frame's
    // write: a message sent while a write is pending waits for its commit (the output
    // gate, an fsync on local disk), and a dashboard need not wait for durability.
    // The device's ack still goes after the write, so it never precedes it; if the
    // write failed, the device resends and dashboards drop the repeat by seq.
    let above = this.#maxSeq;
    for (const r of readings) {
      const seq = offset + r.seq;
      if (seq <= above) {
        above = -1;
        break;
      }
      above = seq;
    }
    const knownFresh = above > 0;
    // No explicit transaction: every write of one event (this frame) is already one
    // implicit transaction, committed before the ack leaves (the output gate).
    if (knownFresh) {
      for (const r of readings) fresh.push(offset ? { ...r, seq: offset + r.seq } : r);
      this.#broadcastDashboards(frame !== undefined && offset === 0 ? frame : { type: "readings", readings: fresh });
      // All new: a few multi-row INSERTs instead of one statement per reading.
      for (let i = 0; i < fresh.length; i += INSERT_ROWS) {
        const rows = fresh.slice(i, i + INSERT_ROWS);
        sql.exec(
          `INSERT OR IGNORE INTO readings (seq, ts, temperature, scale) VALUES ${rows.map(() => "(?, ?, ?, ?)").join(", ")}`,
          ...rows.flatMap((r) => [r.seq, r.ts, r.temperature, r.scale]),
        );
      }
    } else {
      // Some may be stored already (a resend, a gap filled): one by one, keeping the new.
      for (const r of readings) {
        const seq = offset + r.seq;
        const cursor = sql.exec("INSERT OR IGNORE INTO readings (seq, ts, temperature, scale) VALUES (?, ?, ?, ?)", seq, r.ts, r.temperature, r.scale);
        if (cursor.rowsWritten > 0) fresh.push(offset ? { ...r, seq } : r);
      }
    }
    if (fresh.length === 0) return 0;
    fresh.sort((a, b) => a.seq - b.seq);
    this.#stored += fresh.length;
    this.#maxSeq = Math.max(this.#maxSeq, fresh[fresh.length - 1]!.seq);
    // In order, as nearly always: the ack moves over the fresh readings without a query.
    let acked = this.#acked;
    for (const r of fresh) {
      if (r.seq === acked + 1) acked = r.seq;
      else if (r.seq > acked + 1) break;
    }
    this.#acked = acked;
    // A gap was filled (readings beyond it are stored): walk the table from here.
    if (this.#maxSeq > this.#acked) this.#advanceAck();
    const now = Date.now();
    this.#touch(now);
    if (this.settings.logReadings) {
      // The old endpoint's line, byte for byte in its first four keys, then the device id:
      // JSON.stringify of {temperature, scale, ipaddr, ts, id}, built with the constant part once.
      const ipaddr = JSON.stringify(this.#ip ?? "");
      const id = JSON.stringify(this.name);
      for (const r of fresh) {
        this.#log(`{"temperature":"${r.temperature.toFixed(2)}","scale":"${r.scale}","ipaddr":${ipaddr},"ts":${r.ts},"id":${id}}`);
      }
    }
    if (!knownFresh) this.#broadcastDashboards({ type: "readings", readings: fresh });
    this.#fleetDirty = true;
    this.#pushFleet(false);
    return fresh.length;
  }

  /** Walk the ack forward over stored seqs with no gap, a page at a time. */
  #advanceAck(): void {
    const PAGE = 1000;
    for (;;) {
      const next = this.ctx.storage.sql.exec<{ seq: number }>("SELECT seq FROM readings WHERE seq > ? ORDER BY seq LIMIT ?", this.#acked, PAGE);
      let rows = 0;
      for (const { seq } of next) {
        rows++;
        if (seq !== this.#acked + 1) return;
        this.#acked = seq;
      }
      if (rows < PAGE) return;
    }
  }

  /**
   * The legacy lines, written together: one console.log per LOG_FLUSH_MS (or
   * LOG_FLUSH_LINES), each line still the old endpoint's one-line JSON.
   */
  #log(line: string): void {
    this.#logLines.push(line);
    if (this.#logLines.length >= LOG_FLUSH_LINES) this.#flushLog();
    else this.#logTimer ??= setTimeout(() => this.#flushLog(), LOG_FLUSH_MS);
  }

  #flushLog(): void {
    if (this.#logTimer !== undefined) clearTimeout(this.#logTimer);
    this.#logTimer = undefined;
    if (this.#logLines.length === 0) return;
    console.log(this.#logLines.join("\n"));
    this.#logLines = [];
  }

  #onCommandResult(id: string, ok: boolean, error: string | undefined, state: ReportedState | undefined): void {
    if (state) this.#setReported(state);
    const cmd = this.#getCommand(id);
    if (!cmd) return console.warn(`room ${this.name}: result for unknown command ${id}`);
    // A late answer after a time-out still tells the truth about the device, so it wins.
    if (cmd.status === "applied" || cmd.status === "failed") return;
    this.#setCommandStatus(id, ok ? "applied" : "failed", ok ? undefined : (error ?? "device reported failure"));
  }

  #setReported(state: ReportedState, tellFleet = true): void {
    this.#reported = state;
    if (state.ip) this.#ip = state.ip;
    this.ctx.storage.kv.put("reported", state);
    this.#broadcastDashboards({ type: "state", desired: this.#desired, reported: state });
    if (tellFleet) this.#pushFleet(true, { fw: state.fw, ip: this.#ip });
  }

  // -------------------------------------------------------------------------
  // Dashboard frames
  // -------------------------------------------------------------------------

  #onDashboardFrame(connection: Connection, raw: WSMessage): void {
    const parsed = parseFrame(DashboardMessage, raw);
    if (!parsed.ok) return this.#sendTo(connection, parsed.error);
    if (!connection.tags.includes("operator")) {
      return this.#sendTo(connection, errorMessage("forbidden", "viewers cannot send commands"));
    }
    const msg = parsed.value;
    const record = this.submitCommand(msg.id, msg.command);
    // The sender always hears back, even if it reused an id whose command already finished.
    this.#sendTo(connection, { type: "command-status", command: record });
  }

  // -------------------------------------------------------------------------
  // Presence, alarms, retention
  // -------------------------------------------------------------------------

  #checkHeartbeat(now: number): void {
    for (const ws of this.#deviceConnections()) {
      const pinged = this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
      const lastHeard = Math.max(pinged, this.#lastFrameAt);
      if (now - lastHeard > this.settings.heartbeatTimeoutMs) {
        console.warn(`room ${this.name}: device silent for ${now - lastHeard} ms; closing its socket as half-open`);
        closeQuietly(ws, CLOSE.heartbeatTimeout, "heartbeat timeout");
      } else {
        this.#touch(Math.min(now, lastHeard));
      }
    }
    if (this.#online && !this.#onlineDevice()) this.#setOnline(false);
  }

  #setOnline(online: boolean, tellFleet = true): void {
    if (online) this.#touch(Date.now());
    if (online === this.#online) return;
    this.#online = online;
    this.#persistLastSeen(Date.now(), true);
    console.log(`room ${this.name}: device ${online ? "online" : "offline"}`);
    this.#broadcastDashboards({ type: "presence", online, lastSeen: this.#lastSeen });
    if (tellFleet) this.#pushFleet(true, { online, lastSeen: this.#lastSeen });
  }

  #touch(at: number): void {
    if (this.#lastSeen === null || at > this.#lastSeen) this.#lastSeen = at;
    this.#persistLastSeen(at, false);
  }

  #persistLastSeen(now: number, force: boolean): void {
    if (this.#lastSeen === null) return;
    if (!force && now - this.#lastSeenPersisted < LAST_SEEN_PERSIST_MS) return;
    this.#lastSeenPersisted = now;
    this.ctx.storage.kv.put("lastSeen", this.#lastSeen);
  }

  #expireCommands(now: number): void {
    const overdue = this.ctx.storage.sql
      .exec<{ id: string }>("SELECT id FROM commands WHERE status IN ('queued', 'delivered') AND deadline <= ?", now)
      .toArray();
    for (const { id } of overdue) {
      this.#setCommandStatus(id, "timed-out", `no answer from the device within ${this.settings.commandTimeoutMs} ms`);
    }
    // Keep only the latest commands (only after new ones came: otherwise nothing to prune).
    if (!this.#commandsAdded) return;
    this.#commandsAdded = false;
    this.ctx.storage.sql.exec(
      "DELETE FROM commands WHERE id NOT IN (SELECT id FROM commands ORDER BY created DESC, rowid DESC LIMIT ?)",
      KEEP_COMMANDS,
    );
  }

  #enforceRetention(): void {
    if (this.#stored <= this.settings.retainReadings) return;
    const max = this.ctx.storage.sql.exec<{ m: number | null }>("SELECT MAX(seq) AS m FROM readings").one().m;
    if (max === null) return;
    const cursor = this.ctx.storage.sql.exec("DELETE FROM readings WHERE seq <= ?", max - this.settings.retainReadings);
    if (cursor.rowsWritten > 0) {
      this.#stored -= cursor.rowsWritten;
    }
  }

  /** The next alarm: soon while a device is connected (heartbeat checks) or a command is pending. */
  #scheduleAlarm(): void {
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    if (this.#deviceConnections().length > 0 || this.#online) next = now + this.settings.heartbeatCheckMs;
    const pending = this.ctx.storage.sql
      .exec<{ d: number | null }>("SELECT MIN(deadline) AS d FROM commands WHERE status IN ('queued', 'delivered')")
      .one().d;
    if (pending !== null) next = Math.min(next, Math.max(pending, now + 10));
    if (!Number.isFinite(next)) return;
    // setAlarm replaces any earlier schedule: only move it earlier, or set it when none is set.
    this.ctx.waitUntil(
      this.ctx.storage
        .getAlarm()
        .then((current) => {
          if (current === null || current > next || current < now) return this.ctx.storage.setAlarm(next);
        })
        .catch((err: unknown) => console.error(`room ${this.name}: could not schedule the alarm:`, err)),
    );
  }

  // -------------------------------------------------------------------------
  // Commands
  // -------------------------------------------------------------------------

  #getCommand(id: string): CommandRecord | undefined {
    const row = this.ctx.storage.sql
      .exec<CommandRow>("SELECT id, body, status, error, created, updated FROM commands WHERE id = ?", id)
      .toArray()[0];
    return row && commandFromRow(row);
  }

  #recentCommands(): CommandRecord[] {
    return this.ctx.storage.sql
      .exec<CommandRow>(
        "SELECT id, body, status, error, created, updated FROM commands ORDER BY created DESC, rowid DESC LIMIT ?",
        KEEP_COMMANDS,
      )
      .toArray()
      .map(commandFromRow);
  }

  #setCommandStatus(id: string, status: CommandStatus, error?: string): void {
    this.ctx.storage.sql.exec(
      "UPDATE commands SET status = ?, error = ?, updated = ? WHERE id = ?",
      status,
      error ?? null,
      Date.now(),
      id,
    );
    const record = this.#getCommand(id);
    if (record) this.#broadcastDashboards({ type: "command-status", command: record });
  }

  // -------------------------------------------------------------------------
  // Credentials and limits
  // -------------------------------------------------------------------------

  #credential(): { hash: string | null; epoch: number } {
    return this.ctx.storage.kv.get<{ hash: string | null; epoch: number }>("credential") ?? { hash: null, epoch: 0 };
  }

  #setCredential(hash: string | null): void {
    this.ctx.storage.kv.put("credential", { hash, epoch: Date.now() });
  }

  #disconnectDevice(reason: string): void {
    const sockets = this.#deviceConnections();
    for (const ws of sockets) closeQuietly(ws, CLOSE.revoked, reason);
    if (sockets.length) this.#setOnline(false);
  }

  /**
   * A token bucket per connection: `frameRate` frames a second with bursts of
   * `frameBurst`. Over budget, frames are refused with `rate_limited` (the
   * agent resends unacked readings, so nothing is lost); a sender that keeps
   * going to twice the burst is closed with 1008.
   */
  #allowFrame(connection: Connection): boolean {
    const { frameRate, frameBurst } = this.settings;
    const now = Date.now();
    let bucket = this.#buckets.get(connection.id);
    if (!bucket) {
      bucket = { tokens: frameBurst, at: now, warned: 0 };
      this.#buckets.set(connection.id, bucket);
    }
    bucket.tokens = Math.min(frameBurst, bucket.tokens + ((now - bucket.at) / 1000) * frameRate);
    bucket.at = now;
    bucket.tokens -= 1;
    if (bucket.tokens >= 0) return true;
    if (bucket.tokens < -frameBurst) {
      console.warn(`room ${this.name}: closing a ${connection.tags[0]} socket that flooded ${frameBurst * 2} frames past its budget`);
      closeQuietly(connection, CLOSE.flood, "too many frames");
      return false;
    }
    if (now - bucket.warned >= 1000) {
      bucket.warned = now;
      this.#sendTo(connection, errorMessage("rate_limited", `over ${frameRate} frames/s; frames are being dropped`));
    }
    return false;
  }

  // -------------------------------------------------------------------------
  // Helpers
  // -------------------------------------------------------------------------

  #latestReadings(n: number): Reading[] {
    return this.ctx.storage.sql
      .exec<Reading>("SELECT seq, ts, temperature, scale FROM readings ORDER BY seq DESC LIMIT ?", n)
      .toArray()
      .reverse();
  }

  /** Open device sockets, from the runtime's tag index (partyserver's getConnections reads each socket's attachment). */
  #deviceConnections(): WebSocket[] {
    return this.ctx.getWebSockets("device").filter((ws) => ws.readyState === WebSocket.OPEN);
  }

  #onlineDevice(): WebSocket | undefined {
    return this.#online ? this.#deviceConnections()[0] : undefined;
  }

  #persistCounters(): void {
    if (this.#acked === this.#persisted.acked && this.#lost === this.#persisted.lost) return;
    this.ctx.storage.kv.put("acked", this.#acked);
    this.ctx.storage.kv.put("lost", this.#lost);
    this.#persisted = { acked: this.#acked, lost: this.#lost };
  }

  #sendTo(connection: WebSocket, msg: ToDeviceMessage | ToDashboardMessage): void {
    try {
      connection.send(JSON.stringify(msg));
    } catch {
      // The socket closed between the check and the send; its onClose does the bookkeeping.
    }
  }

  /**
   * Serialise once, send to every dashboard. Straight from the runtime's tag
   * index (partyserver tags each socket with ours): its getConnections() would
   * read every socket's attachment again, per message.
   */
  #broadcastDashboards(msg: ToDashboardMessage | string): void {
    let text: string | undefined;
    for (const ws of this.ctx.getWebSockets("dashboard")) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      text ??= typeof msg === "string" ? msg : JSON.stringify(msg);
      try {
        ws.send(text);
      } catch {
        // Closing dashboard: nothing to deliver to; its onClose runs separately.
      }
    }
  }

  /**
   * Tell the fleet registry. Presence and state changes go at once; the latest
   * reading at most every `fleetPushMs`, so a fleet of devices streaming at
   * 1 Hz does not turn the single registry into a hot spot.
   */
  #pushFleet(force: boolean, patch: Partial<FleetPatch> = {}): void {
    const now = Date.now();
    if (!force && now - this.#lastFleetPush < this.settings.fleetPushMs) return;
    this.#lastFleetPush = now;
    const latest = this.#latestReadings(1)[0];
    this.#fleetDirty = false;
    const full: FleetPatch = {
      online: this.#online,
      lastSeen: this.#lastSeen,
      ip: this.#ip,
      fw: this.#reported?.fw ?? null,
      // The unit of `temperature`: the latest reading's own, so a scale switch never pairs
      // the new unit with a reading taken in the old one; the reported scale until a reading exists.
      scale: latest?.scale ?? this.#reported?.scale ?? null,
      temperature: latest?.temperature ?? null,
      readingTs: latest?.ts ?? null,
      lastSeq: latest?.seq ?? null,
      ...patch,
    };
    const stub = this.env.FLEET.get(this.env.FLEET.idFromName("main"));
    this.ctx.waitUntil(
      stub.update(this.name, full).catch((err: unknown) => console.error(`room ${this.name}: fleet update failed:`, err)),
    );
  }
}

export type FleetPatch = {
  online: boolean;
  lastSeen: number | null;
  ip: string | null;
  fw: string | null;
  scale: "F" | "C" | null;
  temperature: number | null;
  readingTs: number | null;
  lastSeq: number | null;
};

type Bucket = { tokens: number; at: number; warned: number };

/** Both are hex SHA-256 digests of equal length; compare without an early exit. */
function timingSafeEqualHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

type CommandRow = { id: string; body: string; status: string; error: string | null; created: number; updated: number };

function commandFromRow(row: CommandRow): CommandRecord {
  return {
    id: row.id,
    command: JSON.parse(row.body) as CommandBody, // written by submitCommand from a parsed CommandBody
    status: row.status as CommandStatus,
    ...(row.error ? { error: row.error } : {}),
    createdAt: row.created,
    updatedAt: row.updated,
  };
}


function roleOf(request: Request): Role {
  return request.headers.get(TICKET_HEADERS.role) === "device" ? "device" : "dashboard";
}

function closeQuietly(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Already closing or closed: the close we wanted is happening anyway.
  }
}
