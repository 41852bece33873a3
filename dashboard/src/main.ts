/**
 * The dashboard: sign in if the endpoint asks for it, then the fleet beside
 * the selected device. `/` shows the fleet and picks a device to watch;
 * `/devices/<id>` shows that one; `/sessions` and `/audit` (operators) show
 * who is signed in and what was changed, in place of the device; `/updates`
 * shows releases and rollouts (operators change them, viewers read).
 */
import "./styles.css";
import { onUnauthorized } from "./api";
import { AuditView } from "./audit-view";
import { Clock } from "./clock";
import { h, setAttr, setText } from "./dom";
import { DeviceView } from "./device-view";
import { FleetFeed } from "./fleet-feed";
import { FleetView } from "./fleet-view";
import { devicePath, parseRoute, startRouter, type Route } from "./router";
import { RolloutsView } from "./rollouts-view";
import { canCommand, describeSession, loadSession, login, logout, SessionUnavailable, type Session } from "./session";
import { SessionsView } from "./sessions-view";
import type { ConnectionState } from "./socket";

const root = document.getElementById("app")!;
const connectionEl = document.getElementById("connection")!;
const whoEl = document.getElementById("who")!;
const signOutButton = document.getElementById("sign-out") as HTMLButtonElement;
const navEl = document.getElementById("nav")!;
const auditLink = document.getElementById("nav-audit")!;
const topBar = document.querySelector<HTMLElement>("header.top")!;
const menuToggle = document.getElementById("menu-toggle") as HTMLButtonElement;

/** The whole signed-in app; torn down on sign-out or when the session expires. */
class Dashboard {
  readonly #session: Session;
  /** One clock for every age on the page (clock.ts): the fleet row and the device header count to the same now. */
  readonly #clock = new Clock();
  readonly #fleet = new FleetView({ onQuery: (query) => this.#fleetFeed.set(query), clock: this.#clock });
  readonly #main = h("main", { id: "main", class: "main", tabindex: "-1" });
  /** Said once for the whole page while it cannot reach the endpoint; polite: it is news, not an error the user made. */
  readonly #banner = h("div", { class: "banner", role: "status", "aria-live": "polite", hidden: true });
  readonly #fleetFeed: FleetFeed;
  #fleetLoaded = false;
  #route: Route = { view: "fleet" };
  #device: DeviceView | null = null;
  /** `/sessions`, `/audit` or `/updates`, shown in place of a device. */
  #page: { view: "sessions" | "audit" | "updates"; close(): void; el: HTMLElement } | null = null;
  #connections: { fleet: ConnectionState; device: ConnectionState | null } = { fleet: { kind: "connecting" }, device: null };

  constructor(session: Session, route: Route) {
    this.#session = session;
    this.#route = route;
    root.replaceChildren(this.#banner, h("div", { class: "layout" }, this.#fleet.el, this.#main));
    this.#fleetFeed = new FleetFeed({
      query: this.#fleet.query,
      onPage: (page) => {
        this.#fleetLoaded = true;
        this.#fleet.setPage(page);
        this.#show();
      },
      onState: (state) => {
        this.#connections.fleet = state;
        // A failed refresh means the list is old news: its presence is unknown until one gets through.
        this.#fleet.setReachable(state.kind !== "reconnecting");
        this.#renderConnection();
      },
    });
    this.#clock.onTick(() => this.#fleet.tick());
    this.#show();
  }

  setRoute(route: Route): void {
    this.#route = route;
    this.#show();
  }

  close(): void {
    this.#clock.stop();
    this.#fleetFeed.close();
    this.#device?.close();
    this.#device = null;
    this.#page?.close();
    this.#page = null;
  }

  /** Decide what the main area shows for the current route and fleet. */
  #show(): void {
    const view = this.#route.view;
    if (view === "sessions" || view === "audit" || view === "updates") {
      this.#fleet.select(null);
      this.#device?.close();
      this.#device = null;
      this.#connections.device = null;
      if (this.#page?.view !== view) {
        this.#page?.close();
        const page = view === "audit" ? new AuditView() : view === "updates" ? new RolloutsView({ canChange: canCommand(this.#session) }) : new SessionsView();
        this.#page = Object.assign(page, { view });
        this.#main.replaceChildren(this.#page.el);
      }
      document.title = `${{ audit: "Audit trail", sessions: "Sessions", updates: "Updates" }[view]} · IoT Dashboard`;
      this.#renderConnection();
      return;
    }
    this.#page?.close();
    this.#page = null;
    let id = this.#route.view === "device" ? this.#route.id : null;
    if (!id && this.#fleetLoaded && this.#fleet.devices.size > 0) {
      // `/` with devices: watch one on the page shown (an online one if any), and say so in the URL so it can be shared.
      const all = [...this.#fleet.devices.values()];
      id = (all.find((d) => d.online) ?? all[0])!.id;
      router.go(devicePath(id), true);
      return;
    }
    this.#fleet.select(id);
    document.title = id ? `${id} · IoT Dashboard` : "IoT Dashboard";
    if (id && this.#device?.el.dataset.device === id) return;
    this.#device?.close();
    this.#device = null;
    this.#connections.device = null;
    if (id) {
      const watched = id;
      this.#device = new DeviceView({
        id: watched,
        canCommand: canCommand(this.#session),
        onConnection: (state) => {
          this.#connections.device = state;
          this.#renderConnection();
        },
        onReading: (reading) => this.#fleet.setLive(watched, reading),
        onPresence: (online, lastSeen) => this.#fleet.setPresence(watched, online, lastSeen),
        clock: this.#clock,
      });
      this.#main.replaceChildren(this.#device.el);
    } else if (!this.#fleetLoaded) {
      this.#main.replaceChildren(h("p", { class: "loading" }, "Loading the fleet…"));
    } else if (this.#fleet.searching) {
      this.#main.replaceChildren(h("p", { class: "loading" }, "No device matches the search."));
    } else {
      this.#main.replaceChildren(awaitingRegistration(canCommand(this.#session)));
    }
    this.#renderConnection();
  }

  /**
   * One indicator for the page: the worse of the fleet list's refresh and the device socket. A device
   * socket that stopped for good (unknown device) says so in its own panel, not up here.
   */
  #renderConnection(): void {
    const device = this.#connections.device?.kind === "stopped" ? null : this.#connections.device;
    const states = [this.#connections.fleet, device].filter((s): s is ConnectionState => s !== null);
    const stopped = states.find((s) => s.kind === "stopped");
    const reconnecting = states.filter((s) => s.kind === "reconnecting");
    let text = "Connected";
    let kind: ConnectionState["kind"] = "connected";
    if (stopped) {
      kind = "stopped";
      text = "Disconnected";
    } else if (reconnecting.length) {
      kind = "reconnecting";
      text = `Reconnecting (attempt ${Math.max(...reconnecting.map((s) => (s.kind === "reconnecting" ? s.attempt : 0)))})`;
    } else if (states.some((s) => s.kind === "connecting")) {
      kind = "connecting";
      text = "Connecting…";
    }
    setText(connectionEl, text);
    setAttr(connectionEl, "data-state", kind);
    this.#banner.hidden = kind !== "reconnecting";
    setText(
      this.#banner,
      kind === "reconnecting"
        ? `${text}: this page cannot reach the endpoint. Presence is unknown and the values shown may be out of date until it is back.`
        : "",
    );
  }
}

/**
 * No device yet: the two commands that add one, with this endpoint's address filled in
 * (a device needs a token, so the agent alone would be refused with 401). The old
 * dashboard's words head it, so people who knew it recognise the state.
 */
function awaitingRegistration(operator: boolean): HTMLElement {
  const endpoint = location.origin;
  const provision = `npm run device -- provision --endpoint ${endpoint} --id my-device --admin-token <operator token>`;
  const run = `npm run device -- --simulate --endpoint ${endpoint} --token <token printed by step 1>`;
  return h(
    "div",
    { class: "awaiting", role: "status" },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    h("p", {}, "Awaiting IoT Endpoint Registration ..."),
    h(
      "div",
      { class: "steps" },
      h("p", {}, operator ? "Add a device from the project's folder:" : "An operator adds a device from the project's folder:"),
      h(
        "ol",
        {},
        h("li", {}, "Provision it: this prints its token, once.", h("pre", {}, h("code", { "data-step": "provision" }, provision))),
        h(
          "li",
          {},
          "Run the agent with that token (",
          h("code", {}, "--simulate"),
          " invents readings for a demo; leave it out on a Pi with a TMP102).",
          h("pre", {}, h("code", { "data-step": "run" }, run)),
        ),
      ),
      h("p", { class: "hint" }, "It appears here as soon as it connects. The operator token is ADMIN_TOKEN in .dev.vars locally."),
    ),
  );
}

// -----------------------------------------------------------------------------
// Boot: find out who we are, then sign in or start.
// -----------------------------------------------------------------------------

let app: Dashboard | null = null;
let route: Route = parseRoute(location.pathname);
const router = startRouter((next) => {
  route = next;
  app?.setRoute(next);
});

function start(session: Session): void {
  app?.close();
  signInError = null;
  setText(whoEl, describeSession(session));
  signOutButton.hidden = session.kind !== "signed-in";
  // Sessions for anyone signed in (their own); the audit trail for operators only.
  navEl.hidden = session.kind !== "signed-in";
  auditLink.hidden = !(session.kind === "signed-in" && session.role === "operator");
  menuToggle.hidden = session.kind !== "signed-in";
  setMenu(false);
  app = new Dashboard(session, route);
}

/** Set while the sign-in form is up, so a burst of 401s (two sockets, a history fetch) shows it once. */
let signInError: HTMLElement | null = null;

function showSignIn(message = ""): void {
  if (signInError) {
    setText(signInError, message);
    return;
  }
  app?.close();
  app = null;
  setText(whoEl, "");
  signOutButton.hidden = true;
  navEl.hidden = true;
  menuToggle.hidden = true;
  setMenu(false);
  setText(connectionEl, "Signed out");
  setAttr(connectionEl, "data-state", "stopped");
  const error = h("p", { class: "form-error", role: "alert", id: "sign-in-error" }, message);
  signInError = error;
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    required: true,
    autocomplete: "current-password",
    "aria-describedby": "token-help sign-in-error",
  });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("label", { for: "token" }, "Access token"),
    input,
    h("p", { id: "token-help", class: "hint" }, "Your account's token (npm run accounts -- add), or the endpoint's operator or viewer token (locally: ADMIN_TOKEN in .dev.vars)."),
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    setText(error, "");
    try {
      const result = await login(input.value);
      if (result.ok) start(result.session);
      else setText(error, result.message);
    } catch {
      setText(error, "The endpoint could not be reached. Try again in a moment.");
    } finally {
      submit.disabled = false;
    }
  });
  root.replaceChildren(h("main", { class: "main centered" }, form));
  input.focus();
}

async function boot(): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      const session = await loadSession();
      if (session.kind === "signed-out") showSignIn();
      else start(session);
      return;
    } catch (err) {
      if (!(err instanceof SessionUnavailable)) throw err;
      setText(connectionEl, `Endpoint unreachable, retrying (attempt ${attempt})`);
      setAttr(connectionEl, "data-state", "reconnecting");
      await new Promise((r) => setTimeout(r, Math.min(1000 * attempt, 10_000)));
    }
  }
}

/**
 * On a phone the account links, who is signed in and Sign out fold behind one Menu button, so the
 * top bar stays one row (styles.css shows the button only on narrow screens); it opens below the bar.
 */
function setMenu(open: boolean): void {
  setAttr(topBar, "data-menu", open ? "open" : null);
  setAttr(menuToggle, "aria-expanded", String(open));
}
menuToggle.addEventListener("click", () => setMenu(topBar.dataset.menu !== "open"));
topBar.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && topBar.dataset.menu === "open") {
    setMenu(false);
    menuToggle.focus();
  }
});
document.getElementById("account")!.addEventListener("click", (e) => {
  if ((e.target as Element).closest("a, button")) setMenu(false);
});

onUnauthorized(() => showSignIn("Your session has ended. Sign in again."));
signOutButton.addEventListener("click", async () => {
  // Stop the fleet refresh and the sockets first: a refresh answered 401 after the logout would be an error.
  app?.close();
  app = null;
  await logout();
  showSignIn();
});
void boot();
