/**
 * The device page's firmware panel (docs/updates.md): the agent version the device runs, the
 * release a rollout means for it (if any), and the latest update step it reported, with the
 * download's progress and the reason of a failure or a roll-back.
 *
 * Where its data comes from: `GET /api/devices/:id/firmware`. The room does not push update
 * steps to dashboards (ToDashboardMessage has no such message), so the panel asks: every
 * FAST_POLL_MS while a step is under way (a download moves in seconds), every SLOW_POLL_MS
 * otherwise, only while the page is visible; and at once when the room's `state` message says
 * the device now runs another version (an update just came up, or rolled back).
 */
import { DeviceFirmware } from "../../party/protocol";
import { HttpError, request } from "./api";
import { h, setAttr, setText } from "./dom";
import { inProgress, updateText } from "./firmware-format";
import "./updates.css";

export const FAST_POLL_MS = 2_000;
export const SLOW_POLL_MS = 30_000;

export class FirmwarePanel {
  readonly el: HTMLElement;
  readonly #id: string;
  readonly #running = h("dd", { class: "firmware-running" }, "…");
  readonly #target = h("dd", { class: "firmware-target" }, "…");
  readonly #updateText = h("span", { class: "firmware-update" }, "…");
  readonly #progress = h("progress", { max: 1, hidden: true, "aria-label": "Download progress" });
  readonly #when = h("span", { class: "hint" });
  readonly #status = h("p", { class: "hint", role: "status", "aria-live": "polite" });
  #runningVersion: string | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  readonly #onVisibility = () => {
    if (document.visibilityState === "visible") void this.refresh();
    else clearTimeout(this.#timer);
  };

  constructor(opts: { id: string }) {
    this.#id = opts.id;
    this.el = h(
      "section",
      { class: "card firmware", "aria-labelledby": "firmware-title" },
      h("h2", { class: "card-title", id: "firmware-title" }, "Firmware"),
      h(
        "dl",
        {},
        h("dt", {}, "Runs"),
        this.#running,
        h("dt", {}, "Meant to run"),
        this.#target,
        h("dt", {}, "Latest update step"),
        // Polite: a step is news; the bar itself is not read out on every tick.
        h("dd", { "aria-live": "polite" }, this.#updateText, this.#progress, " ", this.#when),
      ),
      this.#status,
      h("p", { class: "hint" }, h("a", { href: "/updates", "data-nav": true }, "Releases and rollouts")),
    );
    document.addEventListener("visibilitychange", this.#onVisibility);
    void this.refresh();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    document.removeEventListener("visibilitychange", this.#onVisibility);
  }

  /** The version the device reports over the room's socket: a change means an update came up or rolled back. */
  setRunning(version: string | null | undefined): void {
    if (!version || version === this.#runningVersion) return;
    const first = this.#runningVersion === null;
    this.#runningVersion = version;
    setText(this.#running, version);
    if (!first) void this.refresh();
  }

  async refresh(): Promise<void> {
    clearTimeout(this.#timer);
    let next = SLOW_POLL_MS;
    try {
      const fw = await request(`/api/devices/${encodeURIComponent(this.#id)}/firmware`, DeviceFirmware);
      if (this.#closed) return;
      this.#render(fw);
      setText(this.#status, "");
      if (fw.update && inProgress(fw.update.state)) next = FAST_POLL_MS;
    } catch (err) {
      if (this.#closed) return;
      // 401: the app shows the sign-in form; 404: the device view says the device is unknown.
      if (err instanceof HttpError && (err.status === 401 || err.status === 404)) return;
      setText(this.#status, `Firmware state could not be loaded (${err instanceof Error ? err.message : String(err)}); trying again.`);
    }
    if (!this.#closed && document.visibilityState === "visible") this.#timer = setTimeout(() => void this.refresh(), next);
  }

  #render(fw: DeviceFirmware): void {
    if (fw.running) this.#runningVersion = fw.running;
    setText(this.#running, fw.running ?? "unknown: the device has not said hello yet");
    setText(this.#target, fw.target ? `${fw.target.version} (rollout ${fw.target.rollout})` : "no rollout names it: it keeps what it runs");
    const update = fw.update;
    setAttr(this.el, "data-state", update?.state ?? null);
    setText(this.#updateText, update ? updateText(update) : "none reported");
    const downloading = update?.state === "downloading" && update.progress !== null;
    this.#progress.hidden = !downloading;
    if (downloading) this.#progress.value = update.progress!;
    const iso = update ? new Date(update.at).toISOString() : "";
    setText(this.#when, update ? `at ${new Date(update.at).toLocaleString()}` : "");
    setAttr(this.#when, "title", update ? iso : null);
  }
}
