/**
 * Warnings about what one socket does (floods, hellos that give up readings,
 * frames that failed), throttled per socket and named by role. Whatever a
 * socket sends, it can make the room write the first warning at once and then
 * at most one line per `windowMs` — a summary with the count of the warnings
 * it held back and the last of them — plus one such summary when it closes.
 * Before this, one flooding socket wrote 8,103 lines (issue 12).
 *
 * Lines name the socket as a person reading the log would: `device` (the room
 * is named for it) or `<operator|viewer> dashboard`, with the account and the
 * address when the Worker tagged the socket with them; never the connection
 * id, which appears nowhere else. In memory, like the frame budget: a wake
 * from hibernation starts afresh, which only errs toward writing a line.
 */
type Held = { since: number; held: number; last: string };

/** A minute: a flooding socket costs at most a line a minute, and a person still sees it is going on. */
export const SOCKET_WARN_WINDOW_MS = 60_000;

export class SocketLog {
  readonly #room: () => string;
  readonly #windowMs: number;
  #sockets = new Map<string, Held>();

  /**
   * `room` is asked for the room's name when a line is written (a room woken from
   * hibernation learns its name after its constructor ran).
   *
   * @example new SocketLog(() => this.name)
   */
  constructor(room: () => string, windowMs = SOCKET_WARN_WINDOW_MS) {
    if (!(windowMs > 0)) throw new Error(`SocketLog: windowMs must be > 0, got ${windowMs}`);
    this.#room = room;
    this.#windowMs = windowMs;
  }

  /**
   * Warn about `socket` (an id and its tags, as partyserver's Connection has them); "error"
   * for the room's own failures (still throttled: the same frame, repeated, fails the same way).
   */
  warn(socket: { id: string; tags: readonly string[] }, message: string, level: "warn" | "error" = "warn", now = Date.now()): void {
    const held = this.#sockets.get(socket.id);
    if (held && now - held.since < this.#windowMs) {
      held.held++;
      held.last = message;
      return;
    }
    console[level](`${this.#prefix(socket)}: ${message}${held?.held ? ` ${summary(held, now)}` : ""}`);
    this.#sockets.set(socket.id, { since: now, held: 0, last: "" });
  }

  /** The socket closed: write what it still held back, and forget it. */
  forget(socket: { id: string; tags: readonly string[] }, now = Date.now()): void {
    const held = this.#sockets.get(socket.id);
    this.#sockets.delete(socket.id);
    if (held?.held) console.warn(`${this.#prefix(socket)}: closed ${summary(held, now)}`);
  }

  #prefix(socket: { tags: readonly string[] }): string {
    return `room ${this.#room()}: ${socketLabel(socket.tags)}`;
  }
}

function summary(held: Held, now: number): string {
  return `(${held.held} more warning${held.held === 1 ? "" : "s"} in the last ${Math.round((now - held.since) / 1000)} s not written; the last: ${held.last})`;
}

/** `device`, or `viewer dashboard alice from 198.51.100.7` (account and address when tagged). */
export function socketLabel(tags: readonly string[]): string {
  if (tags.includes("device")) return "device";
  const role = tags.includes("operator") ? "operator" : "viewer";
  const account = tags.find((t) => t.startsWith("account:"))?.slice("account:".length);
  const from = tags.find((t) => t.startsWith("from:"))?.slice("from:".length);
  return `${role} dashboard${account ? ` ${account}` : ""}${from ? ` from ${from}` : ""}`;
}
