/**
 * A room socket that reconnects by itself (partysocket's ReconnectingWebSocket)
 * and opens every attempt with a fresh ticket: tickets are one-use and live
 * 60 s, so the URL is an async provider that asks `POST /api/tickets` each time
 * and uses the path the ticket names. Every incoming frame is parsed with its
 * schema from party/protocol.ts; a frame that does not parse is reported, not
 * guessed at. A heartbeat (heartbeat.ts) finds sockets that look open and are not.
 */
import { WebSocket as ReconnectingWebSocket } from "partysocket";
import type { z } from "zod";
import { parseFrame, PING, PONG, type DashboardMessage } from "../../party/protocol";
import { fetchTicket, HttpError, type TicketTarget } from "./api";
import { Heartbeat } from "./heartbeat";

/** Ping this often; a socket that returns nothing for SILENCE_MS is dropped and reopened. */
const PING_EVERY_MS = 10_000;
const SILENCE_MS = 25_000;

export type ConnectionState =
  | { kind: "connecting" }
  | { kind: "connected" }
  | { kind: "reconnecting"; attempt: number }
  /** Will not retry: the session ended (401), or the device does not exist (404: `notFound`). */
  | { kind: "stopped"; reason: string; notFound?: boolean };

export type RoomSocket = {
  /** True when the frame went out now; false when the socket is not open (nothing is queued). */
  send(msg: DashboardMessage): boolean;
  close(): void;
};

export function openRoomSocket<T extends z.ZodType>(opts: {
  target: TicketTarget;
  schema: T;
  onMessage(msg: z.infer<T>): void;
  onState(state: ConnectionState): void;
  /** A frame that failed its schema: a bug on one side, worth a warning, never a crash. */
  onBadFrame?(reason: string): void;
}): RoomSocket {
  let stopped = false;
  const stop = (reason: string, notFound = false) => {
    if (stopped) return;
    stopped = true;
    heartbeat.stop();
    socket.close(1000, reason);
    opts.onState({ kind: "stopped", reason, ...(notFound ? { notFound } : {}) });
  };

  const url = async (): Promise<string> => {
    try {
      const { ticket, path } = await fetchTicket(opts.target);
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      return `${scheme}//${location.host}${path}?ticket=${encodeURIComponent(ticket)}`;
    } catch (err) {
      // 401/403/404 will not get better by retrying: stop, and say why. Anything else: partysocket retries.
      if (err instanceof HttpError && err.status === 404) stop("it has not registered with this endpoint", true);
      else if (err instanceof HttpError && (err.status === 401 || err.status === 403)) stop(err.message);
      throw err;
    }
  };

  const socket = new ReconnectingWebSocket(url, null, {
    // Jittered so a hundred dashboards do not all come back in the same millisecond after an endpoint restart.
    minReconnectionDelay: 1000 + Math.random() * 1000,
    maxReconnectionDelay: 10_000,
    // A command sent while disconnected would arrive whenever the socket returns, long after the
    // operator gave up on it: drop it instead (the switch is disabled while not connected anyway).
    maxEnqueuedMessages: 0,
  });
  opts.onState({ kind: "connecting" });
  const heartbeat = new Heartbeat({
    everyMs: PING_EVERY_MS,
    silenceMs: SILENCE_MS,
    ping: () => socket.readyState === socket.OPEN && socket.send(PING),
    // Half-open: close it from our side (4000, as the rooms do) and let partysocket open a new one.
    dead: () => !stopped && socket.reconnect(4000, "heartbeat timeout"),
  });

  socket.addEventListener("open", () => {
    heartbeat.start();
    if (!stopped) opts.onState({ kind: "connected" });
  });
  const lost = () => {
    heartbeat.stop();
    if (!stopped) opts.onState({ kind: "reconnecting", attempt: Math.max(socket.retryCount, 1) });
  };
  socket.addEventListener("close", lost);
  socket.addEventListener("error", lost);
  socket.addEventListener("message", (event: MessageEvent) => {
    // The rooms send JSON text only; parseFrame rejects anything else with a reason.
    const data: unknown = event.data;
    heartbeat.heard();
    if (data === PONG) return;
    const parsed = parseFrame(opts.schema, typeof data === "string" ? data : new ArrayBuffer(0));
    if (parsed.ok) opts.onMessage(parsed.value);
    else opts.onBadFrame?.(`${parsed.error.code}: ${parsed.error.message}`);
  });

  return {
    send: (msg) => !stopped && socket.readyState === socket.OPEN && socket.send(JSON.stringify(msg)),
    close: () => {
      stopped = true;
      heartbeat.stop();
      socket.close(1000, "page closed the view");
    },
  };
}
