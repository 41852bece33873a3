/**
 * What goes up the link, and when: `hello` first, then live readings the
 * moment they are taken, and the backlog (everything the outbox held when the
 * link came up) in order, in batches, beside them.
 *
 * The room stores readings idempotently by seq and acks the highest seq with
 * no gap below it, so a live reading may overtake the backlog: the dashboard
 * sees "now" at once after an outage, the ack catches up when the backlog has
 * filled the gap, and nothing is stored twice. Backlog flow is bounded by a
 * window of unacked readings, so a week of backlog is streamed, not dumped
 * into the socket's buffer.
 */
import { LIMITS, type DeviceMessage, type Reading, type ReportedState } from "../party/protocol.ts";

/** Backlog readings sent and not yet acked, at most. */
export const BACKLOG_WINDOW = 2 * LIMITS.maxBatch;

/** The part of the outbox the sender reads. */
export interface OutboxView {
  readonly stream: string;
  readonly oldest: number;
  readonly next: number;
  readAfter(after: number, limit: number): Reading[];
  ack(seq: number): number;
}

export type SenderOptions = {
  outbox: OutboxView;
  send: (msg: DeviceMessage) => boolean;
  state: () => ReportedState;
};

export class Sender {
  #outbox: OutboxView;
  #send: (msg: DeviceMessage) => boolean;
  #state: () => ReportedState;
  #connected = false;
  /** Highest seq the room acked on this connection. */
  #acked = 0;
  /** Highest backlog seq sent on this connection. */
  #cursor = 0;
  /** Readings from this seq on are sent live; below it they are backlog. */
  #liveFrom = 1;

  constructor(opts: SenderOptions) {
    this.#outbox = opts.outbox;
    this.#send = opts.send;
    this.#state = opts.state;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** The link came up: say hello, then start on the backlog. */
  onOpen(): void {
    this.#connected = true;
    this.#liveFrom = this.#outbox.next;
    this.#acked = 0;
    this.#cursor = 0;
    this.hello();
  }

  onClose(): void {
    this.#connected = false;
  }

  /**
   * (Re)declare the stream and where the outbox starts. Also sent again after
   * the drop-oldest policy removed readings while connected, so the room
   * counts them as lost instead of waiting for them.
   */
  hello(): void {
    if (!this.#connected) return;
    const oldest = this.#outbox.oldest;
    this.#acked = Math.max(this.#acked, oldest - 1);
    this.#cursor = Math.max(this.#cursor, this.#acked);
    if (!this.#send({ type: "hello", stream: this.#outbox.stream, oldest, state: this.#state() })) {
      this.#connected = false;
      return;
    }
    this.pump();
  }

  /** Every seq ≤ `seq` is stored: prune, and send more backlog. */
  onAck(seq: number): void {
    if (seq > this.#acked) this.#acked = seq;
    this.#outbox.ack(seq);
    this.pump();
  }

  /** A reading was just appended to the outbox. */
  onReading(reading: Reading): void {
    if (!this.#connected || reading.seq < this.#liveFrom) return;
    // Not sent (the link just went down): it stays in the outbox and goes as backlog next time.
    this.#send({ type: "readings", readings: [reading] });
  }

  report(): void {
    if (this.#connected) this.#send({ type: "report", state: this.#state() });
  }

  /** Send backlog batches while the window has room. */
  pump(): void {
    const end = this.#liveFrom - 1;
    while (this.#connected) {
      const from = Math.max(this.#cursor, this.#acked, this.#outbox.oldest - 1);
      if (from >= end || from - this.#acked >= BACKLOG_WINDOW) return;
      const batch = this.#outbox.readAfter(from, Math.min(LIMITS.maxBatch, end - from));
      if (batch.length === 0) {
        // Pruned or dropped under us: nothing below `end` is left to send.
        this.#cursor = end;
        return;
      }
      if (!this.#send({ type: "readings", readings: batch })) {
        this.#connected = false;
        return;
      }
      this.#cursor = batch[batch.length - 1]!.seq;
    }
  }
}
