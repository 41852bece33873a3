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
  heartbeatCheckMs: number;
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
    // Check a few times per timeout window so a dead socket is found within ~1.3× the timeout.
    heartbeatCheckMs: Math.max(250, Math.floor(heartbeatTimeoutMs / 3)),
    commandTimeoutMs: int(env.COMMAND_TIMEOUT_MS, 10_000, "COMMAND_TIMEOUT_MS"),
    retainReadings: int(env.RETAIN_READINGS, 7 * 24 * 3600, "RETAIN_READINGS"),
    fleetPushMs: int(env.FLEET_PUSH_MS, 2_000, "FLEET_PUSH_MS"),
    logReadings: (env.LOG_READINGS ?? "true") !== "false",
    frameRate: int(env.FRAME_RATE, 200, "FRAME_RATE"),
    frameBurst: int(env.FRAME_BURST, 1000, "FRAME_BURST"),
  };
}
