/**
 * Signed-in sessions: a viewer's own, everyone's for an operator, each with where it was opened
 * and when last used, and a button that ends it on the server at once (its cookie, wherever a
 * copy of it is, stops working). Ending this browser's own session signs it out.
 */
import type { SessionInfo } from "../../party/protocol";
import { fetchSessions, revokeSession, Unauthorized } from "./api";
import { browserText } from "./audit-format";
import { h, setText } from "./dom";
import { formatAgo } from "./format";

export class SessionsView {
  readonly el: HTMLElement;
  readonly #rows = h("tbody");
  readonly #status = h("p", { class: "hint", role: "status" });
  #closed = false;

  constructor() {
    const refresh = h("button", { type: "button" }, "Refresh");
    refresh.addEventListener("click", () => void this.#load());
    this.el = h(
      "section",
      { class: "card sessions", "aria-labelledby": "sessions-title" },
      h("div", { class: "view-head" }, h("h1", { id: "sessions-title" }, "Sessions"), refresh),
      h(
        "table",
        { class: "records" },
        h("thead", {}, h("tr", {}, ...["Account", "Browser", "From", "Signed in", "Last used", ""].map((t) => h("th", { scope: "col" }, t)))),
        this.#rows,
      ),
      this.#status,
    );
    void this.#load();
  }

  close(): void {
    this.#closed = true;
  }

  async #load(): Promise<void> {
    setText(this.#status, "Loading…");
    try {
      const { sessions } = await fetchSessions();
      if (this.#closed) return;
      const now = Date.now();
      this.#rows.replaceChildren(...sessions.map((s) => this.#row(s, now)));
      setText(this.#status, sessions.length === 0 ? "No sessions: signed in with an API key, nothing to list." : "");
    } catch (err) {
      if (this.#closed || err instanceof Unauthorized) return; // the app shows the sign-in form
      setText(this.#status, "The sessions could not be loaded. Try Refresh.");
    }
  }

  #row(session: SessionInfo, now: number): HTMLTableRowElement {
    const end = h("button", { type: "button", class: "end-session", "aria-label": `End ${session.account}'s session from ${session.address}` }, session.current ? "Sign out here" : "End");
    end.addEventListener("click", async () => {
      end.disabled = true;
      try {
        await revokeSession(session.id);
        // This browser's own: the next request is refused and the app asks to sign in again.
        await this.#load();
      } catch (err) {
        if (err instanceof Unauthorized) return;
        end.disabled = false;
        setText(this.#status, "That session could not be ended. Try again.");
      }
    });
    return h(
      "tr",
      { "data-session": session.id },
      h("td", {}, session.account, session.current ? h("span", { class: "hint" }, " (this browser)") : null),
      h("td", { title: session.userAgent }, browserText(session.userAgent)),
      h("td", {}, session.address),
      h("td", {}, formatAgo(session.createdAt, now)),
      h("td", {}, formatAgo(session.lastUsed, now)),
      h("td", {}, end),
    );
  }
}
