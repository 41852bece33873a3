/**
 * The fleet list's data: the page on screen, fetched from `GET /api/devices`
 * when the query changes and again every REFRESH_MS while the tab is visible.
 *
 * Why polling, not a socket: a socket that streams every device's changes to
 * every dashboard grows with the fleet (100,000 devices pushing every 2 s is
 * 50,000 frames a second to each open page). A page refresh costs one request
 * every few seconds per open dashboard, whatever the fleet's size, and the
 * rooms tell the registry at once when presence changes, so what a visible
 * page shows is at most REFRESH_MS plus one round trip old. A hidden tab asks
 * for nothing and refreshes the moment it is shown again.
 */
import type { DevicesPage } from "../../party/protocol";
import { fetchDevices, Unauthorized, type FleetQuery } from "./api";
import type { ConnectionState } from "./socket";

export const REFRESH_MS = 3_000;
/** After a failure, wait REFRESH_MS × failures, up to this. */
const MAX_RETRY_MS = 15_000;

export class FleetFeed {
  readonly #onPage: (page: DevicesPage, query: FleetQuery) => void;
  readonly #onState: (state: ConnectionState) => void;
  #query: FleetQuery;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inFlight: AbortController | null = null;
  #failures = 0;
  #closed = false;
  readonly #onVisibility = () => {
    if (document.hidden) this.#stopTimer();
    else void this.#load();
  };

  constructor(opts: {
    query: FleetQuery;
    /** The page for `query` (always the latest query asked for; older answers are dropped). */
    onPage(page: DevicesPage, query: FleetQuery): void;
    onState(state: ConnectionState): void;
  }) {
    this.#query = opts.query;
    this.#onPage = opts.onPage;
    this.#onState = opts.onState;
    this.#onState({ kind: "connecting" });
    document.addEventListener("visibilitychange", this.#onVisibility);
    void this.#load();
  }

  /** Show another page or search: fetched now. */
  set(query: FleetQuery): void {
    this.#query = query;
    void this.#load();
  }

  close(): void {
    this.#closed = true;
    this.#stopTimer();
    this.#inFlight?.abort();
    document.removeEventListener("visibilitychange", this.#onVisibility);
  }

  async #load(): Promise<void> {
    this.#stopTimer();
    this.#inFlight?.abort();
    if (this.#closed || document.hidden) return;
    const query = this.#query;
    const inFlight = new AbortController();
    this.#inFlight = inFlight;
    try {
      const page = await fetchDevices(query, inFlight.signal);
      if (inFlight.signal.aborted) return;
      this.#failures = 0;
      this.#onState({ kind: "connected" });
      this.#onPage(page, query);
    } catch (err) {
      // Aborted: a newer query or close() took over, and it schedules what comes next.
      if (inFlight.signal.aborted) return;
      if (err instanceof Unauthorized) {
        // The app shows the sign-in form (api.ts onUnauthorized); nothing to refresh for.
        this.#onState({ kind: "stopped", reason: err.message });
        return;
      }
      this.#failures++;
      this.#onState({ kind: "reconnecting", attempt: this.#failures });
    }
    // onPage may have asked for another page already (set()): that load owns the schedule now.
    if (this.#inFlight !== inFlight) return;
    this.#inFlight = null;
    if (this.#closed || document.hidden) return;
    this.#timer = setTimeout(() => void this.#load(), Math.min(REFRESH_MS * Math.max(this.#failures, 1), MAX_RETRY_MS));
  }

  #stopTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
