/** Percentiles and the small arithmetic the report needs. */

/** The p-th percentile (0–100) by nearest rank; NaN for no samples. */
export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export type Latency = { p50: number; p99: number; max: number; samples: number };

export function latency(samples: Float64Array[]): Latency {
  const total = samples.reduce((n, s) => n + s.length, 0);
  const all = new Float64Array(total);
  let at = 0;
  for (const s of samples) {
    all.set(s, at);
    at += s.length;
  }
  all.sort();
  return { p50: percentile(all, 50), p99: percentile(all, 99), max: all.length ? all[all.length - 1]! : Number.NaN, samples: total };
}

/** A growable Float64Array: latency samples without a JS array per value. */
export class Samples {
  #buf = new Float64Array(1024);
  #n = 0;
  push(v: number): void {
    if (this.#n === this.#buf.length) {
      const next = new Float64Array(this.#buf.length * 2);
      next.set(this.#buf);
      this.#buf = next;
    }
    this.#buf[this.#n++] = v;
  }
  get length(): number {
    return this.#n;
  }
  values(): Float64Array {
    return this.#buf.slice(0, this.#n);
  }
}
