/**
 * The agent: sample → outbox → link, and commands back.
 *
 * Read in the order a reading travels:
 *  1. start(): open the outbox (and the persisted desired state), pick the
 *     sensor, light the LED, start sampling at once (no endpoint needed: the
 *     outbox keeps everything), then register and open the link in the background;
 *  2. sample(): read, convert to the current scale, append to the outbox
 *     (numbered and held; on disk before it is sent only with --outbox strict,
 *     else once not acked within 30 s), log `Temperature: …`, send live;
 *  3. the link's frames: `ack` prunes the outbox, `desired` and `command`
 *     change the desired state (persisted, answered, reported);
 *  4. stop(): stop sampling, give the link a moment to drain, release everything
 *     (closing the outbox writes what memory still holds).
 */
import { join } from "node:path";
import {
  DesiredState,
  IntervalMs,
  Reading,
  convert,
  describeIssues,
  toPrintable,
  type IotConfigResponse,
  type ReportedState,
  type ToDeviceMessage,
} from "../party/protocol.ts";
import { DEFAULT_BACKOFF, backoffDelay, type Backoff } from "./backoff.ts";
import { applyCommand, rejectInvalidCommand } from "./commands.ts";
import type { AgentConfig } from "./config.ts";
import { EndpointClient, EndpointError } from "./http.ts";
import { startHeartbeatLed, type HeartbeatLed } from "./led.ts";
import { Link } from "./link.ts";
import { LINES, consoleLogger, errorText, sleep, throttle, type Logger } from "./log.ts";
import { Outbox, ReadingRefused } from "./outbox.ts";
import { Sender } from "./sender.ts";
import { chooseSensor, type Sensor } from "./sensors/index.ts";
import { Updater } from "./update/updater.ts";
import { FW_VERSION } from "./version.ts";

/** Sensor-error counts are reported at most this often (a dead sensor at 1 Hz would otherwise flood). */
const SENSOR_REPORT_MS = 10_000;
/** On stop, wait at most this long for the room to ack what is still in the outbox. */
const DRAIN_MS = 3_000;

export type AgentDeps = {
  log?: Logger;
  sensor?: Sensor;
  client?: EndpointClient;
  /** How often a disk that refused writes is tried again (tests: 0; default STORAGE_RETRY_MS). */
  storageRetryMs?: number;
  /** Stop and exit with `code` when an update is installed (default: stop(), then process.exit). */
  exit?: (code: number) => Promise<void>;
  /** The wall clock and the monotonic one (ms; since boot on Linux), injectable to test a wrong clock. */
  clock?: { now(): number; mono(): number };
};

/** A clock this far off the endpoint's is worth a log line and a mark on the dashboard. */
const SKEW_NOTE_MS = 2_000;
/** Readings taken before the first measurement whose times can still be corrected (28 h at 1 Hz). */
const MAX_UNTIMED = 100_000;

export class Agent {
  readonly config: AgentConfig;
  readonly client: EndpointClient;
  #log: Logger;
  #backoff: Backoff;
  #deps: AgentDeps;
  #outbox!: Outbox;
  #sensor!: Sensor;
  #led: HeartbeatLed | null = null;
  #sender!: Sender;
  #link: Link | null = null;
  /** Over-the-air updates (device/update/updater.ts). */
  #updater: Updater | null = null;
  #desired!: DesiredState;
  #stopped = false;
  #sampleTimer: ReturnType<typeof setTimeout> | undefined;
  #sampling: Promise<void> = Promise.resolve();
  #nextSampleAt = 0;
  #reportedErrors = 0;
  /** Readings since the last status line (quiet mode). */
  #summary = { count: 0, last: "", since: Date.now() };
  #summaryTimer: ReturnType<typeof setInterval> | undefined;
  #reportedProblem: string | undefined;
  #reportedStorage: string | undefined;
  #clock: { now(): number; mono(): number };
  /**
   * The endpoint's time minus the monotonic clock, from the last registration (null before
   * the first): a reading's time is this plus its monotonic time, whatever the wall clock
   * says or does meanwhile (a Pi Zero has no RTC; NTP may step it later).
   */
  #epoch: number | null = null;
  /** This device's wall clock minus the endpoint's, as last measured (reported as state.clockSkewMs). */
  #skewMs: number | null = null;
  /** seq → monotonic time of readings taken before the first measurement, corrected when they are sent. */
  #untimed = new Map<number, number>();
  #sensorReportGate = throttle(SENSOR_REPORT_MS);

  constructor(config: AgentConfig, deps: AgentDeps = {}) {
    this.config = config;
    this.#deps = deps;
    this.#log = deps.log ?? consoleLogger;
    this.#clock = deps.clock ?? { now: Date.now, mono: () => Number(process.hrtime.bigint() / 1_000_000n) };
    this.#backoff = { ...DEFAULT_BACKOFF, maxMs: config.backoffMaxMs };
    this.client =
      deps.client ??
      new EndpointClient({ endpoint: new URL(config.endpoint), id: config.id, ip: config.ip, token: config.token });
  }

  get outbox(): Outbox {
    return this.#outbox;
  }

  async start(): Promise<void> {
    const c = this.config;
    this.#outbox = this.#openOutbox();
    this.#reportedStorage = this.#outbox.problem; // said in the first hello
    this.#desired = this.#outbox.getJson("desired", DesiredState) ?? { scale: c.scale, intervalMs: c.intervalMs };
    this.#sensor =
      this.#deps.sensor ??
      (await chooseSensor(
        { simulate: c.sensor === "simulated", i2cBus: c.i2cBus, i2cAddress: c.i2cAddress, tmp102RateHz: c.tmp102Rate, tmp102Extended: c.tmp102Extended },
        this.#log,
      ));
    if (c.led) this.#led = await startHeartbeatLed({ line: c.ledGpio, log: this.#log });
    const outbox = this.#outbox;
    this.#sender = new Sender({
      // The outbox as the sender sees it: times of readings taken before the clock was known are corrected on the way out.
      outbox: {
        get stream() { return outbox.stream; },
        get oldest() { return outbox.oldest; },
        get next() { return outbox.next; },
        get source() { return outbox.source; },
        readAfter: (after, limit) => this.#timed(outbox.readAfter(after, limit)),
        ack: (seq) => {
          for (const s of this.#untimed.keys()) if (s <= seq) this.#untimed.delete(s);
          return outbox.ack(seq);
        },
        setBatching: (batching) => outbox.setBatching(batching),
      },
      send: (msg) => this.#link?.send(msg) ?? false,
      state: () => this.state(),
    });
    this.#updater = this.#startUpdater();
    this.#log.info(
      `Device ${c.id}: ${this.#sensor.name} sensor, every ${this.#desired.intervalMs} ms in °${this.#desired.scale}; ` +
        `outbox ${this.#outbox.path} (${this.#outbox.size} waiting, next seq ${this.#outbox.next}; ` +
        `${this.#outbox.spillMs === 0 ? "strict: every reading on disk" : `memory first: on disk when unacked for ${this.#outbox.spillMs / 1000} s, ${this.#outbox.spillUnwatchedMs / 1000} s while the room batches`})`,
    );
    this.#scheduleSample(0);
    if (c.quiet) {
      this.#summaryTimer = setInterval(() => this.#logSummary(), c.summaryMs ?? 600_000);
      this.#summaryTimer.unref?.();
    }
    void this.#connect();
  }

  /**
   * The outbox of this run's sensor kind: `outbox.sqlite`, or `outbox-<kind>.sqlite` when
   * that file holds the other kind's readings (a state directory used with and without
   * --simulate). One outbox is one stream of one source, so the room can never file
   * simulated readings under a real sensor's stream, or the other way round.
   */
  #openOutbox(): Outbox {
    const c = this.config;
    // Memory first unless strict (every reading on disk before it is sent): see the top of outbox.ts.
    const spillMs = c.outbox === "strict" ? 0 : c.spillMs;
    const opts = { maxReadings: c.outboxMax, log: this.#log, retryMs: this.#deps.storageRetryMs, spillMs, spillUnwatchedMs: c.spillUnwatchedMs, spillMax: c.spillMax };
    const main = new Outbox(join(c.stateDir, "outbox.sqlite"), opts);
    if (main.claimSource(c.sensor)) return main;
    main.close();
    const own = new Outbox(join(c.stateDir, `outbox-${c.sensor}.sqlite`), opts);
    if (!own.claimSource(c.sensor)) throw new Error(`${own.path} holds readings of another sensor kind; move it away`);
    return own;
  }

  /**
   * Now on the endpoint's clock, as reading times are taken (the registration's time plus the
   * monotonic clock since), so a device time in the room's trace is comparable with the room's own
   * to within the registration's round trip; null before the first registration measured it.
   */
  #endpointNow(): number | null {
    return this.#epoch === null ? null : Math.round(this.#epoch + this.#clock.mono());
  }

  /** What the room is told about this device. */
  state(): ReportedState {
    return {
      scale: this.#desired.scale,
      intervalMs: this.#desired.intervalMs,
      fw: FW_VERSION,
      ip: this.config.ip,
      sensor: this.#sensor.name,
      ...(this.#sensor.problem ? { sensorProblem: toPrintable(this.#sensor.problem, 200) } : {}),
      sensorErrors: this.#sensor.errors,
      dropped: this.#outbox.dropped,
      ...(this.#outbox.problem ? { storageProblem: toPrintable(this.#outbox.problem, 200) } : {}),
      ...(this.#skewMs !== null ? { clockSkewMs: this.#skewMs } : {}),
    };
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#sampleTimer);
    clearInterval(this.#summaryTimer);
    await this.#sampling;
    // Give the room a moment to ack the last readings, so a clean stop leaves an empty outbox.
    this.#sender.drain();
    const deadline = Date.now() + DRAIN_MS;
    while (this.#link?.up && this.#outbox.size > 0 && Date.now() < deadline) await sleep(50);
    this.#link?.close();
    this.#led?.close();
    await this.#sensor.close();
    this.#outbox.close();
  }

  // -------------------------------------------------------------------------
  // Sampling
  // -------------------------------------------------------------------------

  #scheduleSample(delayMs: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#sampleTimer);
    this.#nextSampleAt = Date.now() + delayMs;
    this.#sampleTimer = setTimeout(() => {
      this.#sampling = this.#sample();
    }, delayMs);
  }

  async #sample(): Promise<void> {
    // Fixed rate, not fixed delay: the next sample is due one interval after this one was.
    const due = this.#nextSampleAt;
    try {
      const celsius = await this.#sensor.readCelsius();
      this.#record(celsius);
    } catch {
      // The sensor logged and counted it; this sample is skipped, and the room hears the count below.
    }
    // Checked after good samples too, so the last count before a recovery is not held back by the throttle.
    this.#reportSensorErrors();
    if (this.#stopped) return;
    const next = Math.max(due + this.#desired.intervalMs, Date.now());
    this.#scheduleSample(next - Date.now());
  }

  #record(celsius: number): void {
    const { scale } = this.#desired;
    const temperature = Math.round(convert(celsius, "C", scale) * 100) / 100;
    const mono = this.#clock.mono();
    // Once the endpoint's time is known, a reading's time comes from it and the monotonic clock, not the wall clock.
    const ts = this.#epoch === null ? this.#clock.now() : Math.round(this.#epoch + mono);
    const candidate = { seq: this.#outbox.next, ts, temperature, scale };
    // Validated before it is stored: a value the room would refuse must not block the outbox forever.
    const valid = Reading.safeParse(candidate);
    if (!valid.success) {
      this.#log.warn(`Discarding an impossible reading (${describeIssues(valid.error)})`);
      return;
    }
    const droppedBefore = this.#outbox.dropped;
    let reading: Reading;
    try {
      // A full disk does not throw here: the outbox holds the reading in memory and names the cause.
      reading = this.#outbox.append({ ts: candidate.ts, temperature, scale });
    } catch (err) {
      // Disk refusing and memory full: the outbox said so once; not a line per sample.
      if (!(err instanceof ReadingRefused)) this.#log.error(`Outbox write failed, reading lost: ${errorText(err)}`);
      this.#reportStorage();
      return;
    }
    this.#reportStorage();
    if (this.#epoch === null && this.#untimed.size < MAX_UNTIMED) this.#untimed.set(reading.seq, mono);
    if (!this.config.quiet) this.#log.info(LINES.temperature(temperature, scale));
    this.#summary.count++;
    this.#summary.last = LINES.temperature(temperature, scale).replace(/^Temperature: /, "");
    if (this.#outbox.dropped !== droppedBefore) this.#sender.hello();
    this.#sender.onReading(reading);
  }

  /** Quiet mode's one line per period, in place of a line per reading. */
  #logSummary(): void {
    const s = this.#summary;
    const minutes = Math.max(1, Math.round((Date.now() - s.since) / 60_000));
    const sensor = this.#sensor.problem ? `sensor unavailable (${this.#sensor.problem})` : `last ${s.last || "none"}`;
    const storage = this.#outbox.problem ? ` (${this.#outbox.inMemory} only in memory: ${this.#outbox.problem})` : "";
    this.#log.info(
      `Status: ${s.count} readings in the last ${minutes} min, ${sensor}; ${this.#outbox.size} waiting for the endpoint${storage}; link ${this.#link?.up ? "up" : "down"}`,
    );
    this.#summary = { count: 0, last: s.last, since: Date.now() };
  }

  /** A disk that fills up (or frees up) is news for the room at once, like a sensor that goes missing. */
  #reportStorage(): void {
    const problem = this.#outbox.problem;
    if (problem === this.#reportedStorage) return;
    this.#reportedStorage = problem;
    this.#sender.report();
  }

  #reportSensorErrors(): void {
    // A sensor that appears (or goes missing) is news at once; error counts at most every 10 s.
    const problem = this.#sensor.problem;
    if (problem !== this.#reportedProblem) {
      this.#reportedProblem = problem;
      this.#sender.report();
    }
    if (this.#sensor.errors !== this.#reportedErrors && this.#sensorReportGate()) {
      this.#reportedErrors = this.#sensor.errors;
      this.#sender.report();
    }
  }

  // -------------------------------------------------------------------------
  // Registration and link
  // -------------------------------------------------------------------------

  /** Register (retried forever, with backoff), apply the configuration, open the link. */
  async #connect(): Promise<void> {
    if (!this.config.token) {
      this.#log.warn(
        `No device token: set IOT_TOKEN (or --token) to the token an operator makes with ` +
          `\`npm run device -- provision --endpoint ${this.config.endpoint} --id ${this.config.id} --admin-token <operator token>\``,
      );
    }
    let lastWhy = "";
    for (let attempt = 0; !this.#stopped; attempt++) {
      this.#log.info(LINES.awaiting);
      try {
        const { config } = await this.#register();
        if (this.#stopped) return;
        this.#applyRegistration(config);
        this.#openLink(this.client.socketUrl(config.socketPath), config.heartbeatMs);
        return;
      } catch (err) {
        // Why, once per distinct reason (a retry loop must not repeat the same line forever).
        const why =
          err instanceof EndpointError && err.status === 401 && !this.config.token
            ? "401: this endpoint wants a device token (IOT_TOKEN); see the line above"
            : err instanceof EndpointError && err.status < 500 && err.status !== 429
              ? `registration refused: ${err.message}`
              : errorText(err);
        if (why !== lastWhy) {
          lastWhy = why;
          this.#log.warn(`${LINES.awaiting.replace(/ \.\.\.$/, "")} at ${this.config.endpoint}: ${why} (retrying)`);
        }
        await sleep(backoffDelay(attempt + 1, this.#backoff));
      }
    }
  }

  /**
   * GET /iot/config, timed: its `ts` is the endpoint's clock, so every (re)connect measures
   * this device's skew and the epoch reading times are taken from (issue 13, item 6).
   */
  async #register(): Promise<IotConfigResponse> {
    const sentMono = this.#clock.mono();
    const answer = await this.client.config();
    const mono = this.#clock.mono();
    // The endpoint stamped `ts` somewhere in the round trip: its middle is the best guess.
    const at = (sentMono + mono) / 2;
    const skewMs = Math.round(this.#clock.now() - (mono - at) - answer.ts);
    const first = this.#epoch === null;
    this.#epoch = answer.ts - at;
    const changed = this.#skewMs === null || Math.abs(skewMs - this.#skewMs) >= 1_000;
    this.#skewMs = skewMs;
    if (Math.abs(skewMs) >= SKEW_NOTE_MS && (first || changed)) {
      this.#log.warn(
        `Clock: this device is ${describeSkew(skewMs)} the endpoint; reading times are taken from the endpoint's clock` +
          (first && this.#untimed.size ? ` (${this.#untimed.size} readings taken before now corrected as they are sent)` : "") +
          `. Fix the clock: sudo timedatectl set-ntp true`,
      );
    }
    if (changed) this.#sender.report();
    return answer;
  }

  /** Readings from before the first measurement get their time from the epoch and their monotonic time. */
  #timed(readings: Reading[]): Reading[] {
    if (this.#epoch === null || this.#untimed.size === 0) return readings;
    return readings.map((r) => {
      const mono = this.#untimed.get(r.seq);
      return mono === undefined ? r : { ...r, ts: Math.max(0, Math.round(this.#epoch! + mono)) };
    });
  }

  /** The configuration part of a registration answer: scale and interval are desired state. */
  #applyRegistration(config: IotConfigResponse["config"]): void {
    const intervalMs = IntervalMs.safeParse(config.intervalMs).success ? config.intervalMs : this.#desired.intervalMs;
    this.#applyDesired({ scale: config.scale, intervalMs });
  }

  #openLink(url: URL, heartbeatMs: number): void {
    let reregister = false;
    this.#link = new Link({
      url,
      token: this.config.token,
      prepare: async () => {
        // After a lost link, register again before the next socket: an endpoint that came back
        // with fresh state learns this device (and its address) again, as the old agent's restarts did.
        if (reregister) {
          this.#applyRegistration((await this.#register()).config);
          reregister = false;
        }
      },
      // A nonsensical heartbeat from the endpoint must not turn into a busy loop or a blind link.
      heartbeatMs: Math.min(60_000, Math.max(250, heartbeatMs)),
      backoff: this.#backoff,
      log: this.#log,
      onOpen: () => {
        this.#sender.onOpen();
        this.#updater?.onLinkOpen();
      },
      onClose: () => {
        reregister = true;
        this.#sender.onClose();
      },
      onMessage: (msg) => this.#onMessage(msg),
      onInvalid: (raw, reason) => {
        const answer = rejectInvalidCommand(raw, reason);
        if (answer) {
          this.#log.warn(`Refused command ${answer.id}: ${answer.error}`);
          this.#link?.send(answer);
        } else {
          this.#log.warn(`Ignoring an invalid frame from the endpoint: ${reason}`);
        }
      },
    });
  }

  #onMessage(msg: ToDeviceMessage): void {
    switch (msg.type) {
      case "ack":
        this.#sender.onAck(msg.seq);
        this.#updater?.onAck();
        // An ack is also a write (the prune): the disk may have come back, or gone.
        return this.#reportStorage();
      case "desired":
        if (this.#applyDesired(msg.state)) this.#sender.report();
        return;
      case "batching":
        if (msg.maxDelayMs !== this.#sender.batchMs) {
          this.#log.info(msg.maxDelayMs === 0 ? "Watched: sending live" : `Unwatched: sending every ${msg.maxDelayMs / 1000} s`);
        }
        return this.#sender.onBatching(msg.maxDelayMs);
      case "command": {
        this.#applyDesired(applyCommand(this.#desired, msg.command));
        const appliedAt = this.#endpointNow();
        this.#log.info(LINES.commandApplied(msg.id, msg.command));
        // When it was applied, for the dashboard's trace (delivered → applied on the device → back in the room).
        this.#link?.send({ type: "result", id: msg.id, ok: true, state: this.state(), ...(appliedAt !== null ? { appliedAt } : {}) });
        return;
      }
      case "firmware":
        return this.#updater?.onFirmware(msg.release, msg.path);
      case "error":
        this.#log.warn(`Endpoint error ${msg.code}: ${msg.message}`);
        return;
    }
  }

  /** Updates as the launcher (device/launcher.mjs) runs us: it says so, and which release is on trial, in the environment. */
  #startUpdater(): Updater {
    const launcher = process.env.IOT_LAUNCHER || null;
    return new Updater({
      endpoint: this.config.endpoint,
      token: this.config.token,
      stateDir: this.config.stateDir,
      releaseKey: this.config.releaseKey,
      running: FW_VERSION,
      launcherDir: launcher,
      trial: (launcher && process.env.IOT_TRIAL) || null,
      send: (msg) => this.#link?.send(msg) ?? false,
      log: this.#log,
      exit: this.#deps.exit ?? (async (code) => {
        await this.stop();
        // 75 (SWITCH_EXIT_CODE): the launcher starts the release `current` now points to.
        process.exit(code);
      }),
      tellLauncher: process.send ? (msg) => process.send!(msg) : undefined,
    });
  }

  /** Adopt a desired state: persist it, and re-time sampling if the interval changed. Returns whether anything changed. */
  #applyDesired(next: DesiredState): boolean {
    const prev = this.#desired;
    if (prev.scale === next.scale && prev.intervalMs === next.intervalMs) return false;
    this.#desired = { scale: next.scale, intervalMs: next.intervalMs };
    this.#outbox.setJson("desired", this.#desired);
    if (prev.scale !== next.scale) this.#log.info(LINES.scaleSet(next.scale));
    if (prev.intervalMs !== next.intervalMs) {
      this.#log.info(LINES.intervalSet(next.intervalMs));
      // The next sample comes one new interval after the last one, not after the old interval.
      const last = this.#nextSampleAt - prev.intervalMs;
      this.#scheduleSample(Math.max(0, last + next.intervalMs - Date.now()));
    }
    return true;
  }
}

/** "400 days behind", "3 min ahead of", "5 s behind". */
export function describeSkew(skewMs: number): string {
  const abs = Math.abs(skewMs);
  const amount =
    abs >= 86_400_000 ? `${Math.round(abs / 86_400_000)} days` : abs >= 3_600_000 ? `${Math.round(abs / 3_600_000)} h` : abs >= 60_000 ? `${Math.round(abs / 60_000)} min` : `${Math.round(abs / 1000)} s`;
  return skewMs < 0 ? `${amount} behind` : `${amount} ahead of`;
}
