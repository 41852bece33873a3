/**
 * The device page's alerts panel (docs/alerts.md): the device's rules, each with its effective
 * latency; alerts not yet cleared, each with an Acknowledge button for operators; the recent
 * history and webhook deliveries; and a small form for operators to add or remove a rule.
 *
 * Where its data comes from: `GET /api/devices/:id/alerts` and `…/alerts/rules` when it opens
 * and after every change, and the room's `alert` messages (through the device view's socket),
 * which update the list at once; a refetch a moment later brings the deliveries' outcome.
 * Also the fleet list's badge (renderAlertBadge), from the count in each device's summary.
 */
import { AlertRecord, AlertRulesAnswer, DeviceAlerts, type AlertRuleBody } from "../../party/protocol";
import { HttpError, request } from "./api";
import { alertStateText, deliveryText, ruleText } from "./alerts-format";
import { h, setAttr, setText } from "./dom";
import "./alerts.css";

/** Cleared alerts and deliveries the panel lists (the room keeps 200 of each). */
const SHOWN = 10;
/** A moment after an alert message, the deliveries it caused have usually had their first try. */
const REFETCH_AFTER_MS = 1_500;

const base = (id: string) => `/api/devices/${encodeURIComponent(id)}/alerts`;

export class AlertsPanel {
  readonly el: HTMLElement;
  readonly #id: string;
  readonly #canChange: boolean;
  readonly #onAlerts: (alerts: AlertRecord[]) => void;
  #alerts: DeviceAlerts | null = null;
  #rules: AlertRulesAnswer | null = null;
  #refetch: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  readonly #summary = h("p", { class: "alerts-summary", role: "status", "aria-live": "polite" }, "Loading alerts…");
  readonly #active = h("ul", { class: "alerts-active" });
  readonly #rulesList = h("ul", { class: "alerts-rules" });
  readonly #history = h("ul", { class: "alerts-history" });
  readonly #deliveries = h("ul", { class: "alerts-deliveries" });
  readonly #error = h("p", { class: "alerts-error", role: "alert", hidden: true });
  readonly #form: HTMLFormElement;

  /** `onAlerts`: every alert the panel knows (active and history), whenever that changes; the chart marks them. */
  constructor(opts: { id: string; canChange: boolean; onAlerts?(alerts: AlertRecord[]): void }) {
    this.#id = opts.id;
    this.#onAlerts = opts.onAlerts ?? (() => {});
    this.#canChange = opts.canChange;
    this.#form = this.#makeForm();
    this.el = h(
      "section",
      { class: "card alerts", "aria-labelledby": "alerts-title" },
      h("h2", { class: "card-title", id: "alerts-title" }, "Alerts"),
      this.#summary,
      this.#active,
      this.#error,
      h("h3", { class: "alerts-sub" }, "Rules"),
      this.#rulesList,
      opts.canChange ? this.#form : h("p", { class: "hint" }, "Operators can add rules and acknowledge alerts."),
      h("details", { class: "alerts-more" }, h("summary", {}, "Recent alerts and webhook deliveries"), this.#history, this.#deliveries),
    );
    void this.refresh();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#refetch);
  }

  /** The room's `alert` message: shown at once, then the full lists again a moment later. */
  onAlert(alert: AlertRecord): void {
    if (this.#alerts) {
      const others = this.#alerts.active.filter((a) => a.id !== alert.id);
      const history = this.#alerts.history.filter((a) => a.id !== alert.id);
      this.#alerts = alert.status === "cleared"
        ? { ...this.#alerts, active: others, history: [alert, ...history] }
        : { ...this.#alerts, active: [alert, ...others].sort((a, b) => b.id - a.id) };
      this.#render();
    }
    clearTimeout(this.#refetch);
    this.#refetch = setTimeout(() => void this.refresh(), REFETCH_AFTER_MS);
  }

  async refresh(): Promise<void> {
    try {
      const [alerts, rules] = await Promise.all([request(base(this.#id), DeviceAlerts), request(`${base(this.#id)}/rules`, AlertRulesAnswer)]);
      if (this.#closed) return;
      this.#alerts = alerts;
      this.#rules = rules;
      this.#error.hidden = true;
      this.#render();
    } catch (err) {
      // 401 is handled app-wide (sign-in form); 404 by the device view's own notice.
      if (err instanceof HttpError && (err.status === 401 || err.status === 404)) return;
      this.#showError(`Alerts could not be loaded: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  // ---------------------------------------------------------------------------
  // Operators' actions
  // ---------------------------------------------------------------------------

  async #acknowledge(alert: AlertRecord, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    try {
      this.onAlert(await request(`${base(this.#id)}/${alert.id}/acknowledge`, AlertRecord, { method: "POST" }));
    } catch (err) {
      button.disabled = false;
      this.#showError(`Could not acknowledge: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  async #putRule(id: string, rule: AlertRuleBody | null): Promise<void> {
    try {
      const path = `${base(this.#id)}/rules/${encodeURIComponent(id)}`;
      this.#rules = await request(path, AlertRulesAnswer, rule ? { method: "PUT", body: JSON.stringify(rule) } : { method: "DELETE" });
      this.#error.hidden = true;
      this.#render();
    } catch (err) {
      this.#showError(`Could not ${rule ? "save" : "remove"} rule ${id}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  #makeForm(): HTMLFormElement {
    const kind = h("select", { name: "kind", "aria-label": "Condition" },
      h("option", { value: "above" }, "Above"), h("option", { value: "below" }, "Below"),
      h("option", { value: "no-data" }, "No reading"), h("option", { value: "offline" }, "Offline"));
    const threshold = h("input", { name: "threshold", type: "number", step: "0.1", "aria-label": "Threshold", placeholder: "threshold", class: "alerts-num" });
    const scale = h("select", { name: "scale", "aria-label": "Threshold scale" }, h("option", { value: "F" }, "°F"), h("option", { value: "C" }, "°C"));
    const minutes = h("input", { name: "minutes", type: "number", min: "0", step: "any", value: "5", "aria-label": "For how many minutes", class: "alerts-num" });
    const name = h("input", { name: "id", required: true, pattern: "[a-z0-9][a-z0-9_\\-]{0,31}", placeholder: "rule id, e.g. freezer", "aria-label": "Rule id" });
    const syncKind = () => {
      const thresholds = kind.value === "above" || kind.value === "below";
      threshold.hidden = scale.hidden = !thresholds;
      threshold.required = thresholds;
    };
    kind.addEventListener("change", syncKind);
    syncKind();
    return h(
      "form",
      {
        class: "alerts-form",
        onsubmit: (e) => {
          e.preventDefault();
          const forMs = Math.round(Number(minutes.value || "0") * 60_000);
          const body = (kind.value === "above" || kind.value === "below"
            ? { kind: kind.value, threshold: Number(threshold.value), scale: scale.value, forMs }
            : { kind: kind.value, forMs }) as AlertRuleBody;
          void this.#putRule(name.value, body);
        },
      },
      name, kind, threshold, scale, h("span", {}, "for"), minutes, h("span", {}, "min"),
      h("button", { type: "submit" }, "Add rule"),
    );
  }

  // ---------------------------------------------------------------------------
  // Rendering
  // ---------------------------------------------------------------------------

  #render(): void {
    const now = Date.now();
    const alerts = this.#alerts;
    if (alerts) {
      const n = alerts.active.length;
      setText(this.#summary, n === 0 ? "No active alerts." : `${n} ${n === 1 ? "alert" : "alerts"} not yet cleared.`);
      setAttr(this.el, "data-active", String(n));
      this.#active.replaceChildren(...alerts.active.map((a) => this.#alertItem(a, now)));
      this.#history.replaceChildren(...alerts.history.slice(0, SHOWN).map((a) => this.#alertItem(a, now)));
      this.#deliveries.replaceChildren(...alerts.deliveries.slice(0, SHOWN).map((d) => h("li", { "data-status": d.status }, deliveryText(d))));
      this.#onAlerts([...alerts.active, ...alerts.history]);
    }
    if (this.#rules) {
      const items = this.#rules.rules.map((v) =>
        h(
          "li",
          { "data-rule": v.rule.id, "data-source": v.source },
          h("strong", {}, v.rule.name ?? v.rule.id),
          ` ${ruleText(v.rule)}${v.source === "default" ? " · fleet default" : ""}${v.rule.enabled ? "" : " · off"}`,
          h("span", { class: "alerts-latency" }, `Latency: ${v.latency}`),
          this.#canChange && v.source === "device"
            ? h("button", { type: "button", class: "alerts-remove", onclick: () => void this.#putRule(v.rule.id, null) }, "Remove")
            : null,
        ),
      );
      this.#rulesList.replaceChildren(...(items.length ? items : [h("li", { class: "hint" }, "No rules: this device raises no alerts.")]));
    }
  }

  #alertItem(alert: AlertRecord, now: number): HTMLLIElement {
    const button =
      this.#canChange && alert.status === "active"
        ? h("button", { type: "button", class: "alerts-ack" }, "Acknowledge")
        : null;
    button?.addEventListener("click", () => void this.#acknowledge(alert, button));
    return h(
      "li",
      { class: "alert", "data-alert": alert.id, "data-status": alert.status },
      h("span", { class: "alert-message" }, alert.message),
      h("span", { class: "alert-state" }, alertStateText(alert, now)),
      button,
    );
  }

  #showError(text: string): void {
    this.#error.hidden = false;
    setText(this.#error, text);
  }
}

/** The fleet list's badge on a device row: "2 alerts", hidden at 0. */
export function renderAlertBadge(row: HTMLElement, count: number): void {
  let badge = row.querySelector<HTMLElement>(".alert-badge");
  if (!badge) {
    badge = h("span", { class: "alert-badge" });
    row.append(badge);
  }
  badge.hidden = count === 0;
  setText(badge, count === 0 ? "" : `${count} ${count === 1 ? "alert" : "alerts"}`);
  setAttr(row, "data-alerts", count === 0 ? null : String(count));
}
