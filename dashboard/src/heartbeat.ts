/**
 * A socket can look open and carry nothing: a laptop that slept, Wi-Fi that
 * changed, a NAT or proxy that forgot the flow. It never closes by itself, and
 * the page would show a frozen "connected". So the page pings (the rooms answer
 * by the runtime's auto-response, without waking), counts anything that comes
 * back as a sign of life, and gives up on the socket after `silenceMs` of
 * nothing at all; the caller then reconnects.
 */
export type HeartbeatOptions = {
  everyMs: number;
  silenceMs: number;
  /** Send one ping. */
  ping(): void;
  /** Nothing came back for `silenceMs`: the socket is dead; reconnect. */
  dead(): void;
  now?: () => number;
};

export class Heartbeat {
  readonly #opts: HeartbeatOptions;
  readonly #now: () => number;
  #lastHeard = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(opts: HeartbeatOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** The socket opened: start pinging, and count from now. */
  start(): void {
    this.stop();
    this.heard();
    this.#timer = setInterval(() => this.#tick(), this.#opts.everyMs);
  }

  /** Anything arrived (a pong, a reading): the socket is alive. */
  heard(): void {
    this.#lastHeard = this.#now();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    if (this.#now() - this.#lastHeard > this.#opts.silenceMs) {
      this.stop();
      this.#opts.dead();
      return;
    }
    this.#opts.ping();
  }
}
