/**
 * A room's view of over-the-air updates (docs/updates.md): which release is meant for its device
 * (chosen from the rollouts plan, party/releases.ts), and the latest step of the device's update
 * (`update` frames), kept in the room's KV and told to the rollout once per step.
 *
 * The plan comes from the one releases object through a copy shared by every room in this
 * isolate that lives FIRMWARE_CHECK_MS, so a reconnect storm costs that object one call per
 * isolate, not one per device.
 */
import type { DeviceFirmware, ReleaseManifest, SignedRelease, ToDeviceMessage, UpdateStatus } from "../protocol";
import { chooseRelease, releases, type RolloutPlan } from "../releases";
import type { Meter } from "./meter";

type Target = { version: string; rollout: string; release: SignedRelease };
type Report = { version: string; state: UpdateStatus["state"]; progress?: number; reason?: string };

/** The plan as this isolate last read it. */
let shared: { plan: RolloutPlan; at: number } | null = null;
let inflight: Promise<RolloutPlan> | null = null;

/** The active rollouts, at most `maxAgeMs` old (0: ask now). */
export async function rolloutPlan(env: Env, maxAgeMs: number, now = Date.now()): Promise<RolloutPlan> {
  if (shared && now - shared.at < maxAgeMs) return shared.plan;
  // Rooms that ask at once share one call.
  inflight ??= releases(env)
    .plan()
    .then((plan) => {
      shared = { plan, at: Date.now() };
      return plan;
    })
    .finally(() => {
      inflight = null;
    });
  return inflight;
}

/** A rollout changed in this isolate: its rooms see it at their next look, not a minute later. */
export function forgetRolloutPlan(): void {
  shared = null;
}

/** FIRMWARE_CHECK_MS: how long a room trusts the plan (default a minute). */
export function firmwareCheckMs(env: Env): number {
  const n = Number(env.FIRMWARE_CHECK_MS ?? "");
  return env.FIRMWARE_CHECK_MS !== undefined && env.FIRMWARE_CHECK_MS !== "" && Number.isInteger(n) && n >= 0 ? n : 60_000;
}

/** Where a device downloads a release (worker/routes/releases.ts). */
export function releasePath(version: string): string {
  return `/iot/releases/${version}`;
}

export class Firmware {
  readonly #kv: SyncKvStorage;
  readonly #meter: Meter;
  #target: Target | null = null;
  #status: UpdateStatus | null;
  #checkedAt = 0;

  constructor(kv: SyncKvStorage, meter: Meter) {
    this.#kv = kv;
    this.#meter = meter;
    this.#status = kv.get<UpdateStatus>("firmware") ?? null;
  }

  get status(): UpdateStatus | null {
    return this.#status;
  }

  /** The plan is older than FIRMWARE_CHECK_MS for this room. */
  due(env: Env, now: number): boolean {
    return now - this.#checkedAt >= firmwareCheckMs(env);
  }

  /** Choose again from the (shared) plan; true when the release meant for the device changed. */
  async refresh(env: Env, deviceId: string, now = Date.now()): Promise<boolean> {
    const plan = await rolloutPlan(env, firmwareCheckMs(env), now);
    const entry = await chooseRelease(plan, deviceId, this.#status?.rollout ?? null);
    const next: Target | null = entry ? { version: entry.release.version, rollout: entry.id, release: entry.release } : null;
    const changed = next?.version !== this.#target?.version || next?.rollout !== this.#target?.rollout;
    this.#target = next;
    this.#checkedAt = now;
    return changed;
  }

  message(): ToDeviceMessage {
    const t = this.#target;
    return { type: "firmware", release: t?.release ?? null, rollout: t?.rollout ?? null, path: t ? releasePath(t.version) : null };
  }

  /** The release meant for the device, as the last refresh chose it. */
  get target(): (ReleaseManifest & { signature: string; rollout: string }) | null {
    return this.#target ? { ...this.#target.release, rollout: this.#target.rollout } : null;
  }

  view(running: string | null): DeviceFirmware {
    const t = this.#target;
    return { running, target: t ? { version: t.version, rollout: t.rollout } : null, update: this.#status };
  }

  /**
   * A step the device reported: kept (a row only when the step changes, not per progress tick)
   * and, when it is a new step of a rollout's release, told to that rollout (it counts steps and
   * may pause itself on failures).
   */
  async record(env: Env, deviceId: string, report: Report, now: number): Promise<void> {
    const prev = this.#status;
    // Attributed to the rollout that meant this version for the device (now, or when it started).
    const rollout =
      this.#target?.version === report.version ? this.#target.rollout : prev?.version === report.version ? prev.rollout : null;
    const newStep = prev?.version !== report.version || prev.state !== report.state || prev.rollout !== rollout;
    this.#status = {
      version: report.version,
      state: report.state,
      progress: report.progress ?? null,
      reason: report.reason ?? null,
      rollout,
      at: now,
    };
    if (!newStep) return;
    this.#kv.put("firmware", this.#status);
    this.#meter.row();
    console.log(`room ${deviceId}: update ${report.version} ${report.state}${report.reason ? `: ${report.reason}` : ""}`);
    if (rollout) await releases(env).report(rollout, deviceId, report.state, report.reason ?? null);
  }
}
