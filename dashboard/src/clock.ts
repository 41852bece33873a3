/**
 * The page's one clock for ages ("seen 3 s ago"). Every view reads `now` from it and
 * redraws on its tick, so two places showing the age of the same moment show the same
 * words: before it, the fleet list and the device header each ran their own interval
 * on their own phase, and said "12 s ago" beside "just now".
 */
export class Clock {
  #now = Date.now();
  readonly #listeners = new Set<(now: number) => void>();
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(everyMs = 1000) {
    this.#timer = setInterval(() => {
      this.#now = Date.now();
      for (const listener of this.#listeners) listener(this.#now);
    }, everyMs);
  }

  /** The time of the last tick (not Date.now()): what every age on screen is counted to. */
  now(): number {
    return this.#now;
  }

  /** Called on every tick; returns the way to stop. */
  onTick(listener: (now: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#listeners.clear();
  }
}
