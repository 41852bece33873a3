/**
 * DeviceRoom: one Durable Object per device. The device's socket and any
 * number of dashboard sockets meet here (told apart by connection tags).
 *
 * The room composes small stores, each owning its own storage (party/room/):
 *  - readings.ts     readings: live in memory, durable in groups, stored in chunks; the ack;
 *  - streams.ts      agent outboxes and their seq offsets;
 *  - commands.ts     commands and their queued → delivered → applied lifecycle;
 *  - credentials.ts  the device token's hash;
 *  - presence.ts     online / last seen / LAN address;
 *  - fanout.ts       sending to sockets, the legacy log lines;
 *  - frame-budget.ts per-socket frame rate limits;
 *  - alerts.ts       alert rules, evaluated as readings arrive and by the alarm; webhooks.ts delivers them;
 *  - meter.ts        rows written and requests, as Cloudflare bills them.
 * What is left here is the lifecycle: constructor (rebuild from storage),
 * fetch (admission), getConnectionTags, onConnect, onMessage, onClose,
 * onAlarm, then the RPC methods the Worker calls, then the frame handlers.
 *
 * The write path, in one paragraph: a device frame's new readings go to the
 * dashboards at once and wait in memory; they are committed as one chunk row
 * per group — when nobody watches (the device then batches by itself, so a
 * frame is a group), at GROUP_COMMIT_READINGS pending, or GROUP_COMMIT_MS
 * after the first (checked on each frame and by the alarm) — and the ack is
 * sent after the commit. Nothing in that path keeps a timer pending, so the
 * room stays eligible to hibernate between frames.
 */
import { Server, type Connection, type ConnectionContext, type WSMessage } from "partyserver";
import {
  DashboardMessage,
  LIMITS,
  PING,
  PONG,
  applyCommand,
  errorMessage,
  parseDeviceFrame,
  parseFrame,
  type CommandBody,
  type CommandRecord,
  type CommandStatus,
  type DesiredState,
  type DeviceMessage,
  type DeviceState,
  type Reading,
  type ReadingsQuery,
  type ReportedState,
  type RoomStats,
  type ToDeviceMessage,
  type AlertRecord,
  type AlertRule,
  type AlertRulesAnswer,
  type DeviceAlerts,
} from "./protocol";
import { CREDENTIAL_HEADER, TICKET_HEADERS, admitSocket, ensureNonceTable, refuse } from "./admission";
import { directory } from "./directory";
import { fleetFor } from "./fleet";
import { roomSettings, type RoomSettings } from "./settings";
import { CommandsStore } from "./room/commands";
import { Credentials } from "./room/credentials";
import { LegacyLog, broadcast, closeQuietly, openSockets, sendTo } from "./room/fanout";
import { FrameBudget } from "./room/frame-budget";
import { SocketLog } from "./room/socket-log";
import { Meter } from "./room/meter";
import { Presence } from "./room/presence";
import { ReadingsStore } from "./room/readings";
import { StreamsTable, type Stream } from "./room/streams";
import { Firmware } from "./room/firmware";
import { RoomAlerts, alertSettings } from "./room/alerts";

/** Connection roles. The Worker decides the role (from the ticket or token) and passes it in a header. */
export type Role = "device" | "dashboard";

/** Close codes the room uses (4000–4999 are the application's). */
export const CLOSE = {
  heartbeatTimeout: 4000,
  replaced: 4001,
  helloRequired: 4002,
  revoked: 4003,
  /** Standard "policy violation": a flood of frames far beyond the rate limit. */
  flood: 1008,
  /** Standard "message too big": a frame past LIMITS.maxFrameBytes. */
  tooBig: 1009,
} as const;

/** Readings a dashboard gets in its snapshot; the chart's history comes from the readings API. */
const SNAPSHOT_READINGS = 120;

/** Per-connection, small, survives hibernation (partyserver keeps it in the socket attachment). */
type DeviceConnectionState = { stream: Stream };

export class DeviceRoom extends Server<Env> {
  static options = { hibernate: true };

  readonly settings: RoomSettings;
  readonly #meter = new Meter();
  readonly #readings: ReadingsStore;
  readonly #streams: StreamsTable;
  readonly #commands: CommandsStore;
  readonly #credentials: Credentials;
  readonly #presence: Presence;
  /** Over-the-air updates: the release meant for the device, and its update's latest step. */
  readonly #firmware: Firmware;
  readonly #budget: FrameBudget;
  readonly #alerts: RoomAlerts;
  readonly #log = new LegacyLog();
  /** Warnings about one socket's doings: the first at once, then a summary a minute at most. */
  readonly #warnings = new SocketLog(() => this.name);
  #desired: DesiredState;
  #reported: ReportedState | null;
  /** How long this device may hold readings while nobody watches (per device, else the var). */
  #unwatchedMs: number;
  /** Last time any frame arrived from the device; heartbeats are read from the runtime instead. */
  #lastFrameAt = Date.now();
  /** The newest reading held, for the fleet summary (no query per push). */
  #latest: Reading | undefined;
  #lastFleetPush = 0;
  #fleetDirty = false;
  /** The fleet shard has been told a reading by this instance. */
  #fleetHasReading = false;
  /** The stream of the device's current connection (one device socket per room). */
  #stream: Stream | null;
  #unknownResultLoggedAt = 0;
  /** When the alarm is set for, as far as this instance knows (null: unknown or none). */
  #alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.settings = roomSettings(env);
    // Synchronous SQLite: the schema and in-memory state are ready before any
    // fetch, RPC call, socket message or alarm runs, with or without hibernation.
    const { sql, kv } = ctx.storage;
    ensureNonceTable(sql);
    this.#readings = new ReadingsStore(sql, kv, this.#meter);
    this.#streams = new StreamsTable(sql, kv, this.#meter);
    this.#commands = new CommandsStore(sql, this.#meter);
    this.#credentials = new Credentials(kv, this.#meter);
    this.#presence = new Presence(kv, this.#meter, {
      lastCommitAt: this.#readings.lastCommitAt,
      deviceSocketOpen: this.#deviceSockets().length > 0,
    });
    this.#budget = new FrameBudget(this.settings.frameRate, this.settings.frameBurst);
    this.#firmware = new Firmware(kv, this.#meter);
    this.#desired = kv.get<DesiredState>("desired") ?? {
      scale: this.settings.defaultScale,
      intervalMs: this.settings.defaultIntervalMs,
    };
    this.#reported = kv.get<ReportedState>("reported") ?? null;
    this.#unwatchedMs = kv.get<number>("unwatchedMs") ?? this.settings.unwatchedBatchMs;
    this.#latest = this.#readings.latest(1)[0];
    this.#stream = this.#streams.current();
    this.#alerts = new RoomAlerts(sql, kv, this.#meter, alertSettings(env), {
      device: () => this.name,
      presence: () => ({ online: this.#presence.online, lastSeen: this.#presence.lastSeen }),
      changed: (alert) => this.#onAlertChanged(alert),
      waitUntil: (promise) => ctx.waitUntil(promise),
      reschedule: () => this.#scheduleAlarm(Date.now()),
    }, this.#readings.lastCommitAt);
    // Heartbeats are answered by the runtime without waking the room (see protocol.PING).
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
  }

  // -------------------------------------------------------------------------
  // Lifecycle
  // -------------------------------------------------------------------------

  /**
   * Admission, before partyserver accepts a socket. A device may come with its
   * token (the Worker hashed it into CREDENTIAL_HEADER: checked here, in the
   * same hop); otherwise with a ticket, which opens one socket only, and a
   * device ticket issued before its credentials were rotated or revoked is worthless.
   */
  async fetch(request: Request): Promise<Response> {
    this.#meter.calls++;
    const credential = request.headers.get(CREDENTIAL_HEADER);
    if (credential !== null && request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      if (roleOf(request) !== "device" || !this.#credentials.verify(credential)) {
        return refuse(401, "unauthorized", "wrong, rotated or revoked device token");
      }
      return super.fetch(request);
    }
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket" && roleOf(request) === "dashboard") {
      const full = this.#dashboardSeatsFull(request);
      if (full) return refuse(429, "too_many_sockets", full);
    }
    const refusal = admitSocket(request, this.ctx.storage.sql, (admission) => {
      if (admission.role !== "device") return null;
      const current = this.#credentials.current;
      return !current.hash || admission.iat < current.epoch
        ? refuse(401, "credentials_revoked", "this device's credentials were rotated or revoked")
        : null;
    });
    return refusal ?? super.fetch(request);
  }

  /**
   * `["device"]`, or `["dashboard", "operator" | "viewer", "account:<name>", "from:<address>"]`:
   * only operators may send commands, and the audit trail names who sent one and from where.
   * The ticket's sub is `<role>:<account>` (worker/routes/api.ts).
   */
  getConnectionTags(_connection: Connection, context: ConnectionContext): string[] {
    return roleOf(context.request) === "device" ? ["device"] : dashboardTags(context.request);
  }

  onConnect(connection: Connection, context: ConnectionContext): void {
    const now = Date.now();
    if (roleOf(context.request) === "device") {
      // One device socket per room: a reconnect replaces a stale (maybe half-open) one.
      for (const other of this.#deviceSockets()) {
        if (other !== connection) closeQuietly(other, CLOSE.replaced, "replaced by a newer connection");
      }
      this.#lastFrameAt = now;
      // Presence flips on `hello`, when the device has said who it is; until then it only holds a socket.
    } else {
      sendTo(connection, { type: "snapshot", state: this.getState(), readings: this.#readings.latest(SNAPSHOT_READINGS) });
      // The first watcher: the device goes live now, sending what it held at once.
      if (this.#watchers() === 1) {
        this.#checkHeartbeat(now);
        this.#tellBatching();
      }
    }
    this.#scheduleAlarm(now);
  }

  onMessage(connection: Connection, raw: WSMessage): void {
    this.#meter.framesIn++;
    if (!this.#allowFrame(connection)) return;
    const size = typeof raw === "string" ? raw.length : raw.byteLength;
    if (size > LIMITS.maxFrameBytes) return this.#refuseOversize(connection, size);
    // partyserver does not await/catch us in hibernation mode: never let a frame throw.
    try {
      if (connection.tags.includes("device")) this.#onDeviceFrame(connection, raw);
      else this.#onDashboardFrame(connection, raw);
    } catch (err) {
      this.#warnings.warn(connection, `frame failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, "error");
      sendTo(connection, errorMessage("internal", "the room could not process this frame"));
    } finally {
      this.#log.flush();
    }
  }

  onClose(connection: Connection): void {
    const now = Date.now();
    this.#budget.forget(connection.id);
    this.#warnings.forget(connection);
    if (connection.tags.includes("device")) {
      if (this.#deviceSockets().length === 0) this.#setOnline(false, now);
      // What it sent is as good now as later; its ack cannot reach it, its next hello gets one.
      this.#readings.flush(now);
    } else if (this.#watchers() === 0) {
      // The last watcher left: commit what waits, and let the device batch.
      this.#commitAndAck(now);
      this.#tellBatching();
    }
    this.#scheduleAlarm(now);
  }

  onAlarm(): void {
    const now = Date.now();
    this.#alarmAt = null;
    this.#meter.alarms++;
    this.#checkHeartbeat(now);
    // Every alarm commits what waits, due or not: waking again just for the deadline
    // would cost a second alarm per cadence, and a smaller chunk costs nothing extra.
    this.#commitAndAck(now);
    this.#expireCommands(now);
    if (this.#onlineDevice() && this.#firmware.due(this.env, now)) this.#sendFirmware(false);
    // No-data and offline deadlines, and webhook retries.
    this.#alerts.check(now);
    this.#readings.retain(this.settings.retainReadings, now);
    if (this.#fleetDirty) this.#pushFleet(this.#watchers() === 0, now);
    // A device that pings without readings (no sensor, say): its last-seen is written now and then.
    // One that sends readings needs no row for it: a wake takes its newest chunk's commit time.
    const lastSeen = this.#presence.lastSeen;
    if (lastSeen !== null && lastSeen - (this.#readings.lastCommitAt ?? 0) > 2 * Math.max(this.#unwatchedMs, this.settings.groupCommitMs)) {
      this.#presence.persist(now, false);
    }
    this.#scheduleAlarm(now);
  }

  // -------------------------------------------------------------------------
  // RPC: what the Worker calls
  // -------------------------------------------------------------------------

  /** `GET /iot/config`: remember the device's LAN address, answer its configuration. */
  register(ip: string): DesiredState {
    this.#meter.calls++;
    this.#presence.setIp(ip);
    this.#pushFleet(true, Date.now(), { ip });
    return this.#desired;
  }

  getState(): DeviceState {
    return {
      id: this.name,
      online: this.#presence.online,
      lastSeen: this.#presence.lastSeen,
      desired: this.#desired,
      reported: this.#reported,
      ackedSeq: this.#readings.acked,
      lost: this.#readings.lost,
      stored: this.#readings.stored,
      commands: this.#commands.recent(),
    };
  }

  getReadings(query: ReadingsQuery): Reading[] {
    this.#meter.calls++;
    return this.#readings.page(query.after, query.since, query.limit);
  }

  stats(): RoomStats {
    this.#meter.calls++;
    return this.#meter.stats({ watchers: this.#watchers(), batchingMs: this.#batchingMs() });
  }

  /** `PUT /api/devices/:id/batching`: how long this device may hold readings while nobody watches. */
  setUnwatchedBatching(ms: number): { unwatchedMs: number } {
    this.#meter.calls++;
    this.#unwatchedMs = ms;
    this.ctx.storage.kv.put("unwatchedMs", ms);
    this.#meter.row();
    this.#tellBatching();
    return { unwatchedMs: ms };
  }

  /** `POST /iot/data` with a batch: stored at once (the answer says it is durable), fanned out like live ones. */
  ingest(readings: Reading[]): { stored: number; ackedSeq: number } {
    this.#meter.calls++;
    const now = Date.now();
    const offset = this.#stream?.offset ?? 0;
    const fresh = this.#take(readings, offset, now, this.#watchers() > 0, undefined);
    this.#readings.flush(now);
    this.#log.flush();
    return { stored: fresh, ackedSeq: this.#readings.acked - offset };
  }

  /** A command from the REST API or a dashboard socket. Idempotent by id. */
  submitCommand(id: string, command: CommandBody): CommandRecord {
    this.#meter.calls++;
    const existing = this.#commands.get(id);
    if (existing) return existing;
    const now = Date.now();
    this.#desired = applyCommand(this.#desired, command);
    this.ctx.storage.kv.put("desired", this.#desired);
    this.#meter.row();
    this.#commands.insert(id, command, now, now + this.settings.commandTimeoutMs);
    this.#toDashboards({ type: "state", desired: this.#desired, reported: this.#reported });
    const device = this.#onlineDevice();
    if (device) {
      sendTo(device, { type: "command", id, command });
      this.#setCommandStatus(id, "delivered", undefined, now);
    } else {
      this.#toDashboards({ type: "command-status", command: this.#commands.get(id)! });
    }
    this.#scheduleAlarm(now);
    return this.#commands.get(id)!;
  }

  /** First credentials for this device; false if it already has live ones (rotate instead). */
  provision(hash: string): boolean {
    this.#meter.calls++;
    return this.#credentials.provision(hash, Date.now());
  }

  /** New credentials; the old token and any socket opened with it stop working at once. */
  rotate(hash: string): boolean {
    this.#meter.calls++;
    if (!this.#credentials.rotate(hash, Date.now())) return false;
    this.#disconnectDevice("credentials rotated");
    return true;
  }

  /** No credentials: the device is cut off now and refused until provisioned again. */
  revoke(): boolean {
    this.#meter.calls++;
    const had = this.#credentials.revoke(Date.now());
    this.#disconnectDevice("credentials revoked");
    return had;
  }

  verifyCredential(hash: string): boolean {
    this.#meter.calls++;
    return this.#credentials.verify(hash);
  }

  hasCredential(): boolean {
    this.#meter.calls++;
    return this.#credentials.present;
  }

  /**
   * The release meant for this device and its update's latest step (worker/routes/releases.ts);
   * a connected device hears at once if the choice changed (a rollout naming it just started).
   */
  async firmware(): Promise<ReturnType<Firmware["view"]> & { release: Firmware["target"] }> {
    this.#meter.calls++;
    if (await this.#firmware.refresh(this.env, this.name)) this.#tellFirmware();
    return { ...this.#firmware.view(this.#reported?.fw ?? null), release: this.#firmware.target };
  }

  // Alerts (party/room/alerts.ts; the routes are worker/routes/alerts.ts)

  alertRules(): AlertRulesAnswer {
    this.#meter.calls++;
    const unwatchedBatchingMs = this.#unwatchedBatchingMs();
    const { heartbeatTimeoutMs, unwatchedCheckMs } = this.settings;
    return { rules: this.#alerts.views({ unwatchedBatchingMs, heartbeatTimeoutMs, unwatchedCheckMs }), unwatchedBatchingMs };
  }

  /** Add or replace one of this device's rules; false when it would be one too many. */
  setAlertRule(rule: AlertRule): boolean {
    this.#meter.calls++;
    if (!this.#alerts.setRule(rule, Date.now())) return false;
    this.#tellBatching();
    return true;
  }

  deleteAlertRule(id: string): boolean {
    this.#meter.calls++;
    if (!this.#alerts.deleteRule(id, Date.now())) return false;
    this.#tellBatching();
    return true;
  }

  alerts(): DeviceAlerts {
    this.#meter.calls++;
    return this.#alerts.list();
  }

  acknowledgeAlert(id: number, by: string): { alert: AlertRecord; changed: boolean } | "not_found" | "cleared" {
    this.#meter.calls++;
    return this.#alerts.acknowledge(id, by, Date.now());
  }

  // -------------------------------------------------------------------------
  // Device frames
  // -------------------------------------------------------------------------

  #onDeviceFrame(connection: Connection, raw: WSMessage): void {
    const now = Date.now();
    this.#lastFrameAt = now;
    const parsed = parseDeviceFrame(raw);
    if (!parsed.ok) return sendTo(connection, parsed.error);
    const msg = parsed.value;
    const stream = (connection.state as DeviceConnectionState | null)?.stream;
    if (msg.type !== "hello" && !stream) {
      return sendTo(connection, errorMessage("hello_required", "send hello before anything else"));
    }
    switch (msg.type) {
      case "hello":
        return this.#onHello(connection, msg.stream, msg.oldest, msg.state, now);
      case "readings": {
        // Counted once per frame (the runtime's socket list, filtered): the fleet push and the group use it.
        const watched = this.#watchers() > 0;
        this.#take(msg.readings, stream!.offset, now, watched, typeof raw === "string" ? raw : undefined, connection);
        if (this.#groupDue(now, watched)) return this.#commitAndAck(now);
        // Nothing new waits (a resend of what is stored): the ack is already true.
        if (this.#readings.pendingCount === 0) return sendTo(connection, this.#ack(stream!.offset));
        // The usual live frame: an alarm is already due before this group's deadline; no work.
        if (this.#alarmAt === null || this.#alarmAt <= now || this.#alarmAt > this.#readings.pendingSince! + this.settings.groupCommitMs) {
          this.#scheduleAlarm(now);
        }
        return;
      }
      case "result":
        return this.#onCommandResult(msg, now);
      case "report":
        return this.#setReported(msg.state, now);
      case "flush":
        if (this.#readings.pendingCount > 0) return this.#commitAndAck(now);
        return sendTo(connection, this.#ack(stream!.offset));
      case "update":
        return this.ctx.waitUntil(
          this.#firmware.record(this.env, this.name, msg, now).catch((err: unknown) => console.error(`room ${this.name}: update report not counted:`, err)),
        );
    }
  }

  /** The release meant for the device (party/room/firmware.ts): after every hello, and whenever it changes. */
  #sendFirmware(always: boolean): void {
    const check = this.#firmware.refresh(this.env, this.name).then((changed) => {
      if (always || changed) this.#tellFirmware();
    });
    this.ctx.waitUntil(check.catch((err: unknown) => console.error(`room ${this.name}: could not read the rollouts:`, err)));
  }

  #tellFirmware(): void {
    const device = this.#deviceSockets()[0];
    if (device) sendTo(device, this.#firmware.message());
  }

  #onHello(connection: Connection, streamId: string, oldest: number, state: ReportedState, now: number): void {
    const known = this.#streams.get(streamId);
    if (known && known.offset + oldest - 1 > this.#seqBound(now)) {
      // An `oldest` no outbox could have (9e15): refused, not counted as billions of lost readings.
      sendTo(connection, errorMessage("seq_out_of_range", `oldest ${oldest} is beyond any outbox this room could be missing`));
      return closeQuietly(connection, CLOSE.flood, "seq out of range");
    }
    const stream = this.#openStream(connection, streamId, now);
    connection.setState({ stream } satisfies DeviceConnectionState);
    // Everything below `oldest` has left the agent's outbox: what is not held of it never will be.
    const missing = this.#readings.giveUpTo(stream.offset + oldest - 1, now);
    if (missing > 0) {
      this.#warnings.warn(connection, `${missing} readings below seq ${oldest} are gone from the agent's outbox; counted as lost`);
    }
    // One fleet update for the whole hello, not one for presence and one for state:
    // after an outage every device says hello at once, into the registry.
    this.#setOnline(true, now, false);
    this.#setReported(state, now, false);
    this.#pushFleet(true, now);
    sendTo(connection, { type: "desired", state: this.#desired });
    this.#sendFirmware(true);
    sendTo(connection, this.#ack(stream.offset));
    sendTo(connection, { type: "batching", maxDelayMs: this.#batchingMs() });
    // Commands that waited for the device go now.
    for (const cmd of this.#commands.queued()) {
      sendTo(connection, { type: "command", id: cmd.id, command: cmd.command });
      this.#setCommandStatus(cmd.id, "delivered", undefined, now);
    }
    this.#scheduleAlarm(now);
  }

  /**
   * A stream is one agent outbox. A new one (first boot, or an agent whose
   * state was wiped and restarts at seq 1) continues after everything held,
   * so the room's seq stays monotonic and nothing old is overwritten or hidden;
   * what the old stream never delivered is counted as lost.
   */
  #openStream(connection: Connection, id: string, now: number): Stream {
    let stream = this.#streams.get(id);
    if (!stream) {
      const offset = Math.max(this.#readings.maxSeq, this.#readings.acked);
      this.#readings.giveUpTo(offset, now);
      stream = this.#streams.add(id, offset, now);
      if (offset > 0) this.#warnings.warn(connection, `new agent stream ${id}; its seq 1 is stored as ${offset + 1}`);
    }
    this.#streams.makeCurrent(stream);
    this.#stream = stream;
    return stream;
  }

  /**
   * Keep a frame's readings (device seqs + offset) and fan out the new ones at
   * once, before any write: dashboards never wait for durability. Returns how
   * many were new.
   *
   * `frame`: the device's frame text, validated as `readings`. A validated
   * device readings frame is also a valid dashboard `readings` message (the
   * same two keys, the same strict readings), so when all of it is new, in
   * order and needs no offset, it is forwarded as received, not re-serialised.
   */
  #take(readings: Reading[], offset: number, now: number, watched: boolean, frame: string | undefined, from?: WebSocket): number {
    let mapped = offset === 0 ? readings : readings.map((r) => ({ ...r, seq: offset + r.seq }));
    const bound = this.#seqBound(now);
    if (mapped.some((r) => r.seq > bound)) {
      mapped = mapped.filter((r) => r.seq <= bound);
      frame = undefined;
      if (from) sendTo(from, errorMessage("seq_out_of_range", `readings past seq ${bound - offset} are refused: no outbox runs that far ahead of the ack`));
    }
    const fresh = this.#readings.add(mapped, now);
    if (fresh.length === 0) return 0;
    const asSent = frame !== undefined && offset === 0 && fresh.length === readings.length && ascending(readings);
    this.#toDashboards(asSent ? frame! : { type: "readings", readings: fresh });
    if (this.settings.logReadings) this.#log.readings(fresh, this.#presence.ip, this.name);
    const newest = fresh[fresh.length - 1]!;
    if (!this.#latest || newest.seq > this.#latest.seq) this.#latest = newest;
    this.#presence.touch(now);
    this.#alerts.onReadings(fresh, now);
    this.#fleetDirty = true;
    // Each push is a request and a row in the shard: while watched at most every
    // fleetPushMs, otherwise from the alarm; a first reading goes at once, so a new
    // device shows a value in the fleet list right away.
    if (!this.#fleetHasReading) this.#pushFleet(true, now);
    else if (watched) this.#pushFleet(false, now);
    return fresh.length;
  }

  /** The highest room seq a device could genuinely send now (see LIMITS.maxSeqAhead). */
  #seqBound(now: number): number {
    const silentMs = Math.max(0, now - (this.#presence.lastSeen ?? now));
    return this.#readings.acked + LIMITS.maxSeqAhead + Math.floor(silentMs / 100);
  }

  /** A group is due: nobody watches (the device batched it), it is big enough, or old enough. */
  #groupDue(now: number, watched: boolean): boolean {
    const since = this.#readings.pendingSince;
    if (since === null) return false;
    return (
      !watched ||
      this.#readings.pendingCount >= this.settings.groupCommitReadings ||
      now - since >= this.settings.groupCommitMs
    );
  }

  /** Commit what is pending, then ack the device: the runtime sends the ack only once the commit is durable. */
  #commitAndAck(now: number): void {
    if (this.#readings.flush(now) === 0) return;
    const device = this.#deviceSockets()[0];
    if (device && this.#stream) sendTo(device, this.#ack(this.#stream.offset));
  }

  #ack(offset: number): ToDeviceMessage {
    return { type: "ack", seq: Math.max(0, this.#readings.acked - offset) };
  }

  #onCommandResult({ id, ok, error, state, appliedAt }: Extract<DeviceMessage, { type: "result" }>, now: number): void {
    if (state) this.#setReported(state, now);
    const cmd = this.#commands.get(id);
    if (!cmd) {
      // At most one line a minute: a device repeating unknown ids must not fill the log.
      if (now - this.#unknownResultLoggedAt >= 60_000) {
        this.#unknownResultLoggedAt = now;
        console.warn(`room ${this.name}: result for unknown command ${id} (further ones this minute not logged)`);
      }
      return;
    }
    // A late answer after a time-out still tells the truth about the device, so it wins.
    if (cmd.status === "applied" || cmd.status === "failed") return;
    // The device's own time of applying it (newer agents) goes into the trace beside the room's.
    this.#setCommandStatus(id, ok ? "applied" : "failed", ok ? undefined : (error ?? "device reported failure"), now, appliedAt);
  }

  #setReported(state: ReportedState, now: number, tellFleet = true): void {
    const changed = JSON.stringify(state) !== JSON.stringify(this.#reported);
    this.#reported = state;
    if (state.ip) this.#presence.setIp(state.ip);
    // A reconnect usually reports what it reported before: no write (a commit) for that.
    if (changed) {
      this.ctx.storage.kv.put("reported", state);
      this.#meter.row();
    }
    this.#toDashboards({ type: "state", desired: this.#desired, reported: state });
    if (tellFleet) this.#pushFleet(true, now, { fw: state.fw, ip: this.#presence.ip });
  }

  // -------------------------------------------------------------------------
  // Dashboard frames
  // -------------------------------------------------------------------------

  #onDashboardFrame(connection: Connection, raw: WSMessage): void {
    const parsed = parseFrame(DashboardMessage, raw);
    if (!parsed.ok) return sendTo(connection, parsed.error);
    if (!connection.tags.includes("operator")) {
      return sendTo(connection, errorMessage("forbidden", "viewers cannot send commands"));
    }
    const msg = parsed.value;
    const isNew = this.#commands.get(msg.id) === undefined;
    const record = this.submitCommand(msg.id, msg.command);
    // The sender always hears back, even if it reused an id whose command already finished.
    sendTo(connection, { type: "command-status", command: record });
    if (isNew) this.#auditCommand(connection, msg.id, msg.command);
  }

  /** A command sent over a dashboard socket, in the audit trail (REST commands are recorded by the Worker). */
  #auditCommand(connection: Connection, id: string, command: CommandBody): void {
    const tag = (prefix: string) => connection.tags.find((t) => t.startsWith(prefix))?.slice(prefix.length) ?? null;
    const entry = { actor: tag("account:") ?? "unknown", role: "operator" as const, address: tag("from:"), action: "device.command" as const };
    this.ctx.waitUntil(
      directory(this.env)
        .record({ ...entry, target: `device:${this.name}`, detail: { id, ...command } })
        .then(
          () => undefined,
          (err: unknown) => console.error(`room ${this.name}: could not record command ${id} in the audit trail:`, err),
        ),
    );
  }

  // -------------------------------------------------------------------------
  // Presence, batching, alarms
  // -------------------------------------------------------------------------

  #checkHeartbeat(now: number): void {
    for (const ws of this.#deviceSockets()) {
      const pinged = this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
      const lastHeard = Math.max(pinged, this.#lastFrameAt);
      if (now - lastHeard > this.settings.heartbeatTimeoutMs) {
        console.warn(`room ${this.name}: device silent for ${now - lastHeard} ms; closing its socket as half-open`);
        closeQuietly(ws, CLOSE.heartbeatTimeout, "heartbeat timeout");
      } else {
        this.#presence.touch(Math.min(now, lastHeard));
      }
    }
    if (this.#presence.online && !this.#onlineDevice()) this.#setOnline(false, now);
  }

  #setOnline(online: boolean, now: number, tellFleet = true): void {
    if (!this.#presence.set(online, now)) return;
    console.log(`room ${this.name}: device ${online ? "online" : "offline"}`);
    const lastSeen = this.#presence.lastSeen;
    this.#toDashboards({ type: "presence", online, lastSeen });
    if (tellFleet) this.#pushFleet(true, now, { online, lastSeen });
    // An offline rule for 0 s raises now; a device back clears its offline alert.
    this.#alerts.check(now);
  }

  /** 0 (live) while a dashboard watches; the device's unwatched interval otherwise. */
  #batchingMs(): number {
    return this.#watchers() > 0 ? 0 : this.#unwatchedBatchingMs();
  }

  /** The unwatched interval, shortened for the device's alert rules: their latency is its batching bound. */
  #unwatchedBatchingMs(): number {
    return Math.min(this.#unwatchedMs, this.#alerts.batchingBoundMs());
  }

  #tellBatching(): void {
    const device = this.#onlineDevice();
    if (device) sendTo(device, { type: "batching", maxDelayMs: this.#batchingMs() });
  }

  /**
   * One alarm serves every timed duty: presence checks (often while watched,
   * rarely while not), the group commit's deadline, command time-outs. It is
   * only moved earlier, never rewritten per frame: each set is a row written.
   */
  #scheduleAlarm(now: number): void {
    let next = Number.POSITIVE_INFINITY;
    if (this.#deviceSockets().length > 0 || this.#presence.online) {
      next = now + (this.#watchers() > 0 ? this.settings.presenceCheckMs : this.settings.unwatchedCheckMs);
    }
    const pendingSince = this.#readings.pendingSince;
    if (pendingSince !== null) next = Math.min(next, pendingSince + this.settings.groupCommitMs);
    const deadline = this.#commands.nextDeadline();
    if (deadline !== null) next = Math.min(next, Math.max(deadline, now + 10));
    const alertDue = this.#alerts.nextDue();
    if (alertDue !== null) next = Math.min(next, Math.max(alertDue, now + 10));
    if (!Number.isFinite(next)) return;
    // An alarm already due at or before `next` (and still ahead) does the job.
    if (this.#alarmAt !== null && this.#alarmAt > now && this.#alarmAt <= next) return;
    this.#alarmAt = next;
    this.#meter.row();
    this.ctx.waitUntil(
      this.ctx.storage.setAlarm(next).catch((err: unknown) => console.error(`room ${this.name}: could not schedule the alarm:`, err)),
    );
  }

  // -------------------------------------------------------------------------
  // Commands and credentials
  // -------------------------------------------------------------------------

  #expireCommands(now: number): void {
    for (const id of this.#commands.overdue(now)) {
      this.#setCommandStatus(id, "timed-out", `no answer from the device within ${this.settings.commandTimeoutMs} ms`, now);
    }
    this.#commands.prune();
  }

  #setCommandStatus(id: string, status: CommandStatus, error: string | undefined, now: number, appliedAt?: number): void {
    const record = this.#commands.setStatus(id, status, error, now, appliedAt);
    if (record) this.#toDashboards({ type: "command-status", command: record });
  }

  /**
   * Why a dashboard may not have a seat (null: it may): the device's seats are all taken, or its
   * account's or its address's share of them (LIMITS). Counted from the runtime's tag index, the
   * tags this socket would get: a lookup per cap, no attachment read. An address the Worker
   * cannot tell clients apart by (see SHARED_ADDRESSES) is not capped as one client.
   */
  #dashboardSeatsFull(request: Request): string | null {
    if (this.#watchers() >= LIMITS.maxDashboardsPerDevice) return `this device already has ${LIMITS.maxDashboardsPerDevice} dashboards open`;
    for (const tag of dashboardTags(request)) {
      if (tag.startsWith("account:") && openSockets(this.ctx, tag).length >= LIMITS.maxDashboardsPerAccount) {
        return `account ${tag.slice("account:".length)} already has ${LIMITS.maxDashboardsPerAccount} dashboards open on this device`;
      }
      if (tag.startsWith("from:") && !SHARED_ADDRESSES.has(tag.slice("from:".length)) && openSockets(this.ctx, tag).length >= LIMITS.maxDashboardsPerAddress) {
        return `your address already has ${LIMITS.maxDashboardsPerAddress} dashboards open on this device`;
      }
    }
    return null;
  }

  #disconnectDevice(reason: string): void {
    const sockets = this.#deviceSockets();
    for (const ws of sockets) closeQuietly(ws, CLOSE.revoked, reason);
    if (sockets.length) this.#setOnline(false, Date.now());
  }

  /** Over budget: refused with `rate_limited` (at most once a second), and closed with 1008 far past it. */
  #allowFrame(connection: Connection): boolean {
    const verdict = this.#budget.spend(connection.id, Date.now());
    if (verdict === "ok") return true;
    if (verdict === "close") {
      this.#warnings.warn(connection, `closing: flooded ${this.settings.frameBurst * 2} frames past its budget`);
      closeQuietly(connection, CLOSE.flood, "too many frames");
    } else if (verdict === "refuse-and-warn") {
      sendTo(connection, errorMessage("rate_limited", `over ${this.settings.frameRate} frames/s; frames are being dropped`));
    }
    return false;
  }

  /**
   * A frame past LIMITS.maxFrameBytes (a string's length counts UTF-16 units, never more than
   * its bytes): refused before any parsing, and the socket closed with 1009. The runtime has
   * already read the whole frame into memory by now (up to its own limit: docs/security.md),
   * so nothing here makes this one cheaper; closing makes the next one cost a new upgrade (a
   * ticket or a token, and the address's rate limit) instead of one more write on an open
   * socket. Nothing genuine comes near: the agent's largest frame, 500 readings, is ~35 KB.
   */
  #refuseOversize(connection: Connection, size: number): void {
    sendTo(connection, errorMessage("frame_too_large", `a frame of ${size} bytes is over the ${LIMITS.maxFrameBytes}-byte limit; closing`));
    this.#warnings.warn(connection, `closing: a frame of ${size} bytes, over the ${LIMITS.maxFrameBytes}-byte limit`);
    // What the runtime already took in from this socket is dropped unread, as after a flood.
    this.#budget.shut(connection.id);
    closeQuietly(connection, CLOSE.tooBig, "frame too large");
  }

  // -------------------------------------------------------------------------
  // Helpers
  // -------------------------------------------------------------------------

  /** Open device sockets, from the runtime's tag index (partyserver's getConnections reads each socket's attachment). */
  #deviceSockets(): WebSocket[] {
    return openSockets(this.ctx, "device");
  }

  #onlineDevice(): WebSocket | undefined {
    return this.#presence.online ? this.#deviceSockets()[0] : undefined;
  }

  #watchers(): number {
    return openSockets(this.ctx, "dashboard").length;
  }

  #toDashboards(msg: Parameters<typeof broadcast>[2]): void {
    broadcast(this.ctx, "dashboard", msg);
  }

  /** An alert raised, acknowledged or cleared: dashboards see it, and the fleet row's count follows at once. */
  #onAlertChanged(alert: AlertRecord): void {
    this.#toDashboards({ type: "alert", alert });
    this.#pushFleet(true, Date.now());
  }

  /** The shard answered a push with its alert defaults' version: a newer one is fetched and applied. */
  async #alertDefaultsVersion(version: number): Promise<void> {
    if (version === this.#alerts.defaultsVersion) return;
    const defaults = await fleetFor(this.env, this.name).alertDefaults();
    if (this.#alerts.setDefaults(defaults, Date.now())) this.#tellBatching();
  }

  /**
   * Tell the device's fleet registry shard. Presence and state changes go at
   * once; the latest reading at most every `fleetPushMs` while watched and
   * from the alarm while not, so a fleet streaming at 1 Hz does not turn the
   * registry into a hot spot or a bill (each push is a request and a row).
   */
  #pushFleet(force: boolean, now: number, patch: Partial<FleetPatch> = {}): void {
    if (!force && now - this.#lastFleetPush < this.settings.fleetPushMs) return;
    this.#lastFleetPush = now;
    this.#fleetDirty = false;
    const latest = this.#latest;
    if (latest) this.#fleetHasReading = true;
    const full: FleetPatch = {
      online: this.#presence.online,
      lastSeen: this.#presence.lastSeen,
      ip: this.#presence.ip,
      fw: this.#reported?.fw ?? null,
      // The unit of `temperature`: the latest reading's own, so a scale switch never pairs
      // the new unit with a reading taken in the old one; the reported scale until a reading exists.
      scale: latest?.scale ?? this.#reported?.scale ?? null,
      temperature: latest?.temperature ?? null,
      readingTs: latest?.ts ?? null,
      lastSeq: latest?.seq ?? null,
      alerts: this.#alerts.activeCount,
      ...patch,
    };
    this.ctx.waitUntil(
      fleetFor(this.env, this.name)
        .update(this.name, full)
        .then((version) => this.#alertDefaultsVersion(version))
        .catch((err: unknown) => {
          // An overloaded shard (a reconnect storm) is not retried now; the alarm pushes again.
          this.#fleetDirty = true;
          console.error(`room ${this.name}: fleet update failed (the alarm retries):`, err);
        }),
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
  alerts: number;
};

/**
 * A dashboard's tags: `["dashboard", "operator" | "viewer", "account:<name>", "from:<address>"]`.
 * The ticket's sub is `<role>:<account>` (worker/routes/api.ts); the address is the one the
 * Worker keys rate limits on (worker/rate-limit.ts clientIp), in a header only it sets.
 */
function dashboardTags(request: Request): string[] {
  const [role, account] = (request.headers.get(TICKET_HEADERS.sub) ?? "").split(":");
  const tags = ["dashboard", role === "operator" ? "operator" : "viewer"];
  if (account) tags.push(`account:${account}`);
  const address = request.headers.get(TICKET_HEADERS.address);
  if (address) tags.push(`from:${address}`);
  return tags;
}

/**
 * What worker/rate-limit.ts clientIp answers when it cannot tell clients apart: `local` (run
 * without Cloudflare or a trusted proxy, where every client shares it) and `unknown`. Capping
 * those as one address would cap everyone together: the per-device cap still holds.
 */
const SHARED_ADDRESSES: ReadonlySet<string> = new Set(["local", "unknown"]);

function roleOf(request: Request): Role {
  return request.headers.get(TICKET_HEADERS.role) === "device" ? "device" : "dashboard";
}

function ascending(readings: readonly Reading[]): boolean {
  for (let i = 1; i < readings.length; i++) if (readings[i]!.seq <= readings[i - 1]!.seq) return false;
  return true;
}
