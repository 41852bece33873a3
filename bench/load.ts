/**
 * One load-generating worker thread. The benchmark splits the devices and
 * dashboards of a scenario across several of these, so the clients are not
 * the bottleneck of one event loop. Every target sees the same frames: a
 * device sends `{"type":"readings","readings":[…]}`, exactly the hub's device
 * frame, and a dashboard receives a frame holding readings. The hub parses,
 * validates, stores, acks and fans them out; the peers relay them verbatim.
 *
 * Latency is measured per reading, receive time minus send time, both
 * `performance.timeOrigin + performance.now()` (one clock for all threads of
 * the process), the send time kept in shared memory by (device, seq).
 *
 * Hub devices behave as the agent does where it matters for cost and
 * recovery: they open their socket with their token in an Authorization
 * header (or a ticket, on an endpoint that asks for one), honour the room's
 * `batching` message (hold readings, one frame per `maxDelayMs`, while nobody
 * watches), and in the scale scenario come back after an endpoint restart with
 * the agent's own backoff; dashboards come back with the dashboard's.
 */
import { parentPort, workerData } from "node:worker_threads";
import mqtt, { type MqttClient } from "mqtt";
import WebSocket from "ws";
import { backoffDelay, DEFAULT_BACKOFF } from "../device/backoff";
import { PING, PONG } from "../party/protocol";
import { Samples } from "./lib/stats";

export type Target =
  | { kind: "hub"; base: string; adminToken: string }
  | { kind: "mqtt"; url: string; qos: 0 | 1 }
  | { kind: "ws"; url: string };

export type Scenario = "fleet" | "burst" | "storm" | "backfill" | "unwatched" | "scale";

export type DeviceSpec = { index: number; id: string; token?: string; ip: string };
export type DashboardSpec = { device: number; id: string; ip: string };

export type Plan = {
  scenario: Scenario;
  target: Target;
  devices: DeviceSpec[];
  dashboards: DashboardSpec[];
  /** fleet and storm: readings a second per device; backfill: the live rate. */
  rateHz: number;
  /** burst: how many readings, how many to a frame, frames in flight. */
  burst: { readings: number; batch: number; window: number };
  /** backfill: readings waiting in the device's outbox when it connects, and per frame. */
  backlog: { readings: number; batch: number };
  /**
   * Send times by device * slots + seq (Float64); [dropAt, markAt] (Float64): the storm's drop or
   * the scale run's kill, and the end of the scale run's steady phase; seq at the drop by device (Int32).
   */
  shared: { sendAt: SharedArrayBuffer; slots: number; dropAt: SharedArrayBuffer; dropSeq: SharedArrayBuffer };
};

/**
 * flush: send what devices hold now, ask the room to commit, and answer `flushed` once the hub acked it all.
 * restart: the endpoint is being killed; answer `recovered` once every dashboard here saw a new reading.
 */
export type ToWorker = { type: "go"; at: number } | { type: "drop" } | { type: "restart" } | { type: "stop" } | { type: "flush" } | { type: "finish" };

export type WorkerResult = {
  type: "result";
  delivered: number;
  duplicates: number;
  /** Readings that came after a higher seq (a backfill's old readings after live ones). */
  outOfOrder: number;
  latency: Float64Array;
  lastDeliveryAt: number;
  /** Readings each of this worker's devices sent (by device index). */
  sent: Record<number, number>;
  /** storm: ms from the drop to the first post-drop reading at a dashboard, by device index. */
  recovered: Record<number, number>;
  /** backfill: ms from go until a dashboard held the whole backlog. */
  drained: number[];
  /** storm, hub: ms after the drop when each device had its ticket, its socket open, its hello acked. */
  phases: { ticket: number[]; open: number[]; hello: number[] };
  /** scale: ms after the kill when each device and each dashboard was connected again. */
  back: { device: number[]; dashboard: number[] };
  /** scale: reconnect attempts that failed, by reason (the endpoint down, then whatever it answered). */
  retries: Record<string, number>;
  /** hub: highest seq each device was acked (by device index). */
  acked: Record<number, number>;
  /** hub: how device sockets were opened (bearer header, or a ticket when the endpoint asked for one). */
  deviceAuth: DeviceAuth | undefined;
  /** scale: readings sent before markAt, by this worker's dashboards expected and received (latency is of these only). */
  steady: { expected: number; delivered: number };
  /** Frames devices sent, live and held ones (not resends). */
  frames: number;
  errors: number;
  firstErrors: string[];
};

export type DeviceAuth = "bearer" | "ticket";

export type FromWorker = { type: "ready" } | { type: "complete" } | { type: "flushed"; unacked: number } | { type: "recovered" } | WorkerResult | { type: "failed"; error: string };

type Reading = { seq: number; ts: number; temperature: number; scale: "F" | "C" };

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}
const CONNECT_CONCURRENCY = 20;

const plan = workerData as Plan;
const sendAt = new Float64Array(plan.shared.sendAt);
/** [0]: the storm's drop or the scale run's kill; [1]: the scale run's end of the steady phase. */
const dropAt = new Float64Array(plan.shared.dropAt);
const dropSeq = new Int32Array(plan.shared.dropSeq);
const slots = plan.shared.slots;

let errors = 0;
const firstErrors: string[] = [];
function noteError(what: string): void {
  errors++;
  if (firstErrors.length < 5) firstErrors.push(what);
}

function reading(seq: number, ts = Date.now()): Reading {
  return { seq, ts, temperature: Math.round((68 + Math.sin(seq / 50) * 5) * 100) / 100, scale: "F" };
}

// ---------------------------------------------------------------------------
// Connections, per target
// ---------------------------------------------------------------------------

/** An upgrade the server answered with something else than 101: its status and error code, kept for the caller. */
class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    body: string,
  ) {
    super(`upgrade refused: ${status} ${body.slice(0, 200)}`);
  }
}

/** `onMessage` is attached before the socket opens: a first frame can arrive with the upgrade's answer. */
function openWs(url: string, onMessage: (text: string) => void, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      f();
    };
    ws.on("message", (data) => onMessage(String(data)));
    const timer = setTimeout(() => {
      settle(() => reject(new Error(`connect ${url.replace(/ticket=[^&]+/, "ticket=…")}: timed out`)));
      ws.terminate();
    }, 30_000);
    ws.once("open", () => settle(() => resolve(ws)));
    // Kept for the whole life of the socket: an error after open is followed by close, which the owner handles.
    ws.on("error", (err) => settle(() => reject(err)));
    // A refused upgrade: read the JSON error, so "ticket_required" can be told from a bad token.
    ws.on("unexpected-response", (req, res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => {
        let code = "";
        try {
          code = (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? "";
        } catch {
          // Not our JSON error (a proxy's page): the status alone says what happened.
        }
        settle(() => reject(new UpgradeRefused(res.statusCode ?? 0, code, body)));
        req.destroy();
      });
    });
  });
}

/** How device sockets open in this worker: the token in a header until the endpoint answers ticket_required. */
let deviceAuth: DeviceAuth | undefined;

async function hubTicket(target: Extract<Target, { kind: "hub" }>, bearer: string, body: object, ip: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${target.base}/api/tickets`, {
      method: "POST",
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json", "x-real-ip": ip },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (res.ok) {
      const { ticket, path } = JSON.parse(text) as { ticket: string; path: string };
      return `${target.base.replace(/^http/, "ws")}${path}?ticket=${encodeURIComponent(ticket)}`;
    }
    if (attempt >= 5) throw new Error(`ticket: ${res.status} ${text}`);
    await sleep(200 * 2 ** attempt);
  }
}

function mqttConnect(url: string, clientId: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { clientId, clean: true, reconnectPeriod: 0, connectTimeout: 30_000, keepalive: 60 });
    client.once("connect", () => resolve(client));
    client.once("error", (err) => {
      client.end(true);
      reject(err);
    });
  });
}

/** Set once the workers are told to finish: nothing reconnects any more. */
let finishing = false;

/**
 * scale: come back after the endpoint went away, the way the real client would.
 * `delay(attempt)` is the wait before attempt 1, 2, …; errors while the endpoint
 * is down are expected and not counted.
 */
async function reconnect(what: string, connect: () => Promise<void>, delay: (attempt: number) => number, back: number[]): Promise<void> {
  for (let attempt = 1; !finishing; attempt++) {
    await sleep(delay(attempt));
    if (finishing) return;
    try {
      await connect();
      back.push(now() - dropAt[0]!);
      return;
    } catch (err) {
      const why = (err instanceof Error ? err.message : String(err)).replace(/bench-[a-z0-9]+-scale-\d+/g, "<id>").replace(/[0-9a-f.:]*:\d{2,5}/g, "").slice(0, 80);
      retries[`${what.split(" ")[0]}: ${why}`] = (retries[`${what.split(" ")[0]}: ${why}`] ?? 0) + 1;
      if (attempt === 60) noteError(`${what}: still not back after 60 attempts (${err instanceof Error ? err.message : String(err)})`);
    }
  }
}

/** The dashboard's partysocket settings (dashboard/src/socket.ts): 1–2 s, growing 1.3× (partysocket's default), at most 10 s. */
function dashboardDelay(minMs: number): (attempt: number) => number {
  return (attempt) => Math.min(10_000, minMs * 1.3 ** (attempt - 1));
}

/** A device: sends readings, and on the hub keeps what is unacked to resend after a reconnect, as the agent does. */
class Device {
  readonly spec: DeviceSpec;
  seq = 0;
  sent = 0;
  /** Frames sent: live, held and burst ones (resends not counted). */
  frames = 0;
  #ws: WebSocket | undefined;
  #mqtt: MqttClient | undefined;
  #connected = false;
  /** hub: sent but not acked; peers: made while disconnected. */
  #pending: Reading[] = [];
  acked = 0;
  /** MQTT: publishes not yet written. */
  #inFlight = 0;
  /** hub: the last seq of each frame sent and not yet acked, oldest first (one ack may cover many frames). */
  #unacked: number[] = [];
  #waiters: (() => void)[] = [];
  #ping: NodeJS.Timeout | undefined;
  /** The room's `batching`: 0 live; more: hold readings and send them as one frame this often. */
  #holdMs = 0;
  #held: Reading[] = [];
  #holdTimer: NodeJS.Timeout | undefined;
  #closing = false;
  /** A `flush` was sent: an endpoint that does not know it answers an error, which is not the load's. */
  #flushAsked = false;
  readonly #stream = `bench-${Math.random().toString(36).slice(2, 12)}`;

  constructor(spec: DeviceSpec) {
    this.spec = spec;
  }

  async connect(): Promise<void> {
    const t = plan.target;
    if (t.kind === "hub") {
      const first = new Promise<void>((resolve) => this.#waiters.push(resolve));
      const ws = await this.#openHub(t);
      this.#phase("open");
      this.#ws = ws;
      // Only this socket's own close counts: after a storm's drop the old one may close late.
      ws.on("close", () => this.#ws === ws && this.#onClose());
      ws.send(
        JSON.stringify({
          type: "hello",
          stream: this.#stream,
          oldest: this.acked + 1,
          state: { scale: "F", intervalMs: Math.round(1000 / (plan.rateHz || 1)), fw: "bench", sensor: "bench" },
        }),
      );
      await within(first, 30_000, `device ${this.spec.id}: no ack to its hello`);
      this.#phase("hello");
      this.#unacked = [];
      this.#connected = true;
      // Heartbeats, as the agent sends them: a quiet device is closed as half-open after 15 s.
      this.#ping = setInterval(() => this.#ws?.readyState === WebSocket.OPEN && this.#ws.send(PING), 5_000);
      // Whatever was not acked goes again, oldest first (the room stores each seq once);
      // it stays pending until acked.
      this.#sendBatched(this.#pending);
    } else if (t.kind === "mqtt") {
      const client = await mqttConnect(t.url, `dev-${this.spec.id}`);
      this.#mqtt = client;
      client.on("close", () => this.#mqtt === client && this.#onClose());
      client.on("error", (err) => !dropAt[0] && noteError(`device mqtt: ${err.message}`));
      this.#connected = true;
      this.#flushPending();
    } else {
      const ws = await openWs(`${t.url}/device/${this.spec.id}`, () => {});
      this.#ws = ws;
      ws.on("close", () => this.#ws === ws && this.#onClose());
      this.#connected = true;
      this.#flushPending();
    }
    // Back after a drop: a reading at once, as the agent streams the moment its link is up, so the
    // storm measures the reconnect and not where the device was in its sampling period.
    if (this.seq > 0 && plan.scenario === "storm") this.produce(1);
  }

  /**
   * The device's socket into its room: its token in the Authorization header, as the agent opens
   * it, or through a ticket when the endpoint answers that upgrade 401 ticket_required (an endpoint
   * from before bearer upgrades); the first such answer switches this worker to tickets.
   */
  async #openHub(t: Extract<Target, { kind: "hub" }>): Promise<WebSocket> {
    const onMessage = (text: string) => this.#onHubMessage(text);
    if (deviceAuth !== "ticket") {
      try {
        const url = `${t.base.replace(/^http/, "ws")}/parties/device/${encodeURIComponent(this.spec.id)}`;
        const ws = await openWs(url, onMessage, { authorization: `Bearer ${this.spec.token!}`, "x-real-ip": this.spec.ip });
        deviceAuth = "bearer";
        return ws;
      } catch (err) {
        if (!(err instanceof UpgradeRefused && err.status === 401 && err.code === "ticket_required")) throw err;
        deviceAuth = "ticket";
      }
    }
    const url = await hubTicket(t, this.spec.token!, { device: this.spec.id, role: "device" }, this.spec.ip);
    this.#phase("ticket");
    return openWs(url, onMessage, { "x-real-ip": this.spec.ip });
  }

  /** storm: when each step of the reconnect finished, ms after the drop. */
  #phase(step: keyof typeof phases): void {
    const droppedAt = dropAt[0]!;
    if (plan.scenario === "storm" && droppedAt) phases[step].push(now() - droppedAt);
  }

  /** A peer device back on line: what was made while it was away goes now, and is no longer pending. */
  #flushPending(): void {
    const pending = this.#pending;
    this.#pending = [];
    this.#sendBatched(pending);
  }

  /** Readings sent before, again, in frames of the backlog's batch size (their send times stay the first). */
  #sendBatched(readings: Reading[]): void {
    for (let i = 0; i < readings.length; i += plan.backlog.batch) this.#sendFrame(readings.slice(i, i + plan.backlog.batch), false);
  }

  #onHubMessage(text: string): void {
    if (text === PONG) return;
    const msg = JSON.parse(text) as { type: string; seq?: number; maxDelayMs?: number; code?: string; message?: string };
    if (msg.type === "batching") return this.#setBatching(msg.maxDelayMs ?? 0);
    if (msg.type === "ack") {
      this.acked = Math.max(this.acked, msg.seq!);
      let drop = 0;
      while (drop < this.#pending.length && this.#pending[drop]!.seq <= this.acked) drop++;
      if (drop) this.#pending.splice(0, drop);
      // The room acks after a group commit: one ack settles every frame it covers.
      while (this.#unacked.length && this.#unacked[0]! <= this.acked) this.#unacked.shift();
    } else if (msg.type === "error") {
      if (this.#flushAsked) {
        // An endpoint without `flush`: what waits is committed at the group's deadline instead.
        this.#flushAsked = false;
        return;
      }
      noteError(`device ${this.spec.id}: ${msg.code} ${msg.message}`);
      // A refused frame will not be acked: it is no longer in flight.
      this.#unacked.shift();
    } else {
      return; // desired state, commands: not part of the load
    }
    this.#settle();
  }

  /** The room says whether anyone watches: live (0), or hold readings and send one frame per maxDelayMs. */
  #setBatching(maxDelayMs: number): void {
    if (maxDelayMs === this.#holdMs) return;
    this.#holdMs = maxDelayMs;
    clearInterval(this.#holdTimer);
    this.#holdTimer = undefined;
    if (maxDelayMs > 0) this.#holdTimer = setInterval(() => this.flushHeld(), maxDelayMs);
    else this.flushHeld(); // a dashboard opened: what was held goes now
  }

  /** What is held goes now, as one frame (or stays for the resend when the link is down). */
  flushHeld(): void {
    if (!this.#held.length || !this.#connected) return;
    const held = this.#held;
    this.#held = [];
    for (let i = 0; i < held.length; i += plan.backlog.batch) this.#sendFrame(held.slice(i, i + plan.backlog.batch), true);
  }

  /** The link is down: nothing is sent until it is back, and the room will say again whether to batch. */
  #down(): void {
    this.#connected = false;
    clearInterval(this.#ping);
    clearInterval(this.#holdTimer);
    this.#holdTimer = undefined;
    this.#holdMs = 0;
    // Held readings were never sent: they go with the resend, after what is unacked and before what comes next.
    this.#pending.push(...this.#held);
    this.#held = [];
  }

  #onClose(): void {
    const wasUp = this.#connected;
    this.#down();
    if (plan.scenario !== "scale" || this.#closing || finishing || !wasUp) return;
    // The endpoint went away: the seq it had when it went, then back with the agent's backoff.
    if (!Atomics.load(dropSeq, this.spec.index)) Atomics.store(dropSeq, this.spec.index, this.seq);
    this.#ws = undefined;
    this.#mqtt = undefined;
    void reconnect(`device ${this.spec.id}`, () => this.connect(), (attempt) => backoffDelay(attempt, DEFAULT_BACKOFF), back.device);
  }

  /** Make readings now and send them (or keep them until the link is back, or the next batching frame). */
  produce(count: number): void {
    const batch: Reading[] = [];
    for (let i = 0; i < count; i++) batch.push(reading(++this.seq));
    this.sent += count;
    if (!this.#connected) {
      // Made while the link is down: the hub device keeps them for the resend; a peer device for its reconnect.
      this.#pending.push(...batch);
      return;
    }
    if (this.#holdMs > 0) {
      this.#held.push(...batch);
      return;
    }
    this.#sendFrame(batch, true);
  }

  /** Readings made earlier (the backfill's outbox): only made here, sent by `sendFrames`. */
  backlog(readings: number): Reading[] {
    const start = Date.now() - readings * 1000;
    const out: Reading[] = [];
    for (let i = 0; i < readings; i++) out.push(reading(++this.seq, start + i * 1000));
    this.sent += readings;
    return out;
  }

  #sendFrame(batch: Reading[], fresh: boolean): void {
    const at = now();
    for (const r of batch) if (fresh || sendAt[this.spec.index * slots + r.seq] === 0) sendAt[this.spec.index * slots + r.seq] = at;
    if (fresh) this.frames++;
    const frame = JSON.stringify({ type: "readings", readings: batch });
    if (this.#mqtt) {
      this.#inFlight++;
      this.#mqtt.publish(`bench/${this.spec.id}`, frame, { qos: (plan.target as { qos: 0 | 1 }).qos }, () => {
        this.#inFlight = Math.max(0, this.#inFlight - 1);
        this.#settle();
      });
      return;
    }
    if (plan.target.kind === "hub") {
      if (fresh) this.#pending.push(...batch);
      this.#unacked.push(batch.at(-1)!.seq);
    }
    this.#ws!.send(frame);
  }

  #settle(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when fewer than `window` frames are unconfirmed (hub: unacked; MQTT: unwritten; ws: buffered). */
  async room(window: number): Promise<void> {
    if (this.#ws && plan.target.kind === "ws") {
      while (this.#ws.bufferedAmount > 1 << 20) await sleep(1);
      return;
    }
    const inFlight = () => (plan.target.kind === "hub" ? this.#unacked.length : this.#inFlight);
    while (inFlight() >= window) await new Promise<void>((r) => this.#waiters.push(r));
  }

  async sendFrames(readings: Reading[], batch: number, window: number): Promise<void> {
    for (let i = 0; i < readings.length; i += batch) {
      await this.room(window);
      while (!this.#connected) await sleep(10);
      // Sent for the first time: its send time is now, and the hub device keeps it until acked.
      this.#sendFrame(readings.slice(i, i + batch), true);
    }
  }

  /**
   * The end of a run: what is held goes now, and the room is asked to commit what waits at once
   * (`flush`, as the agent asks when it stops) rather than at its group's deadline.
   */
  finalFlush(): void {
    this.flushHeld();
    if (plan.target.kind !== "hub" || !this.#connected || this.acked >= this.seq) return;
    this.#flushAsked = true;
    this.#ws!.send(JSON.stringify({ type: "flush" }));
  }

  /** hub: resolves once every reading made so far is acked (or after `timeoutMs`). */
  async allAcked(timeoutMs: number): Promise<void> {
    const deadline = now() + timeoutMs;
    while (this.acked < this.seq && now() < deadline) await sleep(20);
  }

  /** The link drops as in a network blip: no close handshake. */
  drop(): void {
    Atomics.store(dropSeq, this.spec.index, this.seq);
    this.#down();
    this.#ws?.terminate();
    this.#mqtt?.stream.destroy();
    this.#mqtt?.end(true);
    this.#ws = undefined;
    this.#mqtt = undefined;
  }

  close(): void {
    this.#closing = true;
    clearInterval(this.#ping);
    clearInterval(this.#holdTimer);
    this.#ws?.close();
    this.#mqtt?.end(true);
  }
}

/** A dashboard: counts what arrives, once per seq, and how late. */
class Dashboard {
  readonly spec: DashboardSpec;
  /** Seqs seen: a backfill interleaves old and live readings, so order is not the test of a repeat. */
  readonly #seen = new Uint8Array(slots);
  maxSeq = 0;
  delivered = 0;
  duplicates = 0;
  outOfOrder = 0;
  backlogHeld = 0;
  drainedAt = 0;
  /** scale: readings sent before markAt that arrived. */
  steadyDelivered = 0;
  #ws: WebSocket | undefined;
  #mqtt: MqttClient | undefined;
  #closing = false;
  /** Each dashboard's own jittered first delay, as partysocket draws it once per socket. */
  readonly #retry = dashboardDelay(1000 + Math.random() * 1000);

  constructor(spec: DashboardSpec) {
    this.spec = spec;
  }

  async connect(): Promise<void> {
    const t = plan.target;
    if (t.kind === "hub") {
      const url = await hubTicket(t, t.adminToken, { device: this.spec.id, role: "dashboard" }, this.spec.ip);
      let snapshotSeen: () => void = () => {};
      const snapshot = new Promise<void>((resolve) => (snapshotSeen = resolve));
      const ws = await openWs(url, (text) => (text.startsWith('{"type":"snapshot"') ? snapshotSeen() : this.#onFrame(text)), { "x-real-ip": this.spec.ip });
      this.#ws = ws;
      ws.on("close", () => this.#ws === ws && this.#onClose());
      await within(snapshot, 30_000, `dashboard of ${this.spec.id}: no snapshot`);
    } else if (t.kind === "mqtt") {
      const client = await mqttConnect(t.url, `dash-${this.spec.id}-${Math.random().toString(36).slice(2, 10)}`);
      client.on("message", (_topic, payload) => this.#onFrame(payload.toString()));
      client.on("error", (err) => !dropAt[0] && noteError(`dashboard mqtt: ${err.message}`));
      this.#mqtt = client;
      client.on("close", () => this.#mqtt === client && this.#onClose());
      await client.subscribeAsync(`bench/${this.spec.id}`, { qos: t.qos });
    } else {
      this.#ws = await openWs(`${t.url}/dashboard/${this.spec.id}`, (text) => this.#onFrame(text));
    }
  }

  /** scale: the endpoint went away; back as the dashboard's partysocket would come back. */
  #onClose(): void {
    if (plan.scenario !== "scale" || this.#closing || finishing) return;
    this.#mqtt?.end(true);
    this.#ws = undefined;
    this.#mqtt = undefined;
    void reconnect(`dashboard of ${this.spec.id}`, () => this.connect(), this.#retry, back.dashboard);
  }

  #onFrame(text: string): void {
    const at = now();
    let msg: { type: string; readings?: Reading[] };
    try {
      msg = JSON.parse(text);
    } catch {
      return noteError(`dashboard: a frame that is not JSON`);
    }
    if (msg.type !== "readings" || !msg.readings) return;
    const d = this.spec.device;
    const markAt = dropAt[1]!;
    for (const r of msg.readings) {
      if (this.#seen[r.seq]) {
        this.duplicates++;
        continue;
      }
      this.#seen[r.seq] = 1;
      if (r.seq < this.maxSeq) this.outOfOrder++;
      else this.maxSeq = r.seq;
      this.delivered++;
      lastDeliveryAt = at;
      const sent = sendAt[d * slots + r.seq]!;
      if (plan.scenario === "backfill") {
        if (r.seq <= plan.backlog.readings) {
          if (++this.backlogHeld === plan.backlog.readings) {
            this.drainedAt = at - goAt;
            checkComplete();
          }
        } else if (sent) latency.push(at - sent);
      } else if (plan.scenario === "scale") {
        // The steady phase is judged on its own: what was sent before the mark, and how late.
        if (sent && (!markAt || sent < markAt)) {
          this.steadyDelivered++;
          latency.push(at - sent);
        }
      } else if (sent) latency.push(at - sent);
      if (plan.scenario === "storm" || plan.scenario === "scale") {
        const droppedAt = dropAt[0]!;
        const seqAtDrop = Atomics.load(dropSeq, d);
        if (droppedAt && seqAtDrop && r.seq > seqAtDrop && recovered[d] === undefined) {
          recovered[d] = at - droppedAt;
          checkRecovered();
        }
      }
    }
    if (plan.scenario === "burst" && this.delivered >= plan.burst.readings) checkComplete();
  }

  /** scale: readings of this dashboard's device sent before markAt (held ones never sent are not expected). */
  steadyExpected(): number {
    const markAt = dropAt[1]!;
    let n = 0;
    for (let seq = 1; seq < slots; seq++) {
      const sent = sendAt[this.spec.device * slots + seq]!;
      if (sent && (!markAt || sent < markAt)) n++;
    }
    return n;
  }

  close(): void {
    this.#closing = true;
    this.#ws?.close();
    this.#mqtt?.end(true);
  }
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

const latency = new Samples();
const phases = { ticket: [] as number[], open: [] as number[], hello: [] as number[] };
const back = { device: [] as number[], dashboard: [] as number[] };
const retries: Record<string, number> = {};
const recovered: Record<number, number> = {};
let lastDeliveryAt = 0;
let goAt = 0;
let completeSent = false;
let recoveredSent = true;
const devices = plan.devices.map((s) => new Device(s));
const dashboards = plan.dashboards.map((s) => new Dashboard(s));
const timers: NodeJS.Timeout[] = [];

function checkComplete(): void {
  if (completeSent) return;
  const done =
    plan.scenario === "burst"
      ? dashboards.every((d) => d.delivered >= plan.burst.readings)
      : dashboards.every((d) => d.backlogHeld >= plan.backlog.readings);
  if (done) {
    completeSent = true;
    parentPort!.postMessage({ type: "complete" } satisfies FromWorker);
  }
}

/** scale: every device this worker's dashboards watch has a reading from after the restart. */
function checkRecovered(): void {
  if (recoveredSent || !dashboards.every((d) => recovered[d.spec.device] !== undefined)) return;
  recoveredSent = true;
  parentPort!.postMessage({ type: "recovered" } satisfies FromWorker);
}

async function inBatches<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += CONNECT_CONCURRENCY) await Promise.all(items.slice(i, i + CONNECT_CONCURRENCY).map(fn));
}

/** Steady streams: every device at rateHz, each starting at a random phase. */
function stream(): void {
  const every = 1000 / plan.rateHz;
  for (const d of devices) {
    timers.push(
      setTimeout(() => {
        d.produce(1);
        timers.push(setInterval(() => d.produce(1), every));
      }, Math.random() * every),
    );
  }
}

async function go(): Promise<void> {
  goAt = now();
  switch (plan.scenario) {
    case "fleet":
    case "storm":
    case "unwatched":
    case "scale":
      return stream();
    case "burst": {
      await Promise.all(
        devices.map(async (d) => {
          const all: Reading[] = [];
          for (let i = 0; i < plan.burst.readings; i++) all.push(reading(++d.seq));
          d.sent += all.length;
          await d.sendFrames(all, plan.burst.batch, plan.burst.window);
        }),
      );
      // A worker with dashboards only: complete when they are.
      return checkComplete();
    }
    case "backfill": {
      // Live readings keep coming while the backlog drains.
      if (devices.length) stream();
      await Promise.all(devices.map((d) => d.sendFrames(d.backlog(plan.backlog.readings), plan.backlog.batch, 2)));
      return checkComplete();
    }
  }
}

parentPort!.on("message", (msg: ToWorker) => {
  switch (msg.type) {
    case "go":
      setTimeout(() => void go().catch((err) => noteError(`go: ${err}`)), Math.max(0, msg.at - now()));
      return;
    case "drop":
      for (const d of devices) d.drop();
      // Reconnect at once, all together: the storm.
      for (const d of devices) void d.connect().catch((err) => noteError(`reconnect ${d.spec.id}: ${err}`));
      return;
    case "restart":
      // Sockets close by themselves when the endpoint dies; each comes back on its own (see #onClose).
      recoveredSent = false;
      checkRecovered();
      return;
    case "stop":
      for (const t of timers) clearInterval(t);
      return;
    case "flush":
      for (const d of devices) d.finalFlush();
      void Promise.all(devices.map((d) => d.allAcked(15_000))).then(() =>
        parentPort!.postMessage({ type: "flushed", unacked: devices.reduce((n, d) => n + Math.max(0, d.seq - d.acked), 0) } satisfies FromWorker),
      );
      return;
    case "finish": {
      finishing = true;
      for (const t of timers) clearInterval(t);
      for (const d of devices) d.close();
      for (const d of dashboards) d.close();
      const values = latency.values();
      parentPort!.postMessage(
        {
          type: "result",
          delivered: dashboards.reduce((n, d) => n + d.delivered, 0),
          duplicates: dashboards.reduce((n, d) => n + d.duplicates, 0),
          outOfOrder: dashboards.reduce((n, d) => n + d.outOfOrder, 0),
          latency: values,
          lastDeliveryAt,
          sent: Object.fromEntries(devices.map((d) => [d.spec.index, d.sent])),
          recovered,
          drained: dashboards.map((d) => d.drainedAt),
          phases,
          back,
          retries,
          acked: Object.fromEntries(devices.map((d) => [d.spec.index, d.acked])),
          deviceAuth,
          steady: {
            expected: plan.scenario === "scale" ? dashboards.reduce((n, d) => n + d.steadyExpected(), 0) : 0,
            delivered: dashboards.reduce((n, d) => n + d.steadyDelivered, 0),
          },
          frames: devices.reduce((n, d) => n + d.frames, 0),
          errors,
          firstErrors,
        } satisfies WorkerResult,
        [values.buffer as ArrayBuffer],
      );
      return;
    }
  }
});

// Dashboards first, so they hear every reading; then the devices.
try {
  await inBatches(dashboards, (d) => d.connect());
  await inBatches(devices, (d) => d.connect());
  parentPort!.postMessage({ type: "ready" } satisfies FromWorker);
} catch (err) {
  parentPort!.postMessage({ type: "failed", error: err instanceof Error ? err.message : String(err) } satisfies FromWorker);
}
