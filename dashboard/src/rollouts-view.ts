/**
 * The Updates page (`/updates`, docs/updates.md): the published releases and every rollout with
 * its stage, its devices counted by the step they last reported, and its failures with reasons.
 * Operators start a rollout here and pause, resume, advance or cancel one; viewers read.
 *
 * Where its data comes from: `GET /api/rollouts` (counts and failures already summed by the
 * Releases object: one request however large the fleet) every POLL_MS while the page is visible,
 * and `GET /api/releases` when it opens, after a change, and every RELEASES_EVERY polls (releases
 * are published from a terminal, rarely). Nothing is asked per device.
 */
import * as z from "zod";
import { ReleaseRecord, Rollout } from "../../party/protocol";
import { HttpError, request, Unauthorized } from "./api";
import { h, setText } from "./dom";
import {
  bytesText,
  failureText,
  pendingCount,
  phaseText,
  rolloutActions,
  rolloutPhase,
  rolloutRequest,
  stageText,
  stateWord,
  targetText,
  UPDATE_STATES,
  type RolloutAction,
  type RolloutForm,
} from "./firmware-format";
import { formatAgo } from "./format";
import "./updates.css";

/** Counts move as devices report steps, seconds apart; 5 s keeps the page current for one small request. */
export const POLL_MS = 5_000;
/** Releases are read every 12th poll (a minute), besides on open and after a change. */
const RELEASES_EVERY = 12;

const ReleasesAnswer = z.object({ releases: z.array(ReleaseRecord) });
const RolloutsAnswer = z.object({ rollouts: z.array(Rollout) });

const ACTION_WORDS: Record<RolloutAction, string> = { pause: "Pause", resume: "Resume", advance: "Advance stage", cancel: "Cancel" };

export class RolloutsView {
  readonly el: HTMLElement;
  readonly #canChange: boolean;
  readonly #releasesBody = h("tbody");
  readonly #rolloutList = h("div", { class: "rollouts" });
  /** One element per rollout, rebuilt only when its data changed (a poll never steals focus from an unchanged one). */
  readonly #cards = new Map<string, { json: string; el: HTMLElement }>();
  readonly #status = h("p", { class: "hint updates-status", role: "status", "aria-live": "polite" }, "Loading…");
  readonly #error = h("p", { class: "form-error", role: "alert" });
  readonly #releaseSelect = h("select", { id: "rollout-release", name: "release", required: true });
  #polls = 0;
  /** The status line says a load failed (a later success clears it; an action's news stays). */
  #loadFailed = true;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  readonly #onVisibility = () => {
    if (document.visibilityState === "visible") void this.#poll(true);
    else clearTimeout(this.#timer);
  };

  constructor(opts: { canChange: boolean }) {
    this.#canChange = opts.canChange;
    const refresh = h("button", { type: "button" }, "Refresh");
    refresh.addEventListener("click", () => void this.#poll(true));
    this.el = h(
      "section",
      { class: "card updates", "aria-labelledby": "updates-title", "data-can-change": String(opts.canChange) },
      h("div", { class: "view-head" }, h("h1", { id: "updates-title" }, "Updates"), refresh),
      this.#status,
      this.#error,
      h("h2", { class: "updates-sub", id: "rollouts-title" }, "Rollouts"),
      this.#rolloutList,
      opts.canChange ? this.#makeForm() : h("p", { class: "hint" }, "Operators start, pause and cancel rollouts."),
      h("h2", { class: "updates-sub", id: "releases-title" }, "Releases"),
      h(
        "div",
        { class: "table-scroll" },
        h(
          "table",
          { class: "records releases", "aria-labelledby": "releases-title" },
          h("thead", {}, h("tr", {}, ...["Version", "Size", "Notes", "Published", "By", "Signature"].map((t) => h("th", { scope: "col" }, t)))),
          this.#releasesBody,
        ),
      ),
      h("p", { class: "hint" }, "Publish a release from a terminal: npm run release -- --version X.Y.Z (docs/updates.md)."),
    );
    document.addEventListener("visibilitychange", this.#onVisibility);
    void this.#poll(true);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    document.removeEventListener("visibilitychange", this.#onVisibility);
  }

  /** Read the rollouts (and the releases when due), render, and schedule the next poll while visible. */
  async #poll(withReleases = false): Promise<void> {
    clearTimeout(this.#timer);
    try {
      const releasesDue = withReleases || this.#polls % RELEASES_EVERY === 0;
      this.#polls++;
      const [releases, rollouts] = await Promise.all([
        releasesDue ? request("/api/releases", ReleasesAnswer) : null,
        request("/api/rollouts", RolloutsAnswer),
      ]);
      if (this.#closed) return;
      if (releases) this.#renderReleases(releases.releases);
      this.#renderRollouts(rollouts.rollouts);
      if (this.#loadFailed) setText(this.#status, "");
      this.#loadFailed = false;
    } catch (err) {
      if (this.#closed || err instanceof Unauthorized) return; // the app shows the sign-in form
      this.#loadFailed = true;
      setText(this.#status, `The updates could not be loaded (${err instanceof Error ? err.message : String(err)}); trying again.`);
    }
    if (!this.#closed && document.visibilityState === "visible") this.#timer = setTimeout(() => void this.#poll(), POLL_MS);
  }

  // ---------------------------------------------------------------------------
  // Operators' actions
  // ---------------------------------------------------------------------------

  async #act(rollout: Rollout, action: RolloutAction, button: HTMLButtonElement): Promise<void> {
    // Cancel is final: the devices that have not started it never will.
    if (action === "cancel" && !confirm(`Cancel rollout ${rollout.id} of ${rollout.release}? This cannot be undone.`)) return;
    button.disabled = true;
    try {
      const changed = await request(`/api/rollouts/${encodeURIComponent(rollout.id)}/${action}`, Rollout, { method: "POST" });
      setText(this.#error, "");
      setText(this.#status, `Rollout ${changed.id}: ${phaseText(changed)}.`);
      await this.#poll();
    } catch (err) {
      if (err instanceof Unauthorized) return;
      button.disabled = false;
      setText(this.#error, `Could not ${action} ${rollout.id}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  #makeForm(): HTMLFormElement {
    const field = (id: string, label: string, input: HTMLElement, hint?: string) =>
      h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null);
    const radio = (value: RolloutForm["target"], label: string, checked = false) =>
      h("label", { class: "choice" }, h("input", { type: "radio", name: "target", value, checked }), ` ${label}`);
    const percent = h("input", { id: "rollout-percent", name: "percent", type: "number", min: "0.01", max: "100", step: "any", value: "10", "aria-label": "Percentage of the fleet" });
    const ids = h("textarea", { id: "rollout-ids", name: "ids", rows: 2, "aria-label": "Device ids", placeholder: "pi-1, pi-2" });
    const stages = h("input", { id: "rollout-stages", name: "stages", value: "100", "aria-describedby": "rollout-stages-hint" });
    const threshold = h("input", { id: "rollout-threshold", name: "failureThreshold", type: "number", min: "1", step: "1", value: "5", "aria-describedby": "rollout-threshold-hint" });
    const minutes = h("input", { id: "rollout-minutes", name: "stageMinutes", type: "number", min: "0", step: "any", value: "0", "aria-describedby": "rollout-minutes-hint" });
    const submit = h("button", { type: "submit", class: "primary" }, "Start rollout");
    const form = h(
      "form",
      { class: "rollout-form", "aria-labelledby": "rollout-form-title" },
      h("h3", { id: "rollout-form-title" }, "Start a rollout"),
      field("rollout-release", "Release", this.#releaseSelect),
      h(
        "fieldset",
        { class: "field" },
        h("legend", {}, "To"),
        radio("all", "all devices", true),
        h("span", { class: "choice" }, radio("percent", "a share of the fleet:"), " ", percent, " %"),
        h("span", { class: "choice" }, radio("ids", "these devices:"), " ", ids),
      ),
      field("rollout-stages", "Stages (% of the target)", stages, "Rising, e.g. 5, 25, 100: each stage includes the one before."),
      field("rollout-threshold", "Pause itself after", threshold, "devices failed or rolled back."),
      field("rollout-minutes", "Next stage after (minutes)", minutes, "0: an operator advances it."),
      submit,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const text = (name: string) => String(data.get(name) ?? "");
      const parsed = rolloutRequest({
        release: text("release"),
        target: text("target") as RolloutForm["target"],
        percent: text("percent"),
        ids: text("ids"),
        stages: text("stages"),
        failureThreshold: text("failureThreshold"),
        stageMinutes: text("stageMinutes"),
      });
      if (!parsed.ok) {
        setText(this.#error, parsed.message);
        return;
      }
      submit.disabled = true;
      try {
        const created = await request("/api/rollouts", Rollout, { method: "POST", body: JSON.stringify(parsed.body) });
        setText(this.#error, "");
        setText(this.#status, `Rollout ${created.id} of ${created.release} started.`);
        await this.#poll(true);
      } catch (err) {
        if (err instanceof Unauthorized) return;
        setText(this.#error, `The rollout was not started: ${err instanceof HttpError ? err.message : String(err)}`);
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  // ---------------------------------------------------------------------------
  // Rendering
  // ---------------------------------------------------------------------------

  #renderReleases(releases: ReleaseRecord[]): void {
    const now = Date.now();
    this.#releasesBody.replaceChildren(
      ...(releases.length
        ? releases.map((r) => {
            const iso = new Date(r.createdAt).toISOString();
            return h(
              "tr",
              { "data-release": r.version },
              h("th", { scope: "row" }, r.version),
              h("td", {}, bytesText(r.size)),
              h("td", {}, r.notes || "—", r.minAgent ? h("span", { class: "hint" }, ` (needs agent ${r.minAgent} or newer)`) : null),
              h("td", {}, h("time", { datetime: iso, title: iso }, formatAgo(r.createdAt, now))),
              h("td", {}, r.createdBy),
              // Devices check every signature against their pinned key either way; this says whether the endpoint did too.
              h("td", {}, r.signatureChecked ? "checked by the endpoint" : "checked on devices only"),
            );
          })
        : [h("tr", {}, h("td", { colspan: 6, class: "hint" }, "No release published yet."))]),
    );
    // Keep the operator's choice across refreshes; the newest release is the default.
    const chosen = this.#releaseSelect.value;
    this.#releaseSelect.replaceChildren(...releases.map((r) => h("option", { value: r.version, selected: r.version === chosen }, `${r.version}${r.notes ? ` · ${r.notes.slice(0, 40)}` : ""}`)));
    this.#releaseSelect.disabled = releases.length === 0;
  }

  #renderRollouts(rollouts: Rollout[]): void {
    const now = Date.now();
    const seen = new Set<string>();
    const els = rollouts.map((r) => {
      seen.add(r.id);
      // Ages in the failures move with time: part of what decides a rebuild, to the minute.
      const json = `${JSON.stringify(r)}|${Math.floor(now / 60_000)}`;
      const known = this.#cards.get(r.id);
      if (known?.json === json) return known.el;
      const el = this.#rolloutCard(r, now);
      // Keep focus on the same control when the card it sits in is rebuilt.
      const focused = known?.el.contains(document.activeElement) ? (document.activeElement as HTMLElement).dataset.action : undefined;
      this.#cards.set(r.id, { json, el });
      if (focused) queueMicrotask(() => el.querySelector<HTMLElement>(`[data-action="${focused}"]`)?.focus());
      return el;
    });
    for (const id of this.#cards.keys()) if (!seen.has(id)) this.#cards.delete(id);
    this.#rolloutList.replaceChildren(...(els.length ? els : [h("p", { class: "hint" }, "No rollout yet.")]));
  }

  #rolloutCard(r: Rollout, now: number): HTMLElement {
    const phase = rolloutPhase(r);
    const titleId = `rollout-${r.id}-title`;
    const pending = pendingCount(r);
    const counts = h(
      "dl",
      { class: "update-counts" },
      ...(pending === null ? [] : [h("div", { "data-state": "pending" }, h("dt", {}, "Not started"), h("dd", {}, String(pending)))]),
      ...UPDATE_STATES.map((s) => h("div", { "data-state": s, "data-count": String(r.counts[s] ?? 0) }, h("dt", {}, stateWord(s)), h("dd", {}, String(r.counts[s] ?? 0)))),
    );
    const actions = this.#canChange
      ? h(
          "div",
          { class: "rollout-actions" },
          ...rolloutActions(r).map((action) => {
            const button = h("button", { type: "button", "data-action": action, "aria-describedby": titleId, class: action === "cancel" ? "danger" : null }, ACTION_WORDS[action]);
            button.addEventListener("click", () => void this.#act(r, action, button));
            return button;
          }),
        )
      : null;
    const created = new Date(r.createdAt).toISOString();
    return h(
      "article",
      { class: "rollout", "data-rollout": r.id, "data-phase": phase, "aria-labelledby": titleId },
      h("h3", { id: titleId }, `${r.release} to ${targetText(r.target)}`, h("span", { class: "rollout-phase" }, phaseText(r))),
      h(
        "p",
        { class: "rollout-meta" },
        `${stageText(r)} · pauses itself after ${r.failureThreshold} failed or rolled back`,
        r.stageMs ? ` · next stage ${Math.round(r.stageMs / 60_000)} min after the last` : "",
        " · started by ",
        r.createdBy,
        " ",
        h("time", { datetime: created, title: created }, formatAgo(r.createdAt, now)),
        ` · ${r.id}`,
      ),
      counts,
      r.failures.length
        ? h(
            "details",
            { class: "rollout-failures", open: true },
            h("summary", {}, `Failures (${r.failures.length}${r.failures.length === 20 ? ", latest" : ""})`),
            h("ul", {}, ...r.failures.map((f) => h("li", { "data-device": f.device, "data-state": f.state }, failureText(f, now)))),
          )
        : null,
      actions,
    );
  }
}
