/**
 * The device's credentials: only the SHA-256 of its secret, kept here in its
 * own room, so checking a device token touches one device's storage and
 * nothing shared. `epoch` is when they last changed: a socket ticket issued
 * before it is worthless.
 */
import type { Meter } from "./meter";

export type Credential = { hash: string | null; epoch: number };

export class Credentials {
  readonly #kv: SyncKvStorage;
  readonly #meter: Meter;

  constructor(kv: SyncKvStorage, meter: Meter) {
    this.#kv = kv;
    this.#meter = meter;
  }

  get current(): Credential {
    return this.#kv.get<Credential>("credential") ?? { hash: null, epoch: 0 };
  }

  get present(): boolean {
    return this.current.hash !== null;
  }

  /** First credentials; false if live ones exist (rotate instead). */
  provision(hash: string, now: number): boolean {
    if (this.present) return false;
    this.#set(hash, now);
    return true;
  }

  /** New credentials; false if the device has none to rotate. */
  rotate(hash: string, now: number): boolean {
    if (!this.present) return false;
    this.#set(hash, now);
    return true;
  }

  /** None: refused until provisioned again. Returns whether there were any. */
  revoke(now: number): boolean {
    const had = this.present;
    this.#set(null, now);
    return had;
  }

  verify(hash: string): boolean {
    const stored = this.current.hash;
    return stored !== null && timingSafeEqualHex(stored, hash);
  }

  #set(hash: string | null, now: number): void {
    this.#kv.put("credential", { hash, epoch: now } satisfies Credential);
    this.#meter.row();
  }
}

/** Both are hex SHA-256 digests of equal length; compare without an early exit. */
export function timingSafeEqualHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
