/**
 * One device: presence, the live reading in big type, the scale switch with
 * its command state, and the last hour on a chart. It owns the device room's
 * socket for as long as it is on screen.
 *
 * Where the chart's data comes from, and why nothing is missed:
 *  - history: `GET /api/devices/:id/readings?since=<an hour ago>` when the view opens;
 *  - the room's snapshot on every (re)connect (its latest 120 readings);
 *  - live `readings` frames, and backfill frames a device sends after an outage;
 *  - after a reconnect, `…/readings?after=<highest seq we had>` fills whatever
 *    the snapshot does not cover, so a dropped connection leaves no hole.
 * ReadingSeries merges all of it by seq, in time order.
 */
import {
  ToDashboardMessage,
  type CommandRecord,
  type DesiredState,
  type Reading,
  type ReportedState,
  type Scale,
} from "../../party/protocol";
import { fetchReadings, HttpError } from "./api";
import { AlertsPanel } from "./alerts-view";
import { Chart } from "./chart";
import { describeCommand, reduceScaleCommand, type ScaleCommandView } from "./command";
import { h, setAttr, setText } from "./dom";
import { formatAgo, formatCount, formatNumber, formatTemperature, unit } from "./format";
import { findGaps, gapThresholdMs, ReadingSeries, toChartData, WINDOW_MS } from "./series";
import { openRoomSocket, type ConnectionState, type RoomSocket } from "./socket";

/** Screen readers hear the reading at most this often (a 1 Hz announcement would drown everything else). */
const ANNOUNCE_EVERY_MS = 30_000;

export type DeviceViewOptions = {
  id: string;
  canCommand: boolean;
  onConnection(state: ConnectionState): void;
  /** The newest reading, whenever it changes (the fleet list shows it for this device). */
  onReading?(reading: Reading): void;
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
  /** Rules, alerts and their acknowledgement (alerts-view.ts). */
  readonly #alerts: AlertsPanel;
  readonly #clock: ReturnType<typeof setInterval>;

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

  // Elements updated in place.
  readonly #presence = h("span", { class: "presence" });
  readonly #seen = h("span", { class: "seen" });
  readonly #meta = h("p", { class: "meta" });
  readonly #value = h("span", { class: "value" }, "–");
  readonly #unit = h("span", { class: "unit" });
  /** By the value, for a device whose readings are invented (`--sensor simulated`): never passed off as measured. */
  readonly #simulated = h("span", { class: "source", hidden: true }, " Simulated");
  readonly #readingAt = h("p", { class: "reading-at" }, "Waiting for the first reading…");
  readonly #announce = h("p", { class: "sr-only", "aria-live": "polite", "aria-atomic": "true" });
  readonly #scaleButtons: Record<Scale, HTMLButtonElement>;
  readonly #commandStatus = h("p", { class: "command-status", role: "status", "aria-live": "polite" });
  readonly #actual = h("p", { class: "actual" });
  readonly #scaleHint = h("p", { class: "hint" });
  readonly #caption = h("figcaption", {}, "Last hour");
  readonly #plot = h("div", { class: "plot" });
  readonly #notice = h("p", { class: "notice", role: "alert", hidden: true });

  constructor(opts: DeviceViewOptions) {
    this.#id = opts.id;
    this.#canCommand = opts.canCommand;
    this.#onConnection = opts.onConnection;
    this.#onReading = opts.onReading ?? (() => {});

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
          this.#announce,
        ),
        h(
          "div",
          { class: "card scale" },
          h("h2", { class: "card-title", id: "scale-title" }, "Scale"),
          h("div", { class: "segmented", role: "group", "aria-labelledby": "scale-title" }, this.#scaleButtons.F, this.#scaleButtons.C),
          this.#commandStatus,
          this.#actual,
          this.#scaleHint,
        ),
      ),
      h(
        "figure",
        { class: "card chart" },
        this.#caption,
        // The canvas says nothing to a screen reader; the caption and the big reading carry the same facts.
        h("div", { role: "img", "aria-label": "Chart of the last hour of temperature readings" }, this.#plot),
      ),
    );

    this.#chart = new Chart(this.#plot);
    this.#alerts = new AlertsPanel({ id: opts.id, canChange: opts.canCommand });
    this.el.append(this.#alerts.el);
    this.#socket = openRoomSocket({
      target: { device: opts.id },
      schema: ToDashboardMessage,
      onMessage: (msg) => this.#onMessage(msg),
      onState: (state) => {
        this.#connection = state;
        // While the page is not connected, what it shows may be stale: the styles dim it.
        this.el.dataset.connection = state.kind;
        if (state.kind === "stopped") this.#showNotice(`Not connected to ${opts.id}: ${state.reason}.`);
        this.#onConnection(state);
        this.#renderScale();
      },
      onBadFrame: (reason) => console.warn(`device ${opts.id}: dropped a frame that did not parse (${reason})`),
    });
    void this.#loadHistory({ since: Date.now() - WINDOW_MS });
    this.#clock = setInterval(() => this.#tick(), 1000);
    this.#render();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#clock);
    this.#socket.close();
    this.#alerts.close();
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
        // A reconnect: alerts raised or cleared while we were away.
        if (this.#snapshots > 1) void this.#alerts.refresh();
        this.#online = msg.state.online;
        this.#lastSeen = msg.state.lastSeen;
        this.#desired = msg.state.desired;
        this.#reported = msg.state.reported;
        this.#command = reduceScaleCommand(this.#command, { type: "snapshot", commands: msg.state.commands });
        this.#addReadings(msg.readings);
        // A reconnect: whatever was stored while we were away and is older than the snapshot's window.
        if (this.#snapshots > 1 && resumeFrom > 0) void this.#loadHistory({ since: Date.now() - WINDOW_MS, after: resumeFrom });
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
        this.#render();
        return;
      case "command-status":
        this.#onCommand(msg.command);
        return;
      case "alert":
        this.#alerts.onAlert(msg.alert);
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
    this.#series.trimBefore(Date.now() - WINDOW_MS);
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
    this.#series.trimBefore(Date.now() - WINDOW_MS);
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

  #renderPresence(): void {
    setText(this.#presence, this.#online ? "Online" : "Offline");
    setAttr(this.#presence, "data-state", this.#online ? "online" : "offline");
    setText(this.#seen, this.#online ? ` · seen ${formatAgo(this.#lastSeen, Date.now())}` : ` · last seen ${formatAgo(this.#lastSeen, Date.now())}`);
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
    setText(this.#readingAt, `${simulated ? "Simulated reading, not measured · " : ""}at ${new Date(latest.ts).toLocaleTimeString()} · ${formatAgo(latest.ts, Date.now())}`);
    const text = `${this.#id}: ${formatTemperature(latest.temperature, latest.scale)}${simulated ? " (simulated)" : ""}`;
    const now = Date.now();
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
    const status = describeCommand(this.#command);
    setText(this.#commandStatus, status.text);
    setAttr(this.#commandStatus, "data-tone", status.tone);
    setAttr(this.#commandStatus, "data-phase", this.#command?.phase ?? null);
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
            ? "The device is offline: a change waits in the room and applies when it returns."
            : "",
    );
  }

  #renderChart(): void {
    const latest = this.#series.latest;
    const scale = this.#reported?.scale ?? latest?.scale ?? this.#desired?.scale ?? "F";
    const threshold = gapThresholdMs(this.#reported?.intervalMs ?? this.#desired?.intervalMs ?? 1000);
    const items = this.#series.items;
    const now = Date.now();
    this.#chart.update(toChartData(items, scale, threshold), scale, [now - WINDOW_MS, now]);
    const gaps = findGaps(items, threshold).length;
    setText(
      this.#caption,
      `Last hour · ${formatCount(items.length)} ${this.#reported?.sensor === "simulated" ? "simulated " : ""}${items.length === 1 ? "reading" : "readings"} in ${unit(scale)}` +
        (gaps ? ` · ${gaps} ${gaps === 1 ? "gap" : "gaps"}` : ""),
    );
    // Facts a test (or a curious person with devtools) can read without parsing the canvas.
    const figure = this.#caption.parentElement!;
    figure.dataset.points = String(items.length);
    figure.dataset.gaps = String(gaps);
    figure.dataset.firstSeq = String(items[0]?.seq ?? 0);
    figure.dataset.maxSeq = String(this.#series.maxSeq);
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

function formatInterval(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
