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
 *
 * Two things the room's group commit asks of the sender:
 *  - Batching: while nobody watches, the room says `batching` with a delay;
 *    live readings are then held (they are already in the outbox) and sent
 *    as one frame per delay, which the room stores as one chunk. `batching`
 *    0 (a dashboard opened) sends what is held at once and goes live again.
 *    The outbox is told (`setBatching`) whenever readings start or stop being
 *    held for a batch, so it spills them on the longer unwatched bound only then.
 *  - Acks come after a group commit, not per frame, and a room evicted
 *    between a live forward and its commit forgets what it had not written
 *    while the socket stays open. So if nothing sent has been acked for
 *    ACK_TIMEOUT_MS, everything unacked is sent again from the ack on; the
 *    room stores by seq, so a resend is never stored twice.
 */
import { LIMITS, type DeviceMessage, type Reading, type ReportedState, type SensorKind } from "../party/protocol.ts";

/** Backlog readings sent and not yet acked, at most. */
export const BACKLOG_WINDOW = 2 * LIMITS.maxBatch;
/** No ack progress for this long while readings are outstanding: resend them (the room commits within ~10 s). */
export const ACK_TIMEOUT_MS = 30_000;

/** The part of the outbox the sender reads. */
export interface OutboxView {
  readonly stream: string;
  /** Where this stream's readings come from, said in `hello` (one outbox holds one source). */
  readonly source?: SensorKind;
  readonly oldest: number;
  readonly next: number;
  readAfter(after: number, limit: number): Reading[];
  ack(seq: number): number;
  /** True while readings are held for the room's batching on a live link; false while live or offline (the spill bound). */
  setBatching(batching: boolean): void;
}

export type SenderOptions = {
  outbox: OutboxView;
  send: (msg: DeviceMessage) => boolean;
  state: () => ReportedState;
  ackTimeoutMs?: number;
  now?: () => number;
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
  /** Highest seq sent on this connection (live or backlog). */
  #sent = 0;
  /** Since when something sent has waited for an ack with no progress (null: nothing outstanding). */
  #waitingSince: number | null = null;
  #ackTimeoutMs: number;
  #now: () => number;
  #ackTimer: ReturnType<typeof setInterval> | undefined;
  /** How long live readings may be held (0: live), as the room last said. */
  #batchMs = 0;
  /** Live readings held while batching, in seq order. */
  #held: Reading[] = [];
  #batchTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: SenderOptions) {
    this.#outbox = opts.outbox;
    this.#send = opts.send;
    this.#state = opts.state;
    this.#ackTimeoutMs = opts.ackTimeoutMs ?? ACK_TIMEOUT_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** The room's batching delay (0: live). */
  get batchMs(): number {
    return this.#batchMs;
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
    this.#sent = 0;
    this.#waitingSince = null;
    // Live until the room says otherwise (it does right after hello).
    this.#batchMs = 0;
    this.#tellOutbox();
    this.#ackTimer ??= setInterval(() => this.checkAcks(), Math.max(50, Math.floor(this.#ackTimeoutMs / 3)));
    this.#ackTimer.unref?.();
    this.hello();
  }

  onClose(): void {
    this.#connected = false;
    // Offline: nothing can be acked, so the outbox spills on its shorter bound.
    this.#tellOutbox();
    // Held readings are in the outbox: they go as backlog on the next connection.
    this.#held = [];
    clearTimeout(this.#batchTimer);
    this.#batchTimer = undefined;
    clearInterval(this.#ackTimer);
    this.#ackTimer = undefined;
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
    const source = this.#outbox.source;
    if (!this.#send({ type: "hello", stream: this.#outbox.stream, oldest, state: this.#state(), ...(source ? { source } : {}) })) {
      this.#connected = false;
      this.#tellOutbox();
      return;
    }
    this.pump();
  }

  /** Every seq ≤ `seq` is stored: prune, and send more backlog. */
  onAck(seq: number): void {
    if (seq > this.#acked) {
      this.#acked = seq;
      // Progress: the clock for the rest starts again (or stops, if nothing is outstanding).
      this.#waitingSince = this.#sent > seq ? this.#now() : null;
    } else if (this.#sent <= this.#acked) {
      this.#waitingSince = null;
    }
    this.#outbox.ack(seq);
    this.pump();
  }

  /** A reading was just appended to the outbox. */
  onReading(reading: Reading): void {
    if (!this.#connected || reading.seq < this.#liveFrom) return;
    if (this.#batchMs > 0) {
      this.#held.push(reading);
      if (this.#held.length >= LIMITS.maxBatch) this.#sendHeld();
      else this.#batchTimer ??= setTimeout(() => this.#sendHeld(), this.#batchMs);
      return;
    }
    // Not sent (the link just went down): it stays in the outbox and goes as backlog next time.
    this.#sendReadings([reading]);
  }

  /** The room's `batching`: hold live readings up to `maxDelayMs` (0: send what is held now, then live). */
  onBatching(maxDelayMs: number): void {
    this.#batchMs = maxDelayMs;
    if (maxDelayMs === 0) this.#sendHeld();
    this.#tellOutbox();
  }

  /** Stopping: send what is held and ask the room to commit now, so the ack comes before we go. */
  drain(): void {
    if (!this.#connected) return;
    this.#sendHeld();
    this.#send({ type: "flush" });
  }

  /**
   * Called now and then (a timer while connected): after ACK_TIMEOUT_MS with
   * no ack progress, resend everything unacked from the ack on, as backlog.
   */
  checkAcks(): void {
    if (!this.#connected || this.#waitingSince === null) return;
    if (this.#now() - this.#waitingSince < this.#ackTimeoutMs) return;
    this.#waitingSince = null;
    this.#liveFrom = this.#outbox.next;
    this.#cursor = this.#acked;
    this.#sent = this.#acked;
    this.#held = [];
    clearTimeout(this.#batchTimer);
    this.#batchTimer = undefined;
    this.pump();
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
      if (!this.#sendReadings(batch)) {
        this.#connected = false;
        this.#tellOutbox();
        return;
      }
      this.#cursor = batch[batch.length - 1]!.seq;
    }
  }

  /** Readings are held for a batch only while connected and the room batches. */
  #tellOutbox(): void {
    this.#outbox.setBatching(this.#connected && this.#batchMs > 0);
  }

  #sendHeld(): void {
    clearTimeout(this.#batchTimer);
    this.#batchTimer = undefined;
    const held = this.#held;
    this.#held = [];
    for (let i = 0; i < held.length; i += LIMITS.maxBatch) this.#sendReadings(held.slice(i, i + LIMITS.maxBatch));
  }

  #sendReadings(readings: Reading[]): boolean {
    if (!this.#send({ type: "readings", readings })) return false;
    const last = readings[readings.length - 1]!.seq;
    if (last > this.#sent) this.#sent = last;
    this.#waitingSince ??= this.#now();
    return true;
  }
}
