/**
 * Presence: whether the device is online and when it was last heard from.
 * Decided from heartbeats (the runtime's auto-response timestamps) and
 * frames, not only from close events; see DeviceRoom.onAlarm.
 *
 * Written only when it changes state (online ↔ offline) and, while a device
 * streams, at most every PERSIST_MS: a room that wakes uses the newer of
 * that and its last chunk's commit time, so last-seen costs no row per
 * reading.
 */
import type { Meter } from "./meter";

const PERSIST_MS = 5 * 60_000;

export class Presence {
  readonly #kv: SyncKvStorage;
  readonly #meter: Meter;
  online: boolean;
  #lastSeen: number | null;
  #persistedAt = 0;
  #ip: string | null;

  constructor(kv: SyncKvStorage, meter: Meter, opts: { lastCommitAt: number | null; deviceSocketOpen: boolean }) {
    this.#kv = kv;
    this.#meter = meter;
    const saved = kv.get<number>("lastSeen") ?? null;
    this.#lastSeen = saved === null ? opts.lastCommitAt : Math.max(saved, opts.lastCommitAt ?? 0);
    this.#ip = kv.get<string>("ip") ?? null;
    // Online only if a device socket survived hibernation; the alarm re-checks its heartbeat.
    this.online = opts.deviceSocketOpen;
  }

  get lastSeen(): number | null {
    return this.#lastSeen;
  }

  get ip(): string | null {
    return this.#ip;
  }

  /** The device's LAN address (registration, or its reported state); written when it changes. */
  setIp(ip: string): void {
    if (ip === this.#ip) return;
    this.#ip = ip;
    this.#kv.put("ip", ip);
    this.#meter.row();
  }

  touch(at: number): void {
    if (this.#lastSeen === null || at > this.#lastSeen) this.#lastSeen = at;
  }

  /** Returns true when presence changed. */
  set(online: boolean, now: number): boolean {
    if (online) this.touch(now);
    if (online === this.online) return false;
    this.online = online;
    // Last-seen matters once the device is gone; going online, a later commit or the next
    // offline transition records it (a reconnect storm writes nothing for this).
    if (!online) this.persist(now, true);
    return true;
  }

  persist(now: number, force: boolean): void {
    if (this.#lastSeen === null) return;
    if (!force && now - this.#persistedAt < PERSIST_MS) return;
    this.#persistedAt = now;
    this.#kv.put("lastSeen", this.#lastSeen);
    this.#meter.row();
  }
}
