/**
 * Capped exponential backoff with jitter, for registration and for the link.
 *
 * Jitter matters when a whole fleet loses its endpoint at once: without it
 * every device retries in lock-step and the endpoint's return is met by a
 * stampede. "Equal jitter": half the delay is fixed, half random.
 */
export type Backoff = { baseMs: number; maxMs: number; factor: number };

export const DEFAULT_BACKOFF: Backoff = { baseMs: 1_000, maxMs: 15_000, factor: 1.6 };

/** Delay before retry number `attempt` (1 = the first retry); 0 for attempt 0. */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  if (attempt <= 0) return 0;
  const ceiling = Math.min(backoff.maxMs, backoff.baseMs * backoff.factor ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
