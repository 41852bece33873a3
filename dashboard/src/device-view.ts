/**
 * One device: presence, the live reading in big type, the scale switch with
 * its command state and trace, and a chart over a chosen range (15 min to 7
 * days, the last hour first). It owns the device room's socket for as long as
 * it is on screen.
 *
 * What it will not show as fact: presence while the page cannot reach the
 * endpoint (it says "unknown"), an offline device's last value (marked stale),
 * a device that never connected as "offline", or an unknown id as a device.
 *
 * Where the chart's data comes from, and why nothing is missed:
 *  - history: `GET /api/devices/:id/readings?since=<start of the range>` when the view
 *    opens or the range changes — whole for short ranges, one reading per slice for
 *    long ones (series.ts historyPlan);
 *  - the room's snapshot on every (re)connect (its latest 120 readings);
 *  - live `readings` frames, and backfill frames a device sends after an outage;
 *  - after a reconnect, `…/readings?after=<highest seq we had>` fills whatever
 *    the snapshot does not cover, so a dropped connection leaves no hole.
 * ReadingSeries merges all of it by seq, in time order.
 */
import {
  ToDashboardMessage,
  type AlertRecord,
  type CommandRecord,
  type DesiredState,
  type Reading,
  type ReportedState,
  type Scale,
} from "../../party/protocol";
import { eachLimited, fetchReadings, fetchReadingsPage, HttpError } from "./api";
import { AlertsPanel } from "./alerts-view";
import { FirmwarePanel } from "./firmware-panel";
import { Chart } from "./chart";
import { chartTable, summarizeChart } from "./chart-summary";
import type { Clock } from "./clock";
import { commandTrace, describeCommand, describeStep, reduceScaleCommand, type ScaleCommandView } from "./command";
import { h, setAttr, setText } from "./dom";
import { formatAgo, formatCount, formatDuration, formatNumber, formatSeen, formatTemperature, TimeFormat, unit } from "./format";
import {
  bucketStarts,
  chartWindow,
  DEFAULT_RANGE,
  findGaps,
  gapThresholdMs,
  historyPlan,
  RANGES,
  ReadingSeries,
  silenceCandidates,
  toChartData,
  type ChartRange,
} from "./series";
import { openRoomSocket, type ConnectionState, type RoomSocket } from "./socket";
import { alertMarks, describeMark, RANGE_KEY, rangeFromKey, type Span } from "./zoom";

/** Screen readers hear the reading at most this often (a 1 Hz announcement would drown everything else). */
const ANNOUNCE_EVERY_MS = 30_000;
/** Sampled history: requests in flight at once (browsers allow six per origin anyway). */
const SAMPLE_PARALLEL = 6;
/** Sampled history: silences looked up exactly (one request each), newest first. */
const MAX_SILENCE_LOOKUPS = 30;
/** Silences listed under the chart (all are shaded on it). */
const MAX_GAPS_LISTED = 5;

export type DeviceViewOptions = {
  id: string;
  canCommand: boolean;
  onConnection(state: ConnectionState): void;
  /** The newest reading, whenever it changes (the fleet list shows it for this device). */
  onReading?(reading: Reading): void;
  /** Presence as this view knows it (live from the room), so the fleet row says the same. */
  onPresence?(online: boolean, lastSeen: number | null): void;
  /** The page's clock (clock.ts): ages here and in the fleet list are counted to the same `now`. */
  clock?: Clock;
};

export class DeviceView {
  readonly el: HTMLElement;
  readonly #id: string;
  readonly #canCommand: boolean;
  readonly #onConnection: (state: ConnectionState) => void;
  readonly #onReading: (reading: Reading) => void;
  readonly #series = new ReadingSeries();
  readonly #chart: Chart;
  readonly #socket: RoomSocket;
  /**
   * Rules, alerts and their acknowledgement (alerts-view.ts), and the agent's version and its
   * over-the-air update (firmware-panel.ts). Made at the room's first snapshot, once the device
   * is known to exist: for an id nobody provisioned they would only ask for three 404s.
   */
  #alerts: AlertsPanel | undefined;
  #firmware: FirmwarePanel | undefined;
  readonly #stopClock: () => void;
  readonly #now: () => number;
  readonly #onPresence: (online: boolean, lastSeen: number | null) => void;

  #connection: ConnectionState = { kind: "connecting" };
  #online = false;
  #lastSeen: number | null = null;
  #desired: DesiredState | null = null;
  #reported: ReportedState | null = null;
  #command: ScaleCommandView | null = null;
  #snapshots = 0;
  #sawLive = false;
  #lastAnnounced = { at: 0, text: "" };
  #closed = false;
  /** The snapshot arrived at least once: presence and state are the room's, not our defaults. */
  #known = false;
  /** The range this browser chose last (localStorage), else the last hour. */
  #range: ChartRange = rangeFromKey(readStored(RANGE_KEY), DEFAULT_RANGE);
  /** The device's alerts as the alerts panel loaded them: marked on the chart and listed under it. */
  #alertList: readonly AlertRecord[] = [];
  /** Bumped on each range change: history that arrives for an older one is dropped. */
  #rangeLoad = 0;
  /** A sampled range: its slice width (null: dense history). */
  #bucketMs: number | null = null;
  readonly #time = new TimeFormat();

  // Elements updated in place.
  readonly #presence = h("span", { class: "presence" });
  readonly #seen = h("span", { class: "seen" });
  readonly #meta = h("p", { class: "meta" });
  readonly #value = h("span", { class: "value" }, "–");
  readonly #unit = h("span", { class: "unit" });
  /** By the value, for a device whose readings are invented (`--sensor simulated`): never passed off as measured. */
  readonly #simulated = h("span", { class: "source", hidden: true }, " Simulated");
  readonly #readingAt = h("p", { class: "reading-at" }, "Waiting for the first reading…");
  /** Said in words, not only by colour: the value shown is not current. */
  readonly #stale = h("p", { class: "stale", hidden: true });
  readonly #announce = h("p", { class: "sr-only", "aria-live": "polite", "aria-atomic": "true" });
  readonly #scaleButtons: Record<Scale, HTMLButtonElement>;
  readonly #commandStatus = h("p", { class: "command-status", role: "status", "aria-live": "polite" });
  readonly #actual = h("p", { class: "actual" });
  readonly #trace = h("ol", { class: "command-trace", "aria-label": "Steps of the last command" });
  readonly #scaleHint = h("p", { class: "hint" });
  readonly #caption = h("figcaption", {}, "Last hour");
  readonly #plot = h("div", { class: "plot" });
  // Focusable: the arrow keys move the read-out point by point (chart.ts).
  readonly #plotBox = h(
    "div",
    { role: "img", tabindex: "0", class: "plot-box", "aria-label": "Chart of the last hour of temperature readings", "aria-keyshortcuts": "ArrowLeft ArrowRight Home End Shift+ArrowLeft Shift+ArrowRight Escape" },
    this.#plot,
  );
  /** Keyboard read-outs, said outside the canvas's box (an image's insides are not read out). */
  readonly #keyAnnounce = h("p", { class: "sr-only", "aria-live": "polite", "aria-atomic": "true" });
  readonly #zoomLine = h("p", { class: "zoom-line", hidden: true });
  readonly #zoomReset = h("button", { type: "button", class: "zoom-reset", onclick: () => this.#chart.setZoom(null) }, "Reset zoom");
  readonly #panEarlier = h("button", { type: "button", "aria-label": "Pan earlier", onclick: () => this.#chart.pan(-1) }, "◀ Earlier");
  readonly #panLater = h("button", { type: "button", "aria-label": "Pan later", onclick: () => this.#chart.pan(1) }, "Later ▶");
  readonly #markList = h("ul", { class: "mark-list", "aria-label": "Alerts on the chart" });
  readonly #chartEmpty = h("p", { class: "chart-empty", hidden: true });
  /** The chart's text alternative: its description (range, readings, lowest/highest/latest, gaps), kept current. */
  readonly #summary = h("p", { class: "sr-only chart-summary", id: `chart-summary-${crypto.randomUUID()}` });
  /** The same data as a table, for anyone who would rather read than look at the canvas. */
  readonly #table = h("table", { class: "records chart-table", hidden: true });
  readonly #tableToggle = h("button", { type: "button", class: "table-toggle", "aria-expanded": "false" }, "Show as table");
  readonly #gapList = h("ul", { class: "gap-list" });
  readonly #rangeButtons = new Map<ChartRange["key"], HTMLButtonElement>();
  readonly #notice = h("p", { class: "notice", role: "alert", hidden: true });

  constructor(opts: DeviceViewOptions) {
    this.#id = opts.id;
    this.#canCommand = opts.canCommand;
    this.#onConnection = opts.onConnection;
    this.#onReading = opts.onReading ?? (() => {});
    this.#onPresence = opts.onPresence ?? (() => {});
    this.#now = opts.clock ? () => opts.clock!.now() : Date.now;

    const scaleButton = (scale: Scale) =>
      h("button", { type: "button", class: "seg", "aria-pressed": "false", onclick: () => this.#switchScale(scale) }, unit(scale));
    this.#scaleButtons = { F: scaleButton("F"), C: scaleButton("C") };

    this.el = h(
      "section",
      { class: "device", "aria-labelledby": "device-title", "data-device": opts.id },
      h(
        "header",
        { class: "device-head" },
        h("h1", { id: "device-title" }, opts.id),
        h("p", { class: "presence-line" }, this.#presence, this.#seen),
        this.#meta,
      ),
      this.#notice,
      h(
        "div",
        { class: "panels" },
        h(
          "div",
          { class: "card now" },
          h("h2", { class: "card-title", id: "now-title" }, "Temperature"),
          h("p", { class: "reading", "aria-labelledby": "now-title" }, this.#value, this.#unit, this.#simulated),
          this.#readingAt,
          this.#stale,
          this.#announce,
        ),
        h(
          "div",
          { class: "card scale" },
          h("h2", { class: "card-title", id: "scale-title" }, "Scale"),
          h("div", { class: "segmented", role: "group", "aria-labelledby": "scale-title" }, this.#scaleButtons.F, this.#scaleButtons.C),
          this.#commandStatus,
          this.#trace,
          this.#actual,
          this.#scaleHint,
        ),
      ),
      h(
        "figure",
        { class: "card chart" },
        h("div", { class: "chart-head" }, this.#caption, this.#rangeGroup()),
        // The canvas says nothing to a screen reader: its description is the summary, and the table holds the numbers.
        h("div", { class: "zoom-bar" }, this.#zoomLine, this.#panEarlier, this.#panLater, this.#zoomReset),
        this.#plotBox,
        this.#keyAnnounce,
        this.#summary,
        this.#chartEmpty,
        this.#gapList,
        this.#markList,
        this.#tableToggle,
        this.#table,
      ),
    );

    this.#chart = new Chart(this.#plot, this.#time, { keys: this.#plotBox, announce: this.#keyAnnounce, onZoom: (zoom) => this.#renderZoom(zoom) });
    this.#renderZoom(null);
    setAttr(this.#plotBox, "aria-describedby", this.#summary.id);
    setAttr(this.#tableToggle, "aria-controls", (this.#table.id = `chart-table-${crypto.randomUUID()}`));
    this.#tableToggle.addEventListener("click", () => {
      const open = this.#table.hidden;
      this.#table.hidden = !open;
      setAttr(this.#tableToggle, "aria-expanded", String(open));
      setText(this.#tableToggle, open ? "Hide table" : "Show as table");
      delete this.#table.dataset.key;
      this.#renderChart();
    });
    this.#socket = openRoomSocket({
      target: { device: opts.id },
      schema: ToDashboardMessage,
      onMessage: (msg) => this.#onMessage(msg),
      onState: (state) => {
        this.#connection = state;
        // While the page is not connected, presence is unknown and the values may be stale (said in words below).
        this.el.dataset.connection = state.kind;
        if (state.kind === "stopped" && state.notFound) this.#showNotFound();
        else if (state.kind === "stopped") this.#showNotice(`Not connected to ${opts.id}: ${state.reason}.`);
        this.#onConnection(state);
        this.#renderPresence();
        this.#renderReading();
        this.#renderScale();
      },
      onBadFrame: (reason) => console.warn(`device ${opts.id}: dropped a frame that did not parse (${reason})`),
    });
    void this.#loadRange();
    if (opts.clock) this.#stopClock = opts.clock.onTick(() => this.#tick());
    else {
      const timer = setInterval(() => this.#tick(), 1000);
      this.#stopClock = () => clearInterval(timer);
    }
    this.#render();
  }

  close(): void {
    this.#closed = true;
    this.#stopClock();
    this.#socket.close();
    this.#alerts?.close();
    this.#firmware?.close();
    this.#chart.destroy();
  }

  // ---------------------------------------------------------------------------
  // Messages from the room
  // ---------------------------------------------------------------------------

  #onMessage(msg: ToDashboardMessage): void {
    switch (msg.type) {
      case "snapshot": {
        const resumeFrom = this.#series.maxSeq;
        this.#snapshots++;
        if (!this.#alerts) {
          this.#alerts = new AlertsPanel({
            id: this.#id,
            canChange: this.#canCommand,
            // What the panel already loads (and the room's alert messages update): no request of the chart's own.
            onAlerts: (alerts) => {
              this.#alertList = alerts;
              this.#chart.setAlerts(alerts);
              this.#renderChart();
            },
          });
          this.#firmware = new FirmwarePanel({ id: this.#id });
          this.el.append(this.#alerts.el, this.#firmware.el);
        }
        // A reconnect: alerts raised or cleared while we were away.
        else if (this.#snapshots > 1) void this.#alerts.refresh();
        this.#known = true;
        this.#online = msg.state.online;
        this.#lastSeen = msg.state.lastSeen;
        this.#desired = msg.state.desired;
        this.#reported = msg.state.reported;
        this.#firmware?.setRunning(msg.state.reported?.fw);
        this.#command = reduceScaleCommand(this.#command, { type: "snapshot", commands: msg.state.commands });
        this.#addReadings(msg.readings);
        // A reconnect: whatever was stored while we were away and is older than the snapshot's window.
        if (this.#snapshots > 1 && resumeFrom > 0) void this.#loadHistory({ since: Date.now() - this.#range.ms, after: resumeFrom });
        this.#render();
        return;
      }
      case "readings":
        this.#addReadings(msg.readings);
        // The room sends presence only when it flips; while a device streams, each frame is a sighting.
        if (this.#online) this.#lastSeen = Date.now();
        if (!this.#sawLive && msg.readings.length > 0) {
          this.#sawLive = true;
          // For the browser test (and anyone curious): time from navigation start to the first live reading.
          performance.mark("iot:first-live-reading");
        }
        this.#renderReading();
        this.#renderChart();
        return;
      case "presence":
        this.#online = msg.online;
        this.#lastSeen = msg.lastSeen;
        this.#renderPresence();
        this.#renderScale();
        return;
      case "state":
        this.#desired = msg.desired;
        this.#reported = msg.reported;
        this.#firmware?.setRunning(msg.reported?.fw);
        this.#render();
        return;
      case "command-status":
        this.#onCommand(msg.command);
        return;
      case "alert":
        this.#alerts?.onAlert(msg.alert);
        return;
      case "error":
        // The room refused something we sent: say so on the page; it is not a page bug.
        this.#showNotice(`The endpoint refused a message: ${msg.message}`);
        return;
    }
  }

  #onCommand(record: CommandRecord): void {
    this.#command = reduceScaleCommand(this.#command, { type: "record", record });
    this.#renderScale();
  }

  #addReadings(readings: readonly Reading[]): void {
    this.#series.add(readings);
    this.#series.trimBefore(Date.now() - this.#range.ms);
  }

  /**
   * History for the range shown: whole, or for a long range one reading per slice plus, for
   * each stretch where a slice came back empty, the reading just before it (its seq − 1),
   * which is where that silence began — so the gaps drawn are the device's, not the sampling's.
   */
  async #loadRange(): Promise<void> {
    const load = ++this.#rangeLoad;
    const range = this.#range;
    const now = Date.now();
    const plan = historyPlan(range.ms, this.#reported?.intervalMs ?? this.#desired?.intervalMs ?? 1000);
    this.#bucketMs = plan.kind === "sampled" ? plan.bucketMs : null;
    const figure = this.#caption.closest("figure")!;
    figure.dataset.loading = "true";
    try {
      if (plan.kind === "dense") {
        await this.#loadHistory({ since: now - range.ms });
        return;
      }
      const started = performance.now();
      let requests = 0;
      const samples: Reading[] = [];
      await eachLimited(bucketStarts(now - range.ms, now, plan.bucketMs), SAMPLE_PARALLEL, async (since) => {
        if (this.#closed || load !== this.#rangeLoad) return;
        requests++;
        samples.push(...(await fetchReadingsPage(this.#id, { after: 0, since, limit: 1 })));
      });
      if (this.#closed || load !== this.#rangeLoad) return;
      this.#series.add(samples, true);
      const threshold = gapThresholdMs(this.#reported?.intervalMs ?? this.#desired?.intervalMs ?? 1000);
      const candidates = silenceCandidates(this.#series.items, plan.bucketMs, threshold, this.#series.apart).slice(-MAX_SILENCE_LOOKUPS);
      const before: Reading[] = [];
      await eachLimited(candidates, SAMPLE_PARALLEL, async (r) => {
        if (this.#closed || load !== this.#rangeLoad) return;
        requests++;
        before.push(...(await fetchReadingsPage(this.#id, { after: Math.max(0, r.seq - 2), limit: 1 })));
      });
      if (this.#closed || load !== this.#rangeLoad) return;
      this.#series.add(before);
      // Measured, never asserted: what a long range costs to open (the browser test prints it).
      figure.dataset.loadMs = String(Math.round(performance.now() - started));
      figure.dataset.requests = String(requests);
      this.#render();
    } catch (err) {
      if (err instanceof HttpError && err.status < 500) return;
      this.#showNotice("History for the chart could not be loaded; live readings still appear.");
    } finally {
      if (load === this.#rangeLoad) delete figure.dataset.loading;
    }
  }

  #rangeGroup(): HTMLElement {
    const group = h("div", { class: "ranges", role: "group", "aria-label": "Time range" });
    for (const range of RANGES) {
      const button = h(
        "button",
        { type: "button", class: "range-button", "aria-pressed": String(range === this.#range), "data-range": range.key, onclick: () => this.#setRange(range) },
        range.label,
      );
      this.#rangeButtons.set(range.key, button);
      group.append(button);
    }
    return group;
  }

  #setRange(range: ChartRange): void {
    if (range === this.#range) return;
    this.#range = range;
    writeStored(RANGE_KEY, range.key);
    for (const [key, button] of this.#rangeButtons) setAttr(button, "aria-pressed", String(key === range.key));
    this.#chart.setZoom(null);
    this.#series.trimBefore(Date.now() - range.ms);
    this.#renderChart();
    void this.#loadRange();
  }

  async #loadHistory(range: { since: number; after?: number }): Promise<void> {
    for (let attempt = 1; attempt <= 3 && !this.#closed; attempt++) {
      try {
        const readings = await fetchReadings(this.#id, range);
        if (this.#closed) return;
        this.#addReadings(readings);
        this.#render();
        return;
      } catch (err) {
        // 401 is handled app-wide (sign-in form); 404 by the socket's "stopped" notice.
        if (err instanceof HttpError && err.status < 500) return;
        if (attempt === 3) this.#showNotice("History for the chart could not be loaded; live readings still appear.");
        await new Promise((r) => setTimeout(r, 1000 * attempt));
      }
    }
  }

  // ---------------------------------------------------------------------------
  // Commands
  // ---------------------------------------------------------------------------

  #switchScale(scale: Scale): void {
    if (!this.#canCommand) return;
    // Pressing the scale already chosen does nothing, unless the last try failed and this is a retry.
    const retry = this.#command?.phase === "failed" || this.#command?.phase === "timed-out";
    if (this.#desired?.scale === scale && !retry) return;
    const id = crypto.randomUUID();
    const sent = this.#socket.send({ type: "command", id, command: { cmd: "scale", scale } });
    if (!sent) {
      this.#showNotice("Not connected: the command was not sent. It can be sent once the connection is back.");
      return;
    }
    this.#command = reduceScaleCommand(this.#command, { type: "sent", id, target: scale, at: Date.now() });
    // Show the choice at once; the room's `state` frame confirms it.
    if (this.#desired) this.#desired = { ...this.#desired, scale };
    this.#renderScale();
  }

  #tick(): void {
    const next = reduceScaleCommand(this.#command, { type: "tick", now: Date.now() });
    if (next !== this.#command) {
      this.#command = next;
      this.#renderScale();
    }
    this.#renderPresence();
    this.#renderReading();
    // The window slides even when nothing arrives (an offline device's line moves left).
    this.#series.trimBefore(Date.now() - this.#range.ms);
    this.#renderChart();
  }

  // ---------------------------------------------------------------------------
  // Rendering
  // ---------------------------------------------------------------------------

  #render(): void {
    this.#renderPresence();
    this.#renderMeta();
    this.#renderReading();
    this.#renderScale();
    this.#renderChart();
  }

  /** online · offline · never connected · unknown (this page cannot reach the endpoint, so it does not know). */
  get presence(): "online" | "offline" | "never" | "unknown" {
    if (this.#connection.kind !== "connected" || !this.#known) return "unknown";
    if (this.#online) return "online";
    return this.#lastSeen === null && this.#reported === null ? "never" : "offline";
  }

  #renderPresence(): void {
    const presence = this.presence;
    const now = this.#now();
    const ago = formatAgo(this.#lastSeen, now);
    if (this.#known) this.#onPresence(this.#online, this.#lastSeen);
    const text = { online: "Online", offline: "Offline", never: "Never connected", unknown: "Presence unknown" }[presence];
    setText(this.#presence, text);
    setAttr(this.#presence, "data-state", presence);
    setText(
      this.#seen,
      presence === "online" || presence === "offline"
        ? ` · ${formatSeen(presence === "online", this.#lastSeen, now)}`
          : presence === "never"
            ? " · provisioned, waiting for its first connection"
            : this.#known
              ? // What we last knew, plainly as history: never the green "Online" of stale data.
                ` · this page cannot reach the endpoint (last known: ${this.#online ? "online" : "offline"}, seen ${ago})`
              : this.#connection.kind === "connecting"
                ? " · connecting…"
                : " · this page cannot reach the endpoint",
    );
  }

  #renderMeta(): void {
    const r = this.#reported;
    // The agent reports its sensor in every hello and report (agents before --sensor did too), so this
    // marks simulated devices old and new. It follows the device's current sensor: history from before
    // a switch is marked as the device is now (the room does not yet keep the source per stream).
    const simulated = r?.sensor === "simulated";
    this.#simulated.hidden = !simulated;
    setAttr(this.el, "data-source", r ? (simulated ? "simulated" : "sensor") : null);
    const parts = r
      ? [
          `firmware ${r.fw}`,
          r.ip ? `IP ${r.ip}` : null,
          // A missing sensor says why there are no readings (the agent never invents them).
          r.sensorProblem ? `no readings: sensor unavailable (${r.sensorProblem})` : `sensor ${r.sensor}`,
          `every ${formatInterval(r.intervalMs)}`,
        ]
      : ["has not connected yet"];
    if (r?.sensorErrors) parts.push(`${r.sensorErrors} sensor errors`);
    if (r?.dropped) parts.push(`${r.dropped} readings dropped by the device`);
    // A full disk on the device: readings still come, from its memory, until that fills too.
    if (r?.storageProblem) parts.push(`device storage: ${r.storageProblem}`);
    // A Pi has no battery clock: the agent takes reading times from the endpoint's clock, and says how far off its own is.
    if (r?.clockSkewMs !== undefined && Math.abs(r.clockSkewMs) >= 2000) parts.push(`device clock ${formatSkew(r.clockSkewMs)} (reading times corrected)`);
    setText(this.#meta, parts.filter(Boolean).join(" · "));
  }

  #renderReading(): void {
    const latest = this.#series.latest;
    if (!latest) return;
    if (this.el.dataset.seq !== String(latest.seq)) this.#onReading(latest);
    if (!this.el.dataset.firstReading) {
      this.el.dataset.firstReading = "1";
      performance.mark("iot:first-reading");
    }
    setText(this.#value, formatNumber(latest.temperature));
    setText(this.#unit, unit(latest.scale));
    this.el.dataset.scale = latest.scale;
    this.el.dataset.seq = String(latest.seq);
    const simulated = this.#reported?.sensor === "simulated";
    const now = Date.now();
    const today = new Date(latest.ts).toDateString() === new Date(now).toDateString();
    const at = today ? this.#time.time(latest.ts) : this.#time.dateTime(latest.ts);
    setText(this.#readingAt, `${simulated ? "Simulated reading, not measured · " : ""}at ${at} ${this.#time.zone} · ${formatAgo(latest.ts, now)}`);
    // Stale: the device is offline (its last value, not its current one), or we cannot see the room at all.
    const presence = this.presence;
    const stale = presence === "offline" || presence === "unknown";
    const nowCard = this.#value.closest(".now");
    if (nowCard) setAttr(nowCard, "data-stale", stale ? "true" : null);
    this.#stale.hidden = !stale;
    setText(
      this.#stale,
      !stale
        ? ""
        : presence === "offline"
          ? `Stale: the device is offline; this is its last reading, from ${formatAgo(latest.ts, now)}.`
          : "Stale: this page cannot reach the endpoint; the device may have changed since.",
    );
    const text = `${this.#id}: ${formatTemperature(latest.temperature, latest.scale)}${simulated ? " (simulated)" : ""}`;
    const unitChanged = !this.#lastAnnounced.text.endsWith(unit(latest.scale));
    if (now - this.#lastAnnounced.at >= ANNOUNCE_EVERY_MS || unitChanged) {
      this.#lastAnnounced = { at: now, text };
      setText(this.#announce, text);
    }
  }

  #renderScale(): void {
    const desired = this.#desired?.scale ?? null;
    const connected = this.#connection.kind === "connected";
    for (const scale of ["F", "C"] as const) {
      const button = this.#scaleButtons[scale];
      setAttr(button, "aria-pressed", String(desired === scale));
      button.disabled = !this.#canCommand || !connected || this.#desired === null;
    }
    const status = describeCommand(this.#command, { reported: this.#reported?.scale ?? null });
    setText(this.#commandStatus, status.text);
    setAttr(this.#commandStatus, "data-tone", status.tone);
    setAttr(this.#commandStatus, "data-phase", this.#command?.phase ?? null);
    this.#renderTrace();
    const actual = this.#reported?.scale;
    setText(this.#actual, actual ? `The device reports ${unit(actual)}.` : "The device has not reported its scale yet.");
    setAttr(this.#actual, "data-scale", actual ?? null);
    setText(
      this.#scaleHint,
      !this.#canCommand
        ? "Viewers cannot change the scale; sign in as an operator."
        : !connected
          ? "The switch is off until the connection is back."
          : !this.#online
            ? "The device is offline: a change is queued in the room and applies when it returns."
            : "",
    );
  }

  /** The last command's steps with the time each took (room times; the click is this page's clock). */
  #renderTrace(): void {
    const steps = commandTrace(this.#command);
    const text = steps.map(describeStep);
    if (this.#trace.dataset.steps === text.join("|")) return;
    this.#trace.dataset.steps = text.join("|");
    this.#trace.hidden = steps.length === 0;
    this.#trace.replaceChildren(
      ...steps.map((step, i) =>
        h(
          "li",
          {
            "data-step": step.step,
            // Whose clock: the agent's time, with its own clock's skew taken out (it times from its registration's answer).
            title: step.step === "device-applied" ? "The device's time, on the endpoint's clock (its own clock's skew taken out)" : null,
          },
          text[i]!,
          " ",
          h("time", { datetime: new Date(step.at).toISOString() }, `(${this.#time.time(step.at)})`),
        ),
      ),
    );
  }

  #renderChart(): void {
    const latest = this.#series.latest;
    const scale = this.#reported?.scale ?? latest?.scale ?? this.#desired?.scale ?? "F";
    const threshold = gapThresholdMs(this.#reported?.intervalMs ?? this.#desired?.intervalMs ?? 1000);
    const items = this.#series.items;
    const now = Date.now();
    const window = chartWindow(items[0]?.ts, this.#range.ms, now);
    const gaps = findGaps(items, threshold, this.#series.apart);
    // No readings at all: an axis-less chart would say nothing; a sentence says why.
    const empty = items.length === 0;
    this.#plotBox.hidden = empty;
    this.#chartEmpty.hidden = !empty;
    setText(
      this.#chartEmpty,
      !empty
        ? ""
        : this.presence === "never"
          ? "No readings yet: the chart starts with the device's first reading."
          : `No readings in the ${this.#range.caption.toLowerCase().replace(/^last /, "last ")}.`,
    );
    if (!empty) this.#chart.update(toChartData(items, scale, threshold, this.#series.apart), scale, window, gaps);
    const sampled = this.#bucketMs !== null ? ` · one reading per ${formatDuration(this.#bucketMs)} shown` : "";
    setText(
      this.#caption,
      `${this.#range.caption} · times in ${this.#time.zone} · ${formatCount(items.length)} ${this.#reported?.sensor === "simulated" ? "simulated " : ""}${items.length === 1 ? "reading" : "readings"} in ${unit(scale)}${sampled}` +
        (gaps.length ? ` · ${gaps.length} ${gaps.length === 1 ? "gap" : "gaps"}` : ""),
    );
    setAttr(this.#plotBox, "aria-label", `Chart of temperature readings, ${this.#range.caption.toLowerCase()}`);
    setText(this.#summary, summarizeChart({ caption: this.#range.caption, readings: items, scale, gaps, time: this.#time, rangeMs: this.#range.ms }));
    this.#renderTable(scale, window);
    this.#renderGapList(gaps);
    this.#renderMarkList(alertMarks(this.#alertList, this.#chart.zoom ?? window));
    // Facts a test (or a curious person with devtools) can read without parsing the canvas.
    const figure = this.#caption.closest("figure")!;
    figure.dataset.points = String(items.length);
    figure.dataset.gaps = String(gaps.length);
    figure.dataset.firstSeq = String(items[0]?.seq ?? 0);
    figure.dataset.maxSeq = String(this.#series.maxSeq);
    figure.dataset.range = this.#range.key;
    figure.dataset.windowFrom = String(Math.round(window[0]));
    figure.dataset.windowTo = String(Math.round(window[1]));
    figure.dataset.firstTs = String(items[0]?.ts ?? "");
  }

  /** The chart as a table (only while open): the window in 12 slices, each with its readings, lowest, highest and mean. */
  #renderTable(scale: Scale, window: [number, number]): void {
    this.#tableToggle.hidden = this.#series.items.length === 0;
    if (this.#table.hidden) return;
    const rows = chartTable(this.#series.items, scale, window);
    const long = window[1] - window[0] > 86_400_000;
    const at = (ts: number) => (long ? this.#time.dateTime(ts) : this.#time.time(ts));
    const num = (v: number | null) => (v === null ? "–" : formatNumber(v));
    const key = JSON.stringify(rows.map((r) => [r.count, r.min, r.max, r.mean])) + scale + Math.round(window[0] / 60_000);
    if (this.#table.dataset.key === key) return;
    this.#table.dataset.key = key;
    const u = unit(scale);
    this.#table.replaceChildren(
      h("caption", {}, `${this.#range.caption} in ${rows.length} slices, times in ${this.#time.zone}`),
      h("thead", {}, h("tr", {}, ...["From", "To", "Readings", `Lowest (${u})`, `Highest (${u})`, `Mean (${u})`].map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        ...rows.map((r) =>
          h("tr", {}, h("td", {}, at(r.from)), h("td", {}, at(r.to)), h("td", {}, formatCount(r.count)), h("td", {}, num(r.min)), h("td", {}, num(r.max)), h("td", {}, num(r.mean))),
        ),
      ),
    );
  }

  /** The newest silences in words, with how long each lasted (all of them are shaded on the chart). */
  #renderGapList(gaps: readonly { from: number; to: number }[]): void {
    const shown = gaps.slice(-MAX_GAPS_LISTED).reverse();
    const key = shown.map((g) => `${g.from}-${g.to}`).join(",") + `/${gaps.length}`;
    if (this.#gapList.dataset.key === key) return;
    this.#gapList.dataset.key = key;
    const span = (g: { from: number; to: number }) => {
      const long = g.to - g.from > 86_400_000 || this.#range.ms > 86_400_000;
      // Seconds for short silences: "22:47 – 22:47" would say nothing.
      const f = (ts: number) => (long ? this.#time.dateTime(ts) : g.to - g.from < 3_600_000 ? this.#time.time(ts) : this.#time.short(ts));
      return `${f(g.from)} – ${f(g.to)}`;
    };
    this.#gapList.replaceChildren(
      ...shown.map((g) => h("li", {}, `No readings for ${formatDuration(g.to - g.from)} (${span(g)})`)),
      ...(gaps.length > shown.length ? [h("li", {}, `and ${gaps.length - shown.length} earlier`)] : []),
    );
  }

  /** Zoomed or not: the controls, and the span in words (the canvas's ticks are no text). */
  #renderZoom(zoom: Span | null): void {
    for (const el of [this.#zoomLine, this.#zoomReset, this.#panEarlier, this.#panLater]) el.hidden = zoom === null;
    const figure = this.#plotBox.closest("figure");
    if (figure) {
      setAttr(figure, "data-zoom-from", zoom ? String(zoom[0]) : null);
      setAttr(figure, "data-zoom-to", zoom ? String(zoom[1]) : null);
    }
    // The list of alert marks follows the span shown.
    if (this.#alertList.length) this.#renderChart();
    if (!zoom) return;
    const long = zoom[1] - zoom[0] > 86_400_000;
    const at = (ts: number) => (long ? this.#time.dateTime(ts) : this.#time.time(ts));
    setText(this.#zoomLine, `Zoomed in: ${at(zoom[0])} – ${at(zoom[1])} (${formatDuration(zoom[1] - zoom[0])})`);
  }

  /** Alerts raised and cleared inside the span shown, in words (the canvas marks them with a line each). */
  #renderMarkList(marks: ReturnType<typeof alertMarks>): void {
    const key = marks.map((m) => `${m.ts}${m.kind}${m.rule}`).join(",");
    if (this.#markList.dataset.key === key) return;
    this.#markList.dataset.key = key;
    const long = this.#range.ms > 86_400_000;
    this.#markList.replaceChildren(
      ...marks.map((m) =>
        h(
          "li",
          { "data-kind": m.kind, "data-rule": m.rule, title: m.message },
          `${describeMark(m)} at `,
          h("time", { datetime: new Date(m.ts).toISOString() }, long ? this.#time.dateTime(m.ts) : this.#time.time(m.ts)),
        ),
      ),
    );
  }

  /** An id no device has: a page that says so, not a device page with nothing in it. */
  #showNotFound(): void {
    this.#chart.destroy();
    this.el.dataset.notFound = "true";
    this.el.replaceChildren(
      h(
        "div",
        { class: "card not-found" },
        h("h1", { id: "device-title" }, "Device not found"),
        h("p", {}, "No device called ", h("code", {}, this.#id), " is registered with this endpoint."),
        h("p", { class: "hint" }, "Check the address, or pick a device from the list. A new device appears once an operator provisions it."),
        h("p", {}, h("a", { href: "/", "data-nav": true }, "Back to all devices")),
      ),
    );
  }

  #showNotice(text: string): void {
    this.#notice.hidden = false;
    setText(this.#notice, text);
  }
}

/** "400 days behind", "3 min ahead". */
function formatSkew(ms: number): string {
  const abs = Math.abs(ms);
  const amount =
    abs >= 86_400_000 ? `${Math.round(abs / 86_400_000)} days` : abs >= 3_600_000 ? `${Math.round(abs / 3_600_000)} h` : abs >= 60_000 ? `${Math.round(abs / 60_000)} min` : `${Math.round(abs / 1000)} s`;
  return `${amount} ${ms < 0 ? "behind" : "ahead"}`;
}

/** localStorage, which a locked-down browser may refuse: then nothing is remembered, and nothing breaks. */
function readStored(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function writeStored(key: string, value: string): void {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Storage refused (private mode, quota): the choice lasts for this page only.
  }
}

function formatInterval(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
