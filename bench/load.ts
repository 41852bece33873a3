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
 */
import { parentPort, workerData } from "node:worker_threads";
import mqtt, { type MqttClient } from "mqtt";
import WebSocket from "ws";
import { PING, PONG } from "../party/protocol";
import { Samples } from "./lib/stats";

export type Target =
  | { kind: "hub"; base: string; adminToken: string }
  | { kind: "mqtt"; url: string; qos: 0 | 1 }
  | { kind: "ws"; url: string };

export type Scenario = "fleet" | "burst" | "storm" | "backfill";

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
  /** Send times by device * slots + seq (Float64), and for the storm: [dropAt] (Float64) and seq at drop by device (Int32). */
  shared: { sendAt: SharedArrayBuffer; slots: number; dropAt: SharedArrayBuffer; dropSeq: SharedArrayBuffer };
};

export type ToWorker = { type: "go"; at: number } | { type: "drop" } | { type: "stop" } | { type: "finish" };

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
  errors: number;
  firstErrors: string[];
};

export type FromWorker = { type: "ready" } | { type: "complete" } | WorkerResult | { type: "failed"; error: string };

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

/** `onMessage` is attached before the socket opens: a first frame can arrive with the upgrade's answer. */
function openWs(url: string, onMessage: (text: string) => void, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    ws.on("message", (data) => onMessage(String(data)));
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`connect ${url.replace(/ticket=[^&]+/, "ticket=…")}: timed out`));
    }, 30_000);
    ws.once("open", () => {
      clearTimeout(timer);
      resolve(ws);
    });
    ws.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

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
    client.once("error", reject);
  });
}

/** A device: sends readings, and on the hub keeps what is unacked to resend after a reconnect, as the agent does. */
class Device {
  readonly spec: DeviceSpec;
  seq = 0;
  sent = 0;
  #ws: WebSocket | undefined;
  #mqtt: MqttClient | undefined;
  #connected = false;
  /** hub: sent but not acked; peers: made while disconnected. */
  #pending: Reading[] = [];
  #acked = 0;
  #inFlight = 0;
  #waiters: (() => void)[] = [];
  #ping: NodeJS.Timeout | undefined;
  readonly #stream = `bench-${Math.random().toString(36).slice(2, 12)}`;

  constructor(spec: DeviceSpec) {
    this.spec = spec;
  }

  async connect(): Promise<void> {
    const t = plan.target;
    if (t.kind === "hub") {
      const url = await hubTicket(t, this.spec.token!, { device: this.spec.id, role: "device" }, this.spec.ip);
      this.#phase("ticket");
      const first = new Promise<void>((resolve) => this.#waiters.push(resolve));
      const ws = await openWs(url, (text) => this.#onHubMessage(text), { "x-real-ip": this.spec.ip });
      this.#phase("open");
      this.#ws = ws;
      ws.on("close", () => this.#onClose());
      ws.send(
        JSON.stringify({
          type: "hello",
          stream: this.#stream,
          oldest: this.#acked + 1,
          state: { scale: "F", intervalMs: Math.round(1000 / (plan.rateHz || 1)), fw: "bench", sensor: "bench" },
        }),
      );
      await within(first, 30_000, `device ${this.spec.id}: no ack to its hello`);
      this.#phase("hello");
      this.#inFlight = 0;
      this.#connected = true;
      // Heartbeats, as the agent sends them: a quiet device is closed as half-open after 15 s.
      this.#ping = setInterval(() => this.#ws?.readyState === WebSocket.OPEN && this.#ws.send(PING), 5_000);
      // Whatever was not acked goes again, oldest first (the room stores each seq once);
      // it stays pending until acked.
      this.#sendBatched(this.#pending);
    } else if (t.kind === "mqtt") {
      this.#mqtt = await mqttConnect(t.url, `dev-${this.spec.id}`);
      this.#mqtt.on("close", () => this.#onClose());
      this.#mqtt.on("error", (err) => noteError(`device mqtt: ${err.message}`));
      this.#connected = true;
      this.#flushPending();
    } else {
      this.#ws = await openWs(`${t.url}/device/${this.spec.id}`, () => {});
      this.#ws.on("close", () => this.#onClose());
      this.#connected = true;
      this.#flushPending();
    }
    // Back after a drop: a reading at once, as the agent streams the moment its link is up, so the
    // storm measures the reconnect and not where the device was in its sampling period.
    if (this.seq > 0 && plan.scenario === "storm") this.produce(1);
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
    const msg = JSON.parse(text) as { type: string; seq?: number; code?: string; message?: string };
    if (msg.type === "ack") {
      this.#acked = Math.max(this.#acked, msg.seq!);
      let drop = 0;
      while (drop < this.#pending.length && this.#pending[drop]!.seq <= this.#acked) drop++;
      if (drop) this.#pending.splice(0, drop);
    } else if (msg.type === "error") {
      noteError(`device ${this.spec.id}: ${msg.code} ${msg.message}`);
    } else {
      return; // desired state, commands: not part of the load
    }
    // One reply (ack or error) per readings frame: one frame fewer in flight.
    this.#settle();
  }

  #onClose(): void {
    this.#connected = false;
    clearInterval(this.#ping);
  }

  /** Make readings now and send them (or keep them until the link is back). */
  produce(count: number): void {
    const batch: Reading[] = [];
    for (let i = 0; i < count; i++) batch.push(reading(++this.seq));
    this.sent += count;
    if (!this.#connected) {
      // Made while the link is down: the hub device keeps them for the resend; a peer device for its reconnect.
      this.#pending.push(...batch);
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
    const frame = JSON.stringify({ type: "readings", readings: batch });
    if (this.#mqtt) {
      this.#inFlight++;
      this.#mqtt.publish(`bench/${this.spec.id}`, frame, { qos: (plan.target as { qos: 0 | 1 }).qos }, () => this.#settle());
      return;
    }
    if (plan.target.kind === "hub" && fresh) this.#pending.push(...batch);
    if (plan.target.kind === "hub") this.#inFlight++;
    this.#ws!.send(frame);
  }

  #settle(): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
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
    while (this.#inFlight >= window) await new Promise<void>((r) => this.#waiters.push(r));
  }

  async sendFrames(readings: Reading[], batch: number, window: number): Promise<void> {
    for (let i = 0; i < readings.length; i += batch) {
      await this.room(window);
      while (!this.#connected) await sleep(10);
      // Sent for the first time: its send time is now, and the hub device keeps it until acked.
      this.#sendFrame(readings.slice(i, i + batch), true);
    }
  }

  /** The link drops as in a network blip: no close handshake. */
  drop(): void {
    Atomics.store(dropSeq, this.spec.index, this.seq);
    this.#connected = false;
    clearInterval(this.#ping);
    this.#ws?.terminate();
    this.#mqtt?.stream.destroy();
    this.#mqtt?.end(true);
    this.#ws = undefined;
    this.#mqtt = undefined;
  }

  close(): void {
    clearInterval(this.#ping);
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
  #ws: WebSocket | undefined;
  #mqtt: MqttClient | undefined;

  constructor(spec: DashboardSpec) {
    this.spec = spec;
  }

  async connect(): Promise<void> {
    const t = plan.target;
    if (t.kind === "hub") {
      const url = await hubTicket(t, t.adminToken, { device: this.spec.id, role: "dashboard" }, this.spec.ip);
      let snapshotSeen: () => void = () => {};
      const snapshot = new Promise<void>((resolve) => (snapshotSeen = resolve));
      this.#ws = await openWs(url, (text) => (text.startsWith('{"type":"snapshot"') ? snapshotSeen() : this.#onFrame(text)), { "x-real-ip": this.spec.ip });
      await within(snapshot, 30_000, `dashboard of ${this.spec.id}: no snapshot`);
    } else if (t.kind === "mqtt") {
      const client = await mqttConnect(t.url, `dash-${this.spec.id}-${Math.random().toString(36).slice(2, 10)}`);
      await client.subscribeAsync(`bench/${this.spec.id}`, { qos: t.qos });
      client.on("message", (_topic, payload) => this.#onFrame(payload.toString()));
      client.on("error", (err) => noteError(`dashboard mqtt: ${err.message}`));
      this.#mqtt = client;
    } else {
      this.#ws = await openWs(`${t.url}/dashboard/${this.spec.id}`, (text) => this.#onFrame(text));
    }
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
      } else if (sent) latency.push(at - sent);
      if (plan.scenario === "storm") {
        const droppedAt = dropAt[0]!;
        const seqAtDrop = Atomics.load(dropSeq, d);
        if (droppedAt && seqAtDrop && r.seq > seqAtDrop && recovered[d] === undefined) recovered[d] = at - droppedAt;
      }
    }
    if (plan.scenario === "burst" && this.delivered >= plan.burst.readings) checkComplete();
  }

  close(): void {
    this.#ws?.close();
    this.#mqtt?.end(true);
  }
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

const latency = new Samples();
const phases = { ticket: [] as number[], open: [] as number[], hello: [] as number[] };
const recovered: Record<number, number> = {};
let lastDeliveryAt = 0;
let goAt = 0;
let completeSent = false;
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
    case "stop":
      for (const t of timers) clearInterval(t);
      return;
    case "finish": {
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
