/**
 * The fleet: every device, online or not, with when it was last seen, its
 * latest reading and firmware. Fed by the fleet registry's socket (a `fleet`
 * snapshot, then one `device` frame per change), so a device that registers
 * shows up without a reload.
 */
import type { DeviceSummary, Reading } from "../../party/protocol";
import { h, setAttr, setText } from "./dom";
import { formatAgo, formatTemperature } from "./format";
import { devicePath } from "./router";

type Row = { li: HTMLLIElement; link: HTMLAnchorElement; state: HTMLElement; temp: HTMLElement; sub: HTMLElement };

export class FleetView {
  readonly el: HTMLElement;
  readonly #list = h("ul", { class: "fleet-list" });
  readonly #count = h("span", { class: "count" });
  readonly #empty = h("p", { class: "fleet-empty" }, "No device has registered yet.");
  readonly #rows = new Map<string, Row>();
  #devices = new Map<string, DeviceSummary>();
  #selected: string | null = null;
  #live: Reading | null = null;

  constructor() {
    this.el = h(
      "nav",
      { class: "fleet", "aria-labelledby": "fleet-title" },
      h("h2", { id: "fleet-title" }, "Devices ", this.#count),
      this.#empty,
      this.#list,
    );
    this.#render();
  }

  get devices(): ReadonlyMap<string, DeviceSummary> {
    return this.#devices;
  }

  /** The whole fleet (on every (re)connect of the fleet socket). */
  setAll(devices: readonly DeviceSummary[]): void {
    this.#devices = new Map(devices.map((d) => [d.id, d]));
    for (const [id, row] of this.#rows) {
      if (!this.#devices.has(id)) {
        row.li.remove();
        this.#rows.delete(id);
      }
    }
    this.#render();
  }

  /** One device changed, or a new one registered. */
  upsert(device: DeviceSummary): void {
    this.#devices.set(device.id, device);
    this.#render();
  }

  select(id: string | null): void {
    if (id !== this.#selected) this.#live = null;
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

  /** Ages ("seen 3 s ago") move with the clock. */
  tick(): void {
    this.#render();
  }

  #render(): void {
    const now = Date.now();
    const ids = [...this.#devices.keys()].sort();
    setText(this.#count, `(${ids.length})`);
    this.#empty.hidden = ids.length > 0;
    ids.forEach((id, index) => {
      const d = this.#devices.get(id)!;
      let row = this.#rows.get(id);
      if (!row) {
        row = this.#makeRow(id);
        this.#rows.set(id, row);
      }
      // Keep DOM order = sorted order without rebuilding (focus stays where it was).
      if (this.#list.children[index] !== row.li) this.#list.insertBefore(row.li, this.#list.children[index] ?? null);
      setAttr(row.li, "data-state", d.online ? "online" : "offline");
      setAttr(row.link, "aria-current", id === this.#selected ? "page" : null);
      setText(row.state, d.online ? "Online" : "Offline");
      const live = id === this.#selected ? this.#live : null;
      setText(
        row.temp,
        live
          ? formatTemperature(live.temperature, live.scale)
          : d.temperature !== null && d.scale
            ? formatTemperature(d.temperature, d.scale)
            : "no reading",
      );
      const seen = d.online ? `seen ${formatAgo(d.lastSeen, now)}` : `last seen ${formatAgo(d.lastSeen, now)}`;
      setText(row.sub, [seen, d.fw ? `fw ${d.fw}` : null].filter(Boolean).join(" · "));
    });
  }

  #makeRow(id: string): Row {
    const state = h("span", { class: "state" });
    const temp = h("span", { class: "temp" });
    const sub = h("span", { class: "sub" });
    const link = h(
      "a",
      { href: devicePath(id), class: "fleet-item", "data-nav": true },
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "name" }, id),
      temp,
      h("span", { class: "line" }, state, " · ", sub),
    );
    const li = h("li", { "data-device": id }, link);
    return { li, link, state, temp, sub };
  }
}
