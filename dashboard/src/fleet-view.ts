/**
 * The fleet: one page of devices at a time, in id order, with when each was
 * last seen, its latest reading, a sparkline of its recent readings and its
 * firmware; a search box (ids containing the text), a presence filter (both
 * answered by the API over the whole fleet), a sort of the page shown
 * (fleet-order.ts says why within the page) and previous/next. On a phone it
 * folds into a device picker at the top of the page. The page comes from fleet-feed.ts, which
 * refreshes it every few seconds while the tab is visible, so a device that
 * registers or goes offline shows up without a reload.
 */
import type { DeviceSummary, DevicesPage, Reading } from "../../party/protocol";
import type { FleetQuery } from "./api";
import type { Clock } from "./clock";
import { h, setAttr, setText } from "./dom";
import { describeSpark, isFleetSort, sortPage, sparkPath, SORTS, type FleetSort } from "./fleet-order";
import { formatAgo, formatCount, formatRange, formatSeen, formatTemperature } from "./format";
import { renderAlertBadge } from "./alerts-view";
import { devicePath } from "./router";

/** Rows a page shows: enough to scan, few enough that a refresh stays small. */
export const PAGE_SIZE = 50;
/** Typing pauses this long before the search goes out (one request per word, not per key). */
const SEARCH_DELAY_MS = 250;

type Row = { li: HTMLLIElement; link: HTMLAnchorElement; state: HTMLElement; temp: HTMLElement; sub: HTMLElement; spark: SVGSVGElement; line: SVGPathElement };

/** The sparkline's box in CSS pixels. */
const SPARK_W = 64;
const SPARK_H = 20;
const SVG = "http://www.w3.org/2000/svg";

export class FleetView {
  readonly el: HTMLElement;
  readonly #onQuery: (query: FleetQuery) => void;
  readonly #list = h("ul", { class: "fleet-list" });
  readonly #count = h("span", { class: "count" });
  readonly #empty = h("p", { class: "fleet-empty" });
  readonly #search = h("input", {
    type: "search",
    class: "fleet-search",
    placeholder: "Search by id",
    "aria-label": "Search devices by id",
    autocomplete: "off",
    spellcheck: "false",
    maxlength: 64,
  });
  readonly #range = h("span", { class: "range", "aria-live": "polite" });
  readonly #prev = h("button", { type: "button", class: "prev" }, "Previous");
  readonly #next = h("button", { type: "button", class: "next" }, "Next");
  readonly #pager = h("div", { class: "pager" }, this.#prev, this.#range, this.#next);
  readonly #filter = h(
    "select",
    { class: "fleet-filter", "aria-label": "Show devices" },
    h("option", { value: "" }, "All devices"),
    h("option", { value: "true" }, "Online"),
    h("option", { value: "false" }, "Offline"),
  );
  readonly #sortSelect = h("select", { class: "fleet-sort", "aria-label": "Sort this page by", "aria-describedby": "fleet-sort-hint" }, ...SORTS.map((s) => h("option", { value: s.key }, s.label)));
  readonly #sortHint = h("p", { class: "hint", id: "fleet-sort-hint" });
  /** On a phone: the fleet folds into this one row at the top of the page, naming the device shown. */
  readonly #toggleCurrent = h("span", { class: "current" }, "Choose a device");
  readonly #toggleCount = h("span", { class: "total" });
  readonly #toggle = h(
    "button",
    { type: "button", class: "fleet-toggle", "aria-expanded": "false", "aria-controls": "fleet-body" },
    h("span", { class: "label" }, "Device"),
    " ",
    this.#toggleCurrent,
    " ",
    this.#toggleCount,
  );
  readonly #rows = new Map<string, Row>();
  readonly #now: () => number;
  #onlineFilter: boolean | null = null;
  #sort: FleetSort = "id";
  /** The watched device's presence from its own room (fresher than the registry's copy). */
  #livePresence: { online: boolean; lastSeen: number | null } | null = null;
  #firstPageShown = false;
  #devices = new Map<string, DeviceSummary>();
  #page: DevicesPage | null = null;
  /** Rows before the page shown (for "51–100 of …"), as of when it arrived. */
  #offset = 0;
  /** A new page or search was asked for and has not arrived: previous/next wait for it. */
  #pending = false;
  /** The cursor of every page up to the one shown: [null] on the first page. */
  #cursors: (string | null)[] = [null];
  #q = "";
  #searchTimer: ReturnType<typeof setTimeout> | undefined;
  #selected: string | null = null;
  #live: Reading | null = null;
  /** The last refresh reached the endpoint. While it cannot, the rows are old news: presence is unknown. */
  #reachable = true;

  constructor(opts: { onQuery(query: FleetQuery): void; clock?: Clock }) {
    this.#onQuery = opts.onQuery;
    this.#now = opts.clock ? () => opts.clock!.now() : Date.now;
    this.el = h(
      "nav",
      { class: "fleet", "aria-labelledby": "fleet-title", "data-collapsed": "true" },
      this.#toggle,
      h(
        "div",
        { class: "fleet-body", id: "fleet-body" },
        h("h2", { id: "fleet-title" }, "Devices ", this.#count),
        h(
          "form",
          { role: "search", class: "fleet-find", onsubmit: (e) => e.preventDefault() },
          this.#search,
          h("div", { class: "fleet-tools" }, this.#filter, this.#sortSelect),
          this.#sortHint,
        ),
        this.#empty,
        this.#list,
        this.#pager,
      ),
    );
    this.#toggle.addEventListener("click", () => this.#setCollapsed(this.el.dataset.collapsed !== "true"));
    // Picking a device on a phone folds the list away again, so the device is what shows.
    this.#list.addEventListener("click", (e) => {
      if ((e.target as Element).closest("a")) this.#setCollapsed(true);
    });
    this.#filter.addEventListener("change", () => {
      this.#onlineFilter = this.#filter.value === "" ? null : this.#filter.value === "true";
      this.#go([null]);
    });
    this.#sortSelect.addEventListener("change", () => {
      if (isFleetSort(this.#sortSelect.value)) this.#sort = this.#sortSelect.value;
      this.#render();
    });
    this.#search.addEventListener("input", () => {
      clearTimeout(this.#searchTimer);
      this.#searchTimer = setTimeout(() => this.#setSearch(this.#search.value.trim()), SEARCH_DELAY_MS);
    });
    this.#prev.addEventListener("click", () => this.#go(this.#cursors.slice(0, -1)));
    this.#next.addEventListener("click", () => this.#page?.next && this.#go([...this.#cursors, this.#page.next]));
    this.#render();
  }

  /** What to fetch for the page on screen. */
  get query(): FleetQuery {
    return { cursor: this.#cursors[this.#cursors.length - 1] ?? null, q: this.#q, limit: PAGE_SIZE, online: this.#onlineFilter };
  }

  /** The devices on the page shown, in id order. */
  get devices(): ReadonlyMap<string, DeviceSummary> {
    return this.#devices;
  }

  /** True while a search or filter narrows the list (an empty page then says nothing about the fleet). */
  get searching(): boolean {
    return this.#q !== "" || this.#onlineFilter !== null;
  }

  /** A page arrived for the current query (fleet-feed.ts drops answers to older ones). */
  setPage(page: DevicesPage): void {
    if (page.devices.length === 0 && this.#cursors.length > 1) {
      // The page emptied under us (devices removed): step back rather than show nothing.
      this.#go(this.#cursors.slice(0, -1));
      return;
    }
    this.#page = page;
    this.#offset = (this.#cursors.length - 1) * PAGE_SIZE;
    this.#pending = false;
    this.#devices = new Map(page.devices.map((d) => [d.id, d]));
    if (!this.#firstPageShown) {
      this.#firstPageShown = true;
      // For the browser test (and anyone curious): navigation start to the first page of the fleet on screen.
      performance.mark("iot:fleet-first-page");
    }
    for (const [id, row] of this.#rows) {
      if (!this.#devices.has(id)) {
        row.li.remove();
        this.#rows.delete(id);
      }
    }
    this.#render();
  }

  select(id: string | null): void {
    if (id !== this.#selected) {
      this.#live = null;
      this.#livePresence = null;
    }
    this.#selected = id;
    this.#render();
  }

  /**
   * The watched device's newest reading, from its own room. The registry's copy is
   * throttled (FLEET_PUSH_MS); the list should agree with the big number.
   */
  setLive(id: string, reading: Reading): void {
    if (id !== this.#selected) return;
    this.#live = reading;
    this.#render();
  }

  /** The watched device's presence from its own room: its row and the device header then say the same. */
  setPresence(id: string, online: boolean, lastSeen: number | null): void {
    if (id !== this.#selected) return;
    if (this.#livePresence?.online === online && this.#livePresence.lastSeen === lastSeen) return;
    this.#livePresence = { online, lastSeen };
    this.#render();
  }

  /** Whether the fleet refresh reaches the endpoint (fleet-feed.ts's state). */
  setReachable(reachable: boolean): void {
    if (reachable === this.#reachable) return;
    this.#reachable = reachable;
    setAttr(this.el, "data-reachable", reachable ? null : "false");
    this.#render();
  }

  /** Ages ("seen 3 s ago") move with the clock. */
  tick(): void {
    this.#render();
  }

  #setSearch(q: string): void {
    if (q === this.#q) return;
    this.#q = q;
    this.#go([null]);
  }

  #go(cursors: (string | null)[]): void {
    this.#cursors = cursors.length ? cursors : [null];
    this.#pending = true;
    this.#render();
    this.#onQuery(this.query);
  }

  #setCollapsed(collapsed: boolean): void {
    this.el.dataset.collapsed = String(collapsed);
    setAttr(this.#toggle, "aria-expanded", String(!collapsed));
    if (!collapsed) this.#search.focus();
  }

  #render(): void {
    const now = this.#now();
    const page = this.#page;
    setText(this.#toggleCurrent, this.#selected ?? "Choose a device");
    setText(this.#toggleCount, page ? `${formatCount(page.total)} ${page.total === 1 ? "device" : "devices"}` : "");
    const sorted = this.#sort !== "id" && (page?.devices.length ?? 0) > 1;
    setText(this.#sortHint, sorted ? "Sorted within this page; pages follow id order." : "");
    setText(this.#count, page ? `(${formatCount(page.total)})` : "");
    setText(this.#range, page ? formatRange(this.#offset, page.devices.length, page.total) : "");
    this.#pager.hidden = !page || (this.#offset === 0 && page.next === null);
    this.#prev.disabled = this.#pending || this.#offset === 0;
    this.#next.disabled = this.#pending || !page?.next;
    setAttr(this.#list, "aria-busy", this.#pending ? "true" : null);
    this.#empty.hidden = !page || page.devices.length > 0;
    const filter = this.#onlineFilter === null ? "" : this.#onlineFilter ? " is online" : " is offline";
    setText(
      this.#empty,
      this.#q
        ? `No device id contains “${this.#q}”${filter ? ` and${filter}` : ""}.`
        : filter
          ? `No device${filter}.`
          : "No device has registered yet.",
    );
    sortPage([...this.#devices.values()], this.#sort).forEach((d0, index) => {
      // The watched device: presence as its own room says it, so its row and the header agree.
      const live0 = d0.id === this.#selected ? this.#livePresence : null;
      const d = live0 ? { ...d0, online: live0.online, lastSeen: live0.lastSeen ?? d0.lastSeen } : d0;
      let row = this.#rows.get(d.id);
      if (!row) {
        row = this.#makeRow(d.id);
        this.#rows.set(d.id, row);
      }
      // Keep DOM order = page order without rebuilding (focus stays where it was).
      if (this.#list.children[index] !== row.li) this.#list.insertBefore(row.li, this.#list.children[index] ?? null);
      // Never connected is not a failure (no red); unknown is what a page that cannot see the endpoint knows.
      const never = !d.online && d.lastSeen === null;
      const state = !this.#reachable ? "unknown" : d.online ? "online" : never ? "never" : "offline";
      setAttr(row.li, "data-state", state);
      setAttr(row.link, "aria-current", d.id === this.#selected ? "page" : null);
      setText(row.state, { online: "Online", offline: "Offline", never: "Never connected", unknown: "Presence unknown" }[state]);
      const live = d.id === this.#selected ? this.#live : null;
      const reading = live
        ? formatTemperature(live.temperature, live.scale)
        : d.temperature !== null && d.scale
          ? formatTemperature(d.temperature, d.scale)
          : null;
      // No reading yet: a dash, with the words for screen readers, so the id keeps its room in a narrow row.
      if (reading !== null) setText(row.temp, reading);
      else if (row.temp.dataset.none === undefined) row.temp.replaceChildren("—", h("span", { class: "sr-only" }, "no reading"));
      setAttr(row.temp, "data-none", reading === null ? "" : null);
      const seen =
        state === "unknown"
          ? `last known ${d.online ? "online" : never ? "never connected" : "offline"}${d.lastSeen === null ? "" : `, seen ${formatAgo(d.lastSeen, now)}`}`
          : state === "never"
            ? "provisioned"
            : formatSeen(d.online, d.lastSeen, now);
      setText(row.sub, [seen, d.fw ? `fw ${d.fw}` : null].filter(Boolean).join(" · "));
      this.#renderSpark(row, d);
      renderAlertBadge(row.link, d.alerts);
    });
  }

  /** The row's sparkline, from the summary the page already carries (no request of its own). */
  #renderSpark(row: Row, d: DeviceSummary): void {
    const key = d.spark.join(",");
    if (row.spark.dataset.key === key) return;
    row.spark.dataset.key = key;
    row.spark.dataset.points = String(d.spark.length);
    row.line.setAttribute("d", sparkPath(d.spark, SPARK_W, SPARK_H));
    row.spark.setAttribute("aria-label", `Trend: ${describeSpark(d.spark, d.scale)}`);
  }

  #makeRow(id: string): Row {
    const state = h("span", { class: "state" });
    const temp = h("span", { class: "temp" });
    const sub = h("span", { class: "sub" });
    const spark = document.createElementNS(SVG, "svg");
    const line = document.createElementNS(SVG, "path");
    spark.setAttribute("class", "spark");
    spark.setAttribute("role", "img");
    spark.setAttribute("viewBox", `0 0 ${SPARK_W} ${SPARK_H}`);
    spark.setAttribute("width", String(SPARK_W));
    spark.setAttribute("height", String(SPARK_H));
    spark.append(line);
    const link = h(
      "a",
      { href: devicePath(id), class: "fleet-item", "data-nav": true },
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "name", title: id }, id),
      spark,
      temp,
      h("span", { class: "line" }, state, " · ", sub),
    );
    const li = h("li", { "data-device": id }, link);
    return { li, link, state, temp, sub, spark, line };
  }
}
