/**
 * Sending: to one socket, to every socket with a tag, and the legacy log
 * lines. Straight from the runtime's tag index (partyserver tags each socket
 * with ours): its getConnections() reads every socket's attachment again,
 * per message.
 */
import type { ToDashboardMessage, ToDeviceMessage } from "../protocol";

export function sendTo(ws: WebSocket, msg: ToDeviceMessage | ToDashboardMessage): void {
  try {
    ws.send(JSON.stringify(msg));
  } catch {
    // The socket closed between the check and the send; its onClose does the bookkeeping.
  }
}

/** Open sockets with this tag. */
export function openSockets(ctx: DurableObjectState, tag: string): WebSocket[] {
  return ctx.getWebSockets(tag).filter((ws) => ws.readyState === WebSocket.OPEN);
}

/** Serialise once (or send the text as given), to every open socket with this tag. */
export function broadcast(ctx: DurableObjectState, tag: string, msg: ToDashboardMessage | string): void {
  let text: string | undefined;
  for (const ws of ctx.getWebSockets(tag)) {
    if (ws.readyState !== WebSocket.OPEN) continue;
    text ??= typeof msg === "string" ? msg : JSON.stringify(msg);
    try {
      ws.send(text);
    } catch {
      // Closing socket: nothing to deliver to; its onClose runs separately.
    }
  }
}

export function closeQuietly(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Already closing or closed: the close we wanted is happening anyway.
  }
}

/**
 * The old endpoint's one JSON line per reading, collected during one event
 * (a frame, an upload) and written as one console.log at its end: a frame of
 * 500 readings is one write, not 500, and no timer keeps the room from
 * hibernating (a pending setTimeout would, and that is billed as duration).
 */
export class LegacyLog {
  #lines: string[] = [];

  /** `{"temperature":"76.89","scale":"F","ipaddr":"192.168.1.19","ts":…,"id":…}`, byte for byte in its first four keys. */
  readings(readings: readonly { temperature: number; scale: string; ts: number }[], ip: string | null, device: string): void {
    const ipaddr = JSON.stringify(ip ?? "");
    const id = JSON.stringify(device);
    for (const r of readings) {
      this.#lines.push(`{"temperature":"${r.temperature.toFixed(2)}","scale":"${r.scale}","ipaddr":${ipaddr},"ts":${r.ts},"id":${id}}`);
    }
  }

  flush(): void {
    if (this.#lines.length === 0) return;
    console.log(this.#lines.join("\n"));
    this.#lines = [];
  }
}
