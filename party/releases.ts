/**
 * Releases of the agent and their rollouts: one Durable Object (`releases`) keeps, in its SQLite
 * storage, every release's signed manifest (the artifact itself is in R2, RELEASE_BUCKET), every
 * rollout with its stage and state, and each device's latest update step per rollout, which the
 * rollout counts and its failure threshold reads.
 *
 * Rooms do not ask it per hello: they read `plan()` (the active and paused rollouts, a few rows)
 * through a per-isolate copy that lives FIRMWARE_CHECK_MS (party/room/firmware.ts), and they call
 * `report()` once per step a device takes (not per progress tick). A fleet-wide rollout of 100,000
 * devices is ~600,000 such calls over its stages: the stages are what spread them out.
 *
 * Rollout state machine: active ⇄ paused (an operator, or the failure threshold pausing it by
 * itself) → cancelled (final). `advance` moves an active rollout to its next stage; with
 * `stageMs` the alarm does that by itself.
 */
import { DurableObject } from "cloudflare:workers";
import {
  RELEASE_LIMITS,
  type ReleaseRecord,
  type Rollout,
  type RolloutRequest,
  type RolloutState,
  type RolloutTarget,
  type SignedRelease,
  type UpdateState,
} from "./protocol";
import { directory } from "./directory";

/** The one releases object. */
export function releases(env: Env): DurableObjectStub<Releases> {
  return env.RELEASES.getByName("releases");
}

/** A release as stored: the record plus where its artifact is in R2. */
export type StoredRelease = ReleaseRecord & { key: string };

/** What a room needs to decide which release is meant for its device. */
export type PlanEntry = {
  id: string;
  state: Exclude<RolloutState, "cancelled">;
  release: SignedRelease;
  target: RolloutTarget;
  /** The share of the target in force now (the current stage's percentage). */
  percent: number;
};
export type RolloutPlan = { rollouts: PlanEntry[] };

export type RolloutAction = "pause" | "resume" | "cancel" | "advance";
export type ChangeResult = { ok: true; rollout: Rollout } | { ok: false; status: 404 | 409; code: string; message: string };

const FAILED: readonly UpdateState[] = ["failed", "rolled-back"];

type ReleaseRow = {
  version: string;
  size: number;
  sha256: string;
  notes: string;
  min_agent: string | null;
  signature: string;
  created_at: number;
  created_by: string;
  signature_checked: number;
  key: string;
};

type RolloutRow = {
  id: string;
  release: string;
  target: string;
  stages: string;
  stage: number;
  failure_threshold: number;
  stage_ms: number;
  state: RolloutState;
  reason: string | null;
  created_at: number;
  created_by: string;
  updated_at: number;
  stage_started_at: number;
};

export class Releases extends DurableObject<Env> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = (this.#sql = ctx.storage.sql);
    sql.exec(`CREATE TABLE IF NOT EXISTS releases (version TEXT PRIMARY KEY, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
      notes TEXT NOT NULL, min_agent TEXT, signature TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL,
      signature_checked INTEGER NOT NULL, key TEXT NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS rollouts (id TEXT PRIMARY KEY, release TEXT NOT NULL, target TEXT NOT NULL,
      stages TEXT NOT NULL, stage INTEGER NOT NULL, failure_threshold INTEGER NOT NULL, stage_ms INTEGER NOT NULL,
      state TEXT NOT NULL, reason TEXT, created_at INTEGER NOT NULL, created_by TEXT NOT NULL, updated_at INTEGER NOT NULL,
      stage_started_at INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS rollout_devices (rollout TEXT NOT NULL, device TEXT NOT NULL, state TEXT NOT NULL,
      reason TEXT, updated_at INTEGER NOT NULL, PRIMARY KEY (rollout, device))`);
  }

  // -------------------------------------------------------------------------
  // Releases
  // -------------------------------------------------------------------------

  /** Keep a release; false if its version exists (releases are immutable: publish a new version). */
  addRelease(release: StoredRelease): boolean {
    if (this.getRelease(release.version)) return false;
    this.#sql.exec(
      "INSERT INTO releases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      release.version,
      release.size,
      release.sha256,
      release.notes,
      release.minAgent,
      release.signature,
      release.createdAt,
      release.createdBy,
      release.signatureChecked ? 1 : 0,
      release.key,
    );
    return true;
  }

  getRelease(version: string): StoredRelease | null {
    const row = this.#sql.exec<ReleaseRow>("SELECT * FROM releases WHERE version = ?", version).toArray()[0];
    return row ? releaseFromRow(row) : null;
  }

  /** Newest first. */
  listReleases(): ReleaseRecord[] {
    return this.#sql
      .exec<ReleaseRow>("SELECT * FROM releases ORDER BY created_at DESC LIMIT ?", RELEASE_LIMITS.maxList)
      .toArray()
      .map((row) => {
        const { key: _key, ...record } = releaseFromRow(row);
        return record;
      });
  }

  // -------------------------------------------------------------------------
  // Rollouts
  // -------------------------------------------------------------------------

  createRollout(request: RolloutRequest, by: string): ChangeResult {
    if (!this.getRelease(request.release)) {
      return { ok: false, status: 409, code: "unknown_release", message: `no release ${request.release}: publish it first (npm run release)` };
    }
    const now = Date.now();
    const id = `r-${now.toString(36)}${crypto.getRandomValues(new Uint32Array(1))[0]!.toString(36).padStart(7, "0")}`;
    this.#sql.exec(
      "INSERT INTO rollouts VALUES (?, ?, ?, ?, 0, ?, ?, 'active', NULL, ?, ?, ?, ?)",
      id,
      request.release,
      JSON.stringify(request.target),
      JSON.stringify(request.stages),
      request.failureThreshold,
      request.stageMs,
      now,
      by,
      now,
      now,
    );
    this.#scheduleAdvance();
    return { ok: true, rollout: this.getRollout(id)! };
  }

  /** pause / resume / cancel / advance, as the state machine allows. */
  changeRollout(id: string, action: RolloutAction, reason: string | null): ChangeResult {
    const row = this.#row(id);
    if (!row) return { ok: false, status: 404, code: "unknown_rollout", message: `no rollout ${id}` };
    const refuse = (why: string): ChangeResult => ({ ok: false, status: 409, code: "bad_transition", message: `rollout ${id} is ${row.state}: ${why}` });
    if (row.state === "cancelled") return refuse(`it cannot ${action} any more`);
    const now = Date.now();
    switch (action) {
      case "pause":
        if (row.state === "paused") return refuse("already paused");
        this.#set(id, "paused", reason ?? "paused by an operator", now);
        break;
      case "resume":
        if (row.state === "active") return refuse("already active");
        this.#set(id, "active", null, now);
        break;
      case "cancel":
        this.#set(id, "cancelled", reason ?? "cancelled by an operator", now);
        break;
      case "advance": {
        if (row.state !== "active") return refuse("resume it before advancing");
        const stages = JSON.parse(row.stages) as number[];
        if (row.stage >= stages.length - 1) return refuse(`already at its last stage (${stages[row.stage]} %)`);
        this.#sql.exec("UPDATE rollouts SET stage = stage + 1, stage_started_at = ?, updated_at = ? WHERE id = ?", now, now, id);
        break;
      }
    }
    this.#scheduleAdvance();
    return { ok: true, rollout: this.getRollout(id)! };
  }

  getRollout(id: string): Rollout | null {
    const row = this.#row(id);
    return row ? this.#rollout(row) : null;
  }

  /** Newest first. */
  listRollouts(): Rollout[] {
    return this.#sql
      .exec<RolloutRow>("SELECT * FROM rollouts ORDER BY created_at DESC LIMIT ?", RELEASE_LIMITS.maxList)
      .toArray()
      .map((row) => this.#rollout(row));
  }

  /** Active and paused rollouts, newest first, with their releases: all a room needs to choose. */
  plan(): RolloutPlan {
    const rows = this.#sql
      .exec<RolloutRow & { r_size: number; r_sha256: string; r_notes: string; r_min_agent: string | null; r_signature: string }>(
        `SELECT rollouts.*, releases.size AS r_size, releases.sha256 AS r_sha256, releases.notes AS r_notes,
           releases.min_agent AS r_min_agent, releases.signature AS r_signature
         FROM rollouts JOIN releases ON releases.version = rollouts.release
         WHERE rollouts.state <> 'cancelled' ORDER BY rollouts.created_at DESC, rollouts.id DESC`,
      )
      .toArray();
    return {
      rollouts: rows.map((r) => ({
        id: r.id,
        state: r.state as PlanEntry["state"],
        release: { version: r.release, size: r.r_size, sha256: r.r_sha256, notes: r.r_notes, minAgent: r.r_min_agent, signature: r.r_signature },
        target: JSON.parse(r.target) as RolloutTarget,
        percent: (JSON.parse(r.stages) as number[])[r.stage] ?? 100,
      })),
    };
  }

  /**
   * A device's step in a rollout (its room calls this once per step). A failure or roll-back
   * that takes the rollout to its threshold pauses it, with the reason, in the audit trail.
   */
  async report(rolloutId: string, device: string, state: UpdateState, reason: string | null): Promise<{ paused: boolean }> {
    const row = this.#row(rolloutId);
    if (!row) return { paused: false };
    const now = Date.now();
    this.#sql.exec(
      `INSERT INTO rollout_devices VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (rollout, device) DO UPDATE SET state = excluded.state, reason = excluded.reason, updated_at = excluded.updated_at`,
      rolloutId,
      device,
      state,
      reason,
      now,
    );
    if (row.state !== "active" || !FAILED.includes(state)) return { paused: false };
    const failures = this.#failureCount(rolloutId);
    if (failures < row.failure_threshold) return { paused: false };
    const why = `${failures} device(s) failed or rolled back (threshold ${row.failure_threshold}); last: ${device} ${state}${reason ? `: ${reason}` : ""}`.slice(0, 300);
    this.#set(rolloutId, "paused", why, now);
    console.warn(`releases: rollout ${rolloutId} paused itself: ${why}`);
    await this.#auditSystem("rollout.pause", rolloutId, { reason: why });
    return { paused: true };
  }

  /** Stages with `stageMs` move on by themselves. */
  async alarm(): Promise<void> {
    const now = Date.now();
    const due = this.#sql
      .exec<RolloutRow>("SELECT * FROM rollouts WHERE state = 'active' AND stage_ms > 0 AND stage_started_at + stage_ms <= ?", now)
      .toArray();
    for (const row of due) {
      const stages = JSON.parse(row.stages) as number[];
      if (row.stage >= stages.length - 1) continue;
      this.#sql.exec("UPDATE rollouts SET stage = stage + 1, stage_started_at = ?, updated_at = ? WHERE id = ?", now, now, row.id);
      await this.#auditSystem("rollout.advance", row.id, { stage: stages[row.stage + 1] });
    }
    this.#scheduleAdvance();
  }

  // -------------------------------------------------------------------------
  // Helpers
  // -------------------------------------------------------------------------

  #row(id: string): RolloutRow | undefined {
    return this.#sql.exec<RolloutRow>("SELECT * FROM rollouts WHERE id = ?", id).toArray()[0];
  }

  #set(id: string, state: RolloutState, reason: string | null, now: number): void {
    // Resuming restarts the stage's clock: a paused stage has not been watched for `stageMs`.
    this.#sql.exec(
      "UPDATE rollouts SET state = ?, reason = ?, updated_at = ?, stage_started_at = CASE WHEN ? = 'active' THEN ? ELSE stage_started_at END WHERE id = ?",
      state,
      reason,
      now,
      state,
      now,
      id,
    );
  }

  #failureCount(id: string): number {
    return this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM rollout_devices WHERE rollout = ? AND state IN ('failed', 'rolled-back')", id).one().n;
  }

  #rollout(row: RolloutRow): Rollout {
    const counts: Record<string, number> = {};
    for (const c of this.#sql.exec<{ state: string; n: number }>("SELECT state, COUNT(*) AS n FROM rollout_devices WHERE rollout = ? GROUP BY state", row.id)) {
      counts[c.state] = c.n;
    }
    const failures = this.#sql
      .exec<{ device: string; state: UpdateState; reason: string | null; updated_at: number }>(
        "SELECT device, state, reason, updated_at FROM rollout_devices WHERE rollout = ? AND state IN ('failed', 'rolled-back') ORDER BY updated_at DESC LIMIT 20",
        row.id,
      )
      .toArray()
      .map((f) => ({ device: f.device, state: f.state, reason: f.reason, at: f.updated_at }));
    return {
      id: row.id,
      release: row.release,
      target: JSON.parse(row.target) as RolloutTarget,
      stages: JSON.parse(row.stages) as number[],
      stage: row.stage,
      failureThreshold: row.failure_threshold,
      stageMs: row.stage_ms,
      state: row.state,
      reason: row.reason,
      createdAt: row.created_at,
      createdBy: row.created_by,
      updatedAt: row.updated_at,
      stageStartedAt: row.stage_started_at,
      counts,
      failures,
    };
  }

  /** The alarm at the earliest automatic stage move, or none. */
  #scheduleAdvance(): void {
    const next = this.#sql
      .exec<{ at: number | null }>(
        "SELECT MIN(stage_started_at + stage_ms) AS at FROM rollouts WHERE state = 'active' AND stage_ms > 0 AND stage < json_array_length(stages) - 1",
      )
      .one().at;
    this.ctx.waitUntil(
      (next === null ? this.ctx.storage.deleteAlarm() : this.ctx.storage.setAlarm(next)).catch((err: unknown) =>
        console.error("releases: could not schedule the stage alarm:", err),
      ),
    );
  }

  /** A change the object made by itself, in the audit trail as `system`. */
  async #auditSystem(action: "rollout.pause" | "rollout.advance", id: string, detail: Record<string, unknown>): Promise<void> {
    try {
      await directory(this.env).record({ actor: "system", role: null, address: null, action, target: `rollout:${id}`, detail });
    } catch (err) {
      // The change itself stands; only its record is missing, and the log says so.
      console.error(`releases: could not record ${action} of ${id} in the audit trail:`, err);
    }
  }
}

function releaseFromRow(row: ReleaseRow): StoredRelease {
  return {
    version: row.version,
    size: row.size,
    sha256: row.sha256,
    notes: row.notes,
    minAgent: row.min_agent,
    signature: row.signature,
    createdAt: row.created_at,
    createdBy: row.created_by,
    signatureChecked: row.signature_checked === 1,
    key: row.key,
  };
}

// ---------------------------------------------------------------------------
// Choosing a device's release (pure: the room runs it on its copy of the plan)
// ---------------------------------------------------------------------------

/**
 * A device's place in a rollout, in [0, 100): the first 32 bits of SHA-256(`<rollout>:<device>`).
 * Stable (the same devices every time, in every isolate) and independent between rollouts, so
 * the first 5 % of one rollout are not always the same unlucky devices.
 */
export async function rolloutBucket(rolloutId: string, deviceId: string): Promise<number> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${rolloutId}:${deviceId}`));
  return (new DataView(digest).getUint32(0) / 2 ** 32) * 100;
}

/** Whether a device is in a rollout at its current stage. */
export async function includes(entry: Pick<PlanEntry, "id" | "target" | "percent">, deviceId: string): Promise<boolean> {
  const bucket = await rolloutBucket(entry.id, deviceId);
  const { target, percent } = entry;
  if (target === "all") return bucket < percent;
  if ("ids" in target) return target.ids.includes(deviceId) && bucket < percent;
  return bucket < (target.percent * percent) / 100;
}

/**
 * The release meant for a device: the newest active rollout it is in. A paused rollout still
 * counts for a device that has already started it (`startedRollout`), so an update under way
 * can finish (its download is allowed); no new device starts one.
 */
export async function chooseRelease(plan: RolloutPlan, deviceId: string, startedRollout: string | null): Promise<PlanEntry | null> {
  for (const entry of plan.rollouts) {
    if (entry.state === "paused" && entry.id !== startedRollout) continue;
    if (entry.id === startedRollout || (await includes(entry, deviceId))) return entry;
  }
  return null;
}
