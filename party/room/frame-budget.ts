/**
 * A token bucket per connection: `rate` frames a second with bursts of
 * `burst`. Over budget, a frame is refused (the agent resends unacked
 * readings, so nothing is lost); a sender that keeps going to twice the
 * burst past it should be closed. In memory: a wake from hibernation starts
 * every bucket afresh, which only ever errs toward letting frames in.
 *
 * "close" is given once: frames the runtime already took in from a socket we
 * closed still arrive, and each answering "close" again (a log line, a close
 * call) was the log amplification of issue 12 (8,103 lines from one socket).
 * After it they are "drop": nothing to do, nothing to say.
 */
export type Verdict = "ok" | "refuse" | "refuse-and-warn" | "close" | "drop";

type Bucket = { tokens: number; at: number; warned: number; closed: boolean };

export class FrameBudget {
  readonly #rate: number;
  readonly #burst: number;
  #buckets = new Map<string, Bucket>();

  constructor(rate: number, burst: number) {
    this.#rate = rate;
    this.#burst = burst;
  }

  /** Spend one frame for `id`. "refuse-and-warn" at most once a second per connection. */
  spend(id: string, now: number): Verdict {
    let bucket = this.#buckets.get(id);
    if (!bucket) {
      bucket = { tokens: this.#burst, at: now, warned: 0, closed: false };
      this.#buckets.set(id, bucket);
    }
    if (bucket.closed) return "drop";
    bucket.tokens = Math.min(this.#burst, bucket.tokens + ((now - bucket.at) / 1000) * this.#rate);
    bucket.at = now;
    bucket.tokens -= 1;
    if (bucket.tokens >= 0) return "ok";
    if (bucket.tokens < -this.#burst) {
      bucket.closed = true;
      return "close";
    }
    if (now - bucket.warned < 1000) return "refuse";
    bucket.warned = now;
    return "refuse-and-warn";
  }

  /** No more frames from `id` (the room is closing it for another reason): "drop" from now on. */
  shut(id: string): void {
    const bucket = this.#buckets.get(id);
    if (bucket) bucket.closed = true;
  }

  forget(id: string): void {
    this.#buckets.delete(id);
  }
}
