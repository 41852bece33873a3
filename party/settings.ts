/**
 * The room's tunables, read once from the Worker's vars (wrangler.toml `[vars]`).
 * Tests shorten the timeouts through the same vars; nothing else reads env directly.
 */
import { Scale } from "./protocol";

export type RoomSettings = {
  defaultScale: Scale;
  defaultIntervalMs: number;
  /** The agent pings every `heartbeatMs`; silence longer than this means a half-open socket. */
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  /** How often the room checks heartbeats while a dashboard watches (an alarm; each is a billed request). */
  presenceCheckMs: number;
  /** The same while nobody watches: presence can be lazier when nobody looks. */
  unwatchedCheckMs: number;
  /** Pending readings are committed at most this long after the first of them arrived… */
  groupCommitMs: number;
  /** …or as soon as this many are pending. */
  groupCommitReadings: number;
  /** How long an unwatched device may hold readings before sending them (per-device override in the room). */
  unwatchedBatchMs: number;
  commandTimeoutMs: number;
  /** Readings kept per device (by seq), oldest deleted first. */
  retainReadings: number;
  fleetPushMs: number;
  logReadings: boolean;
  /** Frames a second one socket may send, and the burst it may save up. */
  frameRate: number;
  frameBurst: number;
};

function int(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`var ${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

export function roomSettings(env: Env): RoomSettings {
  const heartbeatMs = int(env.HEARTBEAT_MS, 5_000, "HEARTBEAT_MS");
  const heartbeatTimeoutMs = int(env.HEARTBEAT_TIMEOUT_MS, heartbeatMs * 3, "HEARTBEAT_TIMEOUT_MS");
  return {
    defaultScale: Scale.parse(env.DEFAULT_SCALE ?? "F"),
    defaultIntervalMs: int(env.DEFAULT_INTERVAL_MS, 1_000, "DEFAULT_INTERVAL_MS"),
    heartbeatMs,
    heartbeatTimeoutMs,
    // Watched: a half-open socket is found within timeout + check (15 + 15 s by default); the
    // same alarm commits the group, so the two cadences are one alarm, not two.
    presenceCheckMs: Math.max(50, int(env.PRESENCE_CHECK_MS, 15_000, "PRESENCE_CHECK_MS")),
    unwatchedCheckMs: Math.max(50, int(env.UNWATCHED_CHECK_MS, 300_000, "UNWATCHED_CHECK_MS")),
    groupCommitMs: int(env.GROUP_COMMIT_MS, 15_000, "GROUP_COMMIT_MS"),
    groupCommitReadings: Math.max(1, int(env.GROUP_COMMIT_READINGS, 500, "GROUP_COMMIT_READINGS")),
    unwatchedBatchMs: Math.min(3_600_000, int(env.UNWATCHED_BATCH_MS, 300_000, "UNWATCHED_BATCH_MS")),
    commandTimeoutMs: int(env.COMMAND_TIMEOUT_MS, 10_000, "COMMAND_TIMEOUT_MS"),
    retainReadings: int(env.RETAIN_READINGS, 7 * 24 * 3600, "RETAIN_READINGS"),
    fleetPushMs: int(env.FLEET_PUSH_MS, 15_000, "FLEET_PUSH_MS"),
    logReadings: (env.LOG_READINGS ?? "true") !== "false",
    frameRate: int(env.FRAME_RATE, 200, "FRAME_RATE"),
    frameBurst: int(env.FRAME_BURST, 1000, "FRAME_BURST"),
  };
}
