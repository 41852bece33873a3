/**
 * The one long-lived WebSocket to the device's room, through partysocket.
 *
 *  - Every (re)connect presents the device token on the upgrade request
 *    (`Authorization: Bearer`, a header: never in a URL a proxy logs), so a
 *    reconnect is one round trip; the room checks it in the same hop. (A
 *    `ticket` per connection in the query remains possible, for endpoints
 *    that want it.) partysocket calls `query()` before each attempt, and that
 *    is where the capped exponential backoff with jitter is waited
 *    (partysocket's own delay is set to 0, so there is one backoff, ours).
 *  - Nothing is queued inside partysocket (`maxEnqueuedMessages: 0`): the
 *    outbox is the queue, and `hello` must be the first frame of a connection.
 *  - Heartbeat: PING every `heartbeatMs`; the room's runtime answers PONG. Any
 *    frame counts as a sign of life; none for 3 heartbeats means the link is
 *    half-open (a NAT dropped it, Wi-Fi went away without a FIN), so it is
 *    closed and reconnected instead of waiting for TCP to notice, which can
 *    take many minutes.
 *
 * Uses Node 22's built-in WebSocket (undici): no runtime dependency; its
 * constructor takes `{headers}` (an undici extension), which is how the token
 * rides on the upgrade.
 */
import { PartySocket } from "partysocket";
import { PING, PONG, ToDeviceMessage, parseFrame, type DeviceMessage } from "../party/protocol.ts";
import { backoffDelay, type Backoff } from "./backoff.ts";
import { LINES, errorText, sleep, type Logger } from "./log.ts";

/** Silence for this many heartbeats means a half-open link. */
export const MISSED_HEARTBEATS = 3;

export type LinkOptions = {
  /** ws:// or wss:// URL of the device's room, without query. */
  url: URL;
  /** Sent as `Authorization: Bearer <token>` on every upgrade. */
  token?: string;
  /** Or a fresh ticket per connection, in the query. */
  ticket?: () => Promise<string>;
  /** Run before each attempt, after the backoff (e.g. register again); a throw fails the attempt. */
  prepare?: () => Promise<void>;
  heartbeatMs: number;
  backoff: Backoff;
  log: Logger;
  onOpen: () => void;
  onClose: () => void;
  onMessage: (msg: ToDeviceMessage) => void;
  /** A frame that is not a valid ToDeviceMessage (the agent answers commands it can, logs the rest). */
  onInvalid: (raw: string, reason: string) => void;
  WebSocket?: unknown;
  now?: () => number;
};

/** Node's WebSocket (undici), with headers on the upgrade request. */
function withHeaders(headers: Record<string, string>): typeof WebSocket {
  return class extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[] | WebSocketInit) {
      const init = typeof protocols === "object" && !Array.isArray(protocols) ? protocols : { protocols };
      super(url, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), ...headers } });
    }
  };
}

export class Link {
  #opts: LinkOptions;
  #socket: PartySocket;
  #now: () => number;
  #up = false;
  #closed = false;
  #lastHeard = 0;
  #heartbeat: ReturnType<typeof setInterval>;
  /** Attempt number of the last failure logged, so one attempt logs one line. */
  #failureLogged = -1;
  #pendingWhy: string | undefined;

  constructor(opts: LinkOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    const url = opts.url;
    this.#socket = new PartySocket({
      host: url.host,
      protocol: url.protocol === "wss:" ? "wss" : "ws",
      basePath: url.pathname.replace(/^\/+/, ""),
      query: async () => {
        await sleep(backoffDelay(this.#socket.retryCount, opts.backoff));
        try {
          await opts.prepare?.();
          return opts.ticket ? { ticket: await opts.ticket() } : {};
        } catch (err) {
          // partysocket reports this attempt as a bare close/error event; keep the real reason for the log line.
          this.#pendingWhy = errorText(err);
          throw err;
        }
      },
      WebSocket: opts.WebSocket ?? (opts.token ? withHeaders({ authorization: `Bearer ${opts.token}` }) : globalThis.WebSocket),
      maxEnqueuedMessages: 0,
      minReconnectionDelay: 0,
      maxReconnectionDelay: 0,
      connectionTimeout: 10_000,
      startClosed: true,
    });
    this.#socket.addEventListener("open", () => this.#onOpen());
    this.#socket.addEventListener("message", (event) => this.#onMessage(event.data));
    this.#socket.addEventListener("close", (event) => {
      const reason = event.reason && event.reason !== "unknown reason" ? ` ${event.reason}` : "";
      this.#onDown(`closed ${event.code}${reason}`);
    });
    this.#socket.addEventListener("error", (event) => this.#onDown(errorText(event.error ?? event.message)));
    this.#heartbeat = setInterval(() => this.#beat(), opts.heartbeatMs);
    this.#socket.reconnect();
  }

  get up(): boolean {
    return this.#up;
  }

  /** Send one frame if the link is up; false otherwise (the outbox keeps what was not sent). */
  send(msg: DeviceMessage): boolean {
    if (!this.#up || this.#socket.readyState !== PartySocket.OPEN) return false;
    try {
      return this.#socket.send(JSON.stringify(msg));
    } catch (err) {
      this.#opts.log.warn(`link: send failed: ${errorText(err)}`);
      return false;
    }
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    const wasUp = this.#up;
    this.#up = false;
    this.#socket.close(1000, "agent stopping");
    if (wasUp) this.#opts.onClose();
  }

  #onOpen(): void {
    this.#up = true;
    this.#lastHeard = this.#now();
    this.#opts.log.info(LINES.connected);
    this.#opts.onOpen();
  }

  #onDown(why: string): void {
    if (this.#closed) return;
    const wasUp = this.#up;
    this.#up = false;
    const attempt = this.#socket.retryCount;
    const reason = this.#pendingWhy ?? why;
    this.#pendingWhy = undefined;
    if (wasUp || attempt !== this.#failureLogged) {
      this.#failureLogged = attempt;
      this.#opts.log.warn(`${LINES.failure} (${reason})`);
    }
    if (wasUp) this.#opts.onClose();
  }

  #onMessage(data: unknown): void {
    this.#lastHeard = this.#now();
    if (data === PONG) return;
    if (typeof data !== "string") {
      this.#opts.onInvalid("", "binary frame");
      return;
    }
    const parsed = parseFrame(ToDeviceMessage, data);
    if (parsed.ok) this.#opts.onMessage(parsed.value);
    else this.#opts.onInvalid(data, parsed.error.message);
  }

  #beat(): void {
    if (!this.#up) return;
    const silentMs = this.#now() - this.#lastHeard;
    if (silentMs > MISSED_HEARTBEATS * this.#opts.heartbeatMs) {
      // reconnect() closes this socket (its close event logs the failure line) and dials at once.
      this.#opts.log.warn(`link: nothing heard for ${silentMs} ms; treating the socket as half-open`);
      this.#socket.reconnect(4000, "heartbeat timeout");
      return;
    }
    try {
      this.#socket.send(PING);
    } catch {
      // The socket died between the check and the send; its close event reconnects it.
    }
  }
}
