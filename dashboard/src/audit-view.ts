/**
 * The audit trail, for operators: who changed what, when, from where — newest first, a page at
 * a time ("Show older" follows the cursor). Read when opened and on "Refresh"; it is a record,
 * not a live feed.
 */
import type { AuditEntry } from "../../party/protocol";
import { fetchAudit, HttpError, Unauthorized } from "./api";
import { actionText, detailText, targetText } from "./audit-format";
import { h, setText } from "./dom";
import { formatAgo } from "./format";

const PAGE = 50;

export class AuditView {
  readonly el: HTMLElement;
  readonly #rows = h("tbody");
  readonly #status = h("p", { class: "hint", role: "status" });
  readonly #older = h("button", { type: "button" }, "Show older");
  #next: number | null = null;
  #closed = false;

  constructor() {
    const refresh = h("button", { type: "button" }, "Refresh");
    refresh.addEventListener("click", () => void this.#load(null));
    this.#older.addEventListener("click", () => void this.#load(this.#next));
    this.#older.hidden = true;
    this.el = h(
      "section",
      { class: "card audit", "aria-labelledby": "audit-title" },
      h("div", { class: "view-head" }, h("h1", { id: "audit-title" }, "Audit trail"), refresh),
      h(
        "table",
        { class: "records" },
        h("thead", {}, h("tr", {}, ...["When", "Who", "Did", "To", "From", "Details"].map((t) => h("th", { scope: "col" }, t)))),
        this.#rows,
      ),
      this.#status,
      this.#older,
    );
    void this.#load(null);
  }

  close(): void {
    this.#closed = true;
  }

  async #load(cursor: number | null): Promise<void> {
    setText(this.#status, "Loading…");
    try {
      const page = await fetchAudit(cursor, PAGE);
      if (this.#closed) return;
      const now = Date.now();
      if (cursor === null) this.#rows.replaceChildren();
      this.#rows.append(...page.entries.map((e) => row(e, now)));
      this.#next = page.next;
      this.#older.hidden = page.next === null;
      setText(this.#status, this.#rows.childElementCount === 0 ? "Nothing recorded yet." : "");
    } catch (err) {
      if (this.#closed || err instanceof Unauthorized) return; // the app shows the sign-in form
      setText(
        this.#status,
        err instanceof HttpError && err.status === 403 ? "Only operators can read the audit trail." : "The audit trail could not be loaded. Try Refresh.",
      );
    }
  }
}

function row(entry: AuditEntry, now: number): HTMLTableRowElement {
  const iso = new Date(entry.ts).toISOString();
  return h(
    "tr",
    { "data-action": entry.action },
    h("td", {}, h("time", { datetime: iso, title: iso }, formatAgo(entry.ts, now))),
    h("td", {}, entry.actor),
    h("td", {}, actionText(entry.action)),
    h("td", {}, targetText(entry.target)),
    h("td", {}, entry.address ?? ""),
    h("td", {}, detailText(entry)),
  );
}
