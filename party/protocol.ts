/**
 * The one definition of every message and body that crosses a boundary:
 * device ↔ room ↔ dashboard over WebSocket, and the REST bodies of the Worker.
 *
 * Every side imports from here and parses with these schemas; nobody
 * re-declares a message shape or casts `JSON.parse(...) as Message`.
 *
 * Frames are JSON text. A frame that does not parse, or parses to something
 * no schema accepts, is answered with an `error` message and dropped.
 */
import * as z from "zod";

// ---------------------------------------------------------------------------
// Limits. Explicit so every edge enforces the same numbers.
// ---------------------------------------------------------------------------

export const LIMITS = {
  /** Largest WebSocket frame the room will parse (bytes). A 500-reading batch is ~35 KB. */
  maxFrameBytes: 64 * 1024,
  /** Largest REST body (bytes), `POST /iot/data` included. */
  maxBodyBytes: 256 * 1024,
  /** Readings per batch frame or POST. The agent sends backlog in batches of at most this. */
  maxBatch: 500,
  /** Dashboard sockets one device's room serves at once; more are refused with 429. */
  maxDashboardsPerDevice: 100,
  /**
   * Of those, what one account may hold (a person's tabs and screens: a few; a wall of them: a
   * dozen) and what one client address may (an office behind one NAT: a few people's worth). So
   * one credential, or one machine, takes at most a fifth / a quarter of a device's seats and
   * cannot lock everyone else out. Counted per device in its room (free: the room's tag index);
   * not across devices, which would cost a shared object a call per upgrade (docs/security.md).
   */
  maxDashboardsPerAccount: 20,
  maxDashboardsPerAddress: 25,
  /** Readings one `GET …/readings` answers at most. */
  maxReadingsPage: 5000,
  /** Devices one `GET /api/devices` page answers at most (each registry shard is asked for this many). */
  maxDevicesPage: 500,
  /**
   * How far past the room's ack a device's seq may run: an agent's outbox holds at most
   * 100,000,000 readings (its --outbox-max), so nothing genuine is further ahead — plus one
   * reading per 100 ms (the shortest sample interval) of the time the room has not heard the
   * device. Past that a seq is refused (`seq_out_of_range`): one absurd seq must not move a
   * room's numbers to the end of the safe-integer range.
   */
  maxSeqAhead: 100_000_000,
  /** Plausible sensor range, °F or °C (TMP102: −55 °C … +150 °C ≈ −67 °F … 302 °F). */
  minTemperature: -100,
  maxTemperature: 400,
} as const;

// ---------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------

/** Device ids appear in URLs, room names and log lines: keep them boring. */
export const DeviceId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "device id: 1-64 of A-Z a-z 0-9 . _ - (not starting with . _ -)");
export type DeviceId = z.infer<typeof DeviceId>;

export const Scale = z.enum(["F", "C"]);
export type Scale = z.infer<typeof Scale>;

/** Sequence numbers: positive, persisted by the agent, monotonic per stream. */
export const Seq = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** Epoch milliseconds; bounded so a garbage clock cannot poison ordering or retention. */
const MAX_TIMESTAMP = 8_640_000_000_000;
export const Timestamp = z.number().int().min(0).max(MAX_TIMESTAMP);

export const Reading = z.strictObject({
  seq: Seq,
  ts: Timestamp,
  temperature: z.number().finite().min(LIMITS.minTemperature).max(LIMITS.maxTemperature),
  scale: Scale,
});
export type Reading = z.infer<typeof Reading>;

export const ReadingBatch = z.array(Reading).min(1).max(LIMITS.maxBatch);

/** Ids the dashboard makes for commands (crypto.randomUUID() or similar). */
export const CommandId = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, "command id: 8-64 of A-Z a-z 0-9 _ -");

/** Sample interval in ms: 100 ms … 1 h. */
export const IntervalMs = z.number().int().min(100).max(3_600_000);

const ScaleCommand = z.strictObject({ cmd: z.literal("scale"), scale: Scale });
const IntervalCommand = z.strictObject({ cmd: z.literal("interval"), intervalMs: IntervalMs });

/** What a command asks for. A discriminated union so new commands slot in. */
export const CommandBody = z.discriminatedUnion("cmd", [ScaleCommand, IntervalCommand]);
export type CommandBody = z.infer<typeof CommandBody>;

export const CommandStatus = z.enum(["queued", "delivered", "applied", "failed", "timed-out"]);
export type CommandStatus = z.infer<typeof CommandStatus>;
export const FINAL_COMMAND_STATUSES: readonly CommandStatus[] = ["applied", "failed", "timed-out"];

export const CommandRecord = z.strictObject({
  id: CommandId,
  command: CommandBody,
  status: CommandStatus,
  error: z.string().max(500).optional(),
  /** Made (and queued): the first step of its trace. */
  createdAt: Timestamp,
  /** Handed to the device (absent while queued, and for commands from before rooms kept it). */
  deliveredAt: Timestamp.optional(),
  /**
   * When the device applied it, as the agent reports it (`result.appliedAt`: on the endpoint's
   * clock as the agent reckons it, its own clock's skew taken out). Absent for older agents.
   */
  appliedAt: Timestamp.optional(),
  /** Last status change: when a finished command finished. */
  updatedAt: Timestamp,
});
export type CommandRecord = z.infer<typeof CommandRecord>;

/** The device-shadow halves: what the operator wants, and what the device says it has. */
export const DesiredState = z.strictObject({
  scale: Scale,
  intervalMs: IntervalMs,
});
export type DesiredState = z.infer<typeof DesiredState>;

/**
 * Text a device reports that dashboards and logs show: printable ASCII only, so no control
 * characters (terminal escapes in a log), no bidi overrides (a name that reads backwards).
 */
const Printable = (max: number) => z.string().regex(new RegExp(`^[\\x20-\\x7e]{0,${max}}$`), `printable ASCII, at most ${max} characters`);

/** Text made acceptable to `Printable(max)`: anything else becomes "?", then cut to `max`. */
export function toPrintable(text: string, max: number): string {
  return text.replace(/[^\x20-\x7e]/g, "?").slice(0, max);
}

/**
 * Where a device's readings come from (`--sensor`). A stream (one agent outbox) holds
 * readings of one source only, so the source is said once per stream, in `hello`, not
 * in every reading (≈18 bytes more per reading on the wire and in each stored chunk).
 */
export const SensorKind = z.enum(["tmp102", "simulated"]);
export type SensorKind = z.infer<typeof SensorKind>;

/** An IPv4 or IPv6 address, as `x-iot-ip` and the agent's `--ip` carry it. */
export const IpAddress = z.union([z.ipv4(), z.ipv6()]);

export const ReportedState = z.strictObject({
  scale: Scale,
  intervalMs: IntervalMs,
  fw: Printable(32),
  ip: IpAddress.optional(),
  sensor: Printable(32),
  /** Why the sensor produces no readings (e.g. no I2C bus); absent while it works. */
  sensorProblem: Printable(200).optional(),
  /** I2C errors since the agent started; a health signal for the dashboard. */
  sensorErrors: z.number().int().min(0).optional(),
  /** Readings dropped by the agent's outbox drop-oldest policy since it was created. */
  dropped: z.number().int().min(0).optional(),
  /** Why the agent's disk refuses writes (e.g. no space left): readings are held in its memory meanwhile; absent while it writes. */
  storageProblem: Printable(200).optional(),
  /** The device's wall clock minus the endpoint's at its last registration (ms; negative: behind). Its reading times are corrected by it. */
  clockSkewMs: z.number().int().min(-MAX_TIMESTAMP).max(MAX_TIMESTAMP).optional(),
});
export type ReportedState = z.infer<typeof ReportedState>;

/** One device as the fleet view and `GET /api/devices` show it. */
export const DeviceSummary = z.strictObject({
  id: DeviceId,
  online: z.boolean(),
  lastSeen: Timestamp.nullable(),
  ip: z.string().nullable(),
  fw: z.string().nullable(),
  /** The unit of `temperature` (the latest reading's scale; the device's reported scale before any reading). */
  scale: Scale.nullable(),
  temperature: z.number().nullable(),
  readingTs: Timestamp.nullable(),
  lastSeq: z.number().int().nullable(),
  registeredAt: Timestamp,
  /** Alerts raised and not yet cleared (the room pushes the count with its summary). */
  alerts: z.number().int().min(0),
  /** The sparkline: the last (up to 24) temperatures the registry saw, at most one a minute of reading time, oldest first, in `scale`. */
  spark: z.array(z.number()).max(64),
});
export type DeviceSummary = z.infer<typeof DeviceSummary>;

/** A room's full state, as `GET /api/devices/:id` and a dashboard's `snapshot` show it. */
export const DeviceState = z.strictObject({
  id: DeviceId,
  online: z.boolean(),
  lastSeen: Timestamp.nullable(),
  desired: DesiredState,
  reported: ReportedState.nullable(),
  /** Highest seq stored with none missing below it (what the device was acked). */
  ackedSeq: z.number().int().min(0),
  /** Readings the room knows were lost (agent drop policy, or gaps skipped on its say-so). */
  lost: z.number().int().min(0),
  stored: z.number().int().min(0),
  commands: z.array(CommandRecord),
});
export type DeviceState = z.infer<typeof DeviceState>;

// ---------------------------------------------------------------------------
// Releases, rollouts and over-the-air updates of the agent (party/releases.ts; docs/updates.md)
// ---------------------------------------------------------------------------

export const RELEASE_LIMITS = {
  /** Largest artifact the endpoint takes (bytes); the packed agent bundle is well under 1 MB. */
  maxArtifactBytes: 32 * 1024 * 1024,
  /** Device ids one rollout may name. */
  maxRolloutIds: 1000,
  maxStages: 10,
  /** Releases and rollouts one list answers. */
  maxList: 100,
} as const;

/** MAJOR.MINOR.PATCH, no leading zeros: it names a folder on the device (releases/<version>/). */
export const ReleaseVersion = z
  .string()
  .regex(/^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$/, "version: MAJOR.MINOR.PATCH (digits, no leading zeros)");
export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "sha256: 64 lower-case hex digits");
/** An Ed25519 signature (64 bytes), base64url without padding. */
export const Ed25519Signature = z.string().regex(/^[A-Za-z0-9_-]{86}$/, "signature: 64 bytes, base64url");
/** An Ed25519 public key (32 raw bytes), base64url without padding: the device's IOT_RELEASE_KEY, the endpoint's RELEASE_PUBLIC_KEY. */
export const Ed25519PublicKey = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "release key: 32 bytes, base64url (npm run release -- keygen prints it)");

/** What the release key signs: the artifact's size and hash, and what the release says about itself. */
export const ReleaseManifest = z.strictObject({
  version: ReleaseVersion,
  size: z.number().int().min(1).max(RELEASE_LIMITS.maxArtifactBytes),
  sha256: Sha256Hex,
  notes: Printable(500),
  /** The oldest agent that may install it (its updater must understand this release), or null. */
  minAgent: ReleaseVersion.nullable(),
});
export type ReleaseManifest = z.infer<typeof ReleaseManifest>;

export const SignedRelease = ReleaseManifest.extend({ signature: Ed25519Signature });
export type SignedRelease = z.infer<typeof SignedRelease>;

/**
 * The exact bytes the signature covers (UTF-8 of this text): every field in a fixed order, so
 * the signer and every verifier agree without a canonical-JSON library.
 */
export function releaseSigningText(m: ReleaseManifest): string {
  return JSON.stringify(["iot-release/1", m.version, m.size, m.sha256, m.notes, m.minAgent]);
}

/** A release as the endpoint keeps it (`GET /api/releases`). */
export const ReleaseRecord = SignedRelease.extend({
  createdAt: Timestamp,
  createdBy: z.string().max(80),
  /** The endpoint checked the signature against its RELEASE_PUBLIC_KEY (false: none configured; devices check anyway). */
  signatureChecked: z.boolean(),
});
export type ReleaseRecord = z.infer<typeof ReleaseRecord>;

export const RolloutId = z.string().regex(/^r-[a-z0-9]{4,32}$/, "rollout id: r-<base36>");

/** Who a rollout is for: every device, the listed ones, or a stable share of the fleet. */
export const RolloutTarget = z.union([
  z.literal("all"),
  z.strictObject({ ids: z.array(DeviceId).min(1).max(RELEASE_LIMITS.maxRolloutIds) }),
  z.strictObject({ percent: z.number().min(0.01).max(100) }),
]);
export type RolloutTarget = z.infer<typeof RolloutTarget>;

/** `POST /api/rollouts`. Stages are percentages of the target, rising (e.g. [5, 25, 100]). */
export const RolloutRequest = z.strictObject({
  release: ReleaseVersion,
  target: RolloutTarget,
  stages: z
    .array(z.number().min(0.01).max(100))
    .min(1)
    .max(RELEASE_LIMITS.maxStages)
    .refine((s) => s.every((p, i) => i === 0 || p > s[i - 1]!), "stages: rising percentages, e.g. [5, 25, 100]")
    .default([100]),
  /** Devices that fail or roll back before the rollout pauses itself. */
  failureThreshold: z.number().int().min(1).max(1_000_000).default(5),
  /** Move to the next stage by itself this long after the last move (0: an operator advances it). */
  stageMs: z.number().int().min(0).max(30 * 24 * 3_600_000).default(0),
});
export type RolloutRequest = z.infer<typeof RolloutRequest>;

export const RolloutState = z.enum(["active", "paused", "cancelled"]);
export type RolloutState = z.infer<typeof RolloutState>;

/**
 * Each step of an update on the device, as it reports them (docs/updates.md). `unsupported`: the
 * device cannot take updates as it is set up (no IOT_RELEASE_KEY pinned, not run by the launcher);
 * final, shown, but not a failure, so it never counts toward a rollout's failure threshold.
 */
export const UpdateState = z.enum(["downloading", "verifying", "installing", "restarting", "trial", "applied", "rolled-back", "failed", "unsupported"]);
export type UpdateState = z.infer<typeof UpdateState>;
export const FINAL_UPDATE_STATES: readonly UpdateState[] = ["applied", "rolled-back", "failed", "unsupported"];

export const Rollout = z.strictObject({
  id: RolloutId,
  release: ReleaseVersion,
  target: RolloutTarget,
  stages: z.array(z.number()),
  /** Index into `stages` of the stage in force. */
  stage: z.number().int().min(0),
  failureThreshold: z.number().int().min(1),
  stageMs: z.number().int().min(0),
  state: RolloutState,
  /** Why it is paused or cancelled (an operator, or the failure threshold). */
  reason: z.string().max(300).nullable(),
  createdAt: Timestamp,
  createdBy: z.string().max(80),
  updatedAt: Timestamp,
  stageStartedAt: Timestamp,
  /** Devices by their latest reported state for this rollout's release. */
  counts: z.record(z.string(), z.number().int().min(0)),
  /** The latest failures (device, state, reason), newest first. */
  failures: z.array(z.strictObject({ device: DeviceId, state: UpdateState, reason: z.string().max(300).nullable(), at: Timestamp })),
});
export type Rollout = z.infer<typeof Rollout>;

/** A device's update as its room knows it: the latest step it reported. */
export const UpdateStatus = z.strictObject({
  version: ReleaseVersion,
  state: UpdateState,
  /** 0…1 while downloading. */
  progress: z.number().min(0).max(1).nullable(),
  reason: z.string().max(300).nullable(),
  rollout: RolloutId.nullable(),
  at: Timestamp,
});
export type UpdateStatus = z.infer<typeof UpdateStatus>;

/** `GET /api/devices/:id/firmware`: what runs, what is meant to run, and how the update goes. */
export const DeviceFirmware = z.strictObject({
  running: z.string().nullable(),
  target: z.strictObject({ version: ReleaseVersion, rollout: RolloutId }).nullable(),
  update: UpdateStatus.nullable(),
});
export type DeviceFirmware = z.infer<typeof DeviceFirmware>;

// ---------------------------------------------------------------------------
// Device → room
// ---------------------------------------------------------------------------

/**
 * First frame on every device connection. `stream` names the agent's outbox
 * (random, made with it); `oldest` is the lowest seq still in the outbox (or
 * next seq when empty). Together they let the room tell "readings are still
 * coming" from "readings were dropped by policy" or "the agent was reset".
 */
export const DeviceHello = z.strictObject({
  type: z.literal("hello"),
  stream: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/),
  oldest: Seq,
  state: ReportedState,
  /** The source of every reading in this stream. Absent from agents before `--sensor`: unknown (their `state.sensor` says "simulated" when it was). */
  source: SensorKind.optional(),
});

export const DeviceReadings = z.strictObject({
  type: z.literal("readings"),
  readings: ReadingBatch,
});

/** The agent's answer to a command: applied, or failed with a reason. */
export const DeviceCommandResult = z.strictObject({
  type: z.literal("result"),
  id: CommandId,
  ok: z.boolean(),
  error: z.string().max(500).optional(),
  state: ReportedState.optional(),
  /**
   * When the agent applied the command, on the endpoint's clock as the agent reckons it (the
   * endpoint's time at registration plus the agent's monotonic time since: its own wall clock's
   * skew does not enter). Optional: agents before it answer without, and the trace then ends at
   * the room. The room stores it as the command's `appliedAt`.
   */
  appliedAt: Timestamp.optional(),
});

/** Reported state changed outside a command (sensor errors, desired state applied on reconnect). */
export const DeviceReport = z.strictObject({
  type: z.literal("report"),
  state: ReportedState,
});

/**
 * The agent is stopping (or wants its ack now): the room commits what is
 * pending at once and acks, instead of at the group's deadline, so a clean
 * stop leaves an empty outbox.
 */
export const DeviceFlush = z.strictObject({ type: z.literal("flush") });

/** A step of an over-the-air update (docs/updates.md): the room records it, rollouts count it. */
export const DeviceUpdateReport = z.strictObject({
  type: z.literal("update"),
  version: ReleaseVersion,
  state: UpdateState,
  progress: z.number().min(0).max(1).optional(),
  reason: Printable(300).optional(),
});

export const DeviceMessage = z.discriminatedUnion("type", [
  DeviceHello,
  DeviceReadings,
  DeviceCommandResult,
  DeviceReport,
  DeviceFlush,
  DeviceUpdateReport,
]);
export type DeviceMessage = z.infer<typeof DeviceMessage>;

/**
 * Heartbeat. Sent as this exact text and answered with PONG by the runtime
 * itself (Durable Object WebSocket auto-response), so it never wakes a
 * hibernating room; the room reads the time of the last one for presence.
 */
export const PING = '{"type":"ping"}';
export const PONG = '{"type":"pong"}';

// ---------------------------------------------------------------------------
// Room → device
// ---------------------------------------------------------------------------

/** Every seq ≤ `seq` is stored; the agent may prune them. */
export const AckMessage = z.strictObject({ type: z.literal("ack"), seq: z.number().int().min(0) });

/** Desired state, sent on connect and whenever it changes. */
export const DesiredMessage = z.strictObject({ type: z.literal("desired"), state: DesiredState });

/** A command to apply; answer with `result`. */
export const CommandMessage = z.strictObject({
  type: z.literal("command"),
  id: CommandId,
  command: CommandBody,
});

export const ErrorMessage = z.strictObject({
  type: z.literal("error"),
  code: z.string(),
  message: z.string(),
});
export type ErrorMessage = z.infer<typeof ErrorMessage>;

/**
 * How long the agent may hold live readings before sending them as one frame.
 * 0: live, each reading the moment it is taken (a dashboard is watching).
 * More: nobody watches, so the agent batches (one frame per `maxDelayMs`),
 * and the room stores each frame as one chunk. Sent on hello and whenever a
 * first dashboard opens or the last one closes.
 */
export const BatchingMessage = z.strictObject({
  type: z.literal("batching"),
  maxDelayMs: z.number().int().min(0).max(3_600_000),
});

/**
 * The release meant for this device (null: none; keep what runs), sent after hello and when it
 * changes. The device checks the signature against its own pinned key, not the room's word.
 */
export const FirmwareMessage = z.strictObject({
  type: z.literal("firmware"),
  release: SignedRelease.nullable(),
  rollout: RolloutId.nullable(),
  /** Where to download it, relative to the endpoint (device token; HTTP Range for resuming). */
  path: z.string().startsWith("/").max(100).nullable(),
});

export const ToDeviceMessage = z.discriminatedUnion("type", [
  AckMessage,
  DesiredMessage,
  CommandMessage,
  BatchingMessage,
  FirmwareMessage,
  ErrorMessage,
]);
export type ToDeviceMessage = z.infer<typeof ToDeviceMessage>;

// ---------------------------------------------------------------------------
// Dashboard → room
// ---------------------------------------------------------------------------

export const DashboardCommand = z.strictObject({
  type: z.literal("command"),
  id: CommandId,
  command: CommandBody,
});

export const DashboardMessage = z.discriminatedUnion("type", [DashboardCommand]);
export type DashboardMessage = z.infer<typeof DashboardMessage>;

// ---------------------------------------------------------------------------
// Alerts: rules, alerts and their webhook deliveries (party/room/alerts.ts; docs/alerts.md)
// ---------------------------------------------------------------------------

export const ALERT_LIMITS = {
  /** Rules one device may have of its own, and fleet-wide defaults (every room evaluates all of them). */
  maxRules: 20,
  /** A rule's duration: up to a week. */
  maxForMs: 7 * 24 * 3_600_000,
  /** Alerts and webhook deliveries a room keeps (newest); older ones are pruned as new ones come. */
  keepAlerts: 200,
  keepDeliveries: 200,
} as const;

/** Rule ids appear in URLs, webhook bodies and audit rows: lower-case and boring. */
export const AlertRuleId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, "rule id: 1-32 of a-z 0-9 _ - (starting with a letter or digit)");

/**
 * Where a rule's alerts are POSTed. http(s) only, and no `user:password@`: the URL is shown in
 * the API and logs, and the request is authenticated by its signature instead (docs/alerts.md).
 */
export const WebhookUrl = z
  .string()
  .max(500)
  .refine((u) => {
    try {
      const url = new URL(u);
      return (url.protocol === "https:" || url.protocol === "http:") && !url.username && !url.password;
    } catch {
      return false;
    }
  }, "webhook: an http(s) URL without user:password");

const ForMs = z.number().int().min(0).max(ALERT_LIMITS.maxForMs);

const ruleCommon = {
  /** What people call it ("Freezer too warm"); the id when absent. */
  name: Printable(80).optional(),
  /** false: kept but not evaluated (a device rule with a default's id and `enabled: false` switches that default off here). */
  enabled: z.boolean().default(true),
  /** Overrides the deployment's ALERT_WEBHOOK_URL for this rule's alerts. */
  webhook: WebhookUrl.optional(),
};

const thresholdRule = <K extends "above" | "below">(kind: K) =>
  z.strictObject({
    kind: z.literal(kind),
    threshold: z.number().finite().min(LIMITS.minTemperature).max(LIMITS.maxTemperature),
    /** The threshold's unit; readings in the other unit are converted before comparing. */
    scale: Scale,
    /** The condition must hold this long (by the readings' own times) before the alert is raised; 0: at once. */
    forMs: ForMs.default(0),
    /**
     * Hysteresis: an `above` alert (or a breach still timing its duration) ends only once a reading is at or
     * below `threshold − deadband` (`below`: at or above `threshold + deadband`), so noise around the threshold
     * neither flaps an alert nor restarts its duration. In the rule's scale.
     */
    deadband: z.number().finite().min(0).max(50).default(0.5),
    ...ruleCommon,
  });

const ruleBodies = [
  thresholdRule("above"),
  thresholdRule("below"),
  /** No reading has arrived for `forMs` (a silent sensor, a dead agent, a device that is off). At least 1 s. */
  z.strictObject({ kind: z.literal("no-data"), forMs: z.number().int().min(1000).max(ALERT_LIMITS.maxForMs), ...ruleCommon }),
  /** The device has been offline (no socket, or a half-open one found by its heartbeat) for `forMs`. */
  z.strictObject({ kind: z.literal("offline"), forMs: ForMs.default(0), ...ruleCommon }),
] as const;

/** `PUT /api/devices/:id/alerts/rules/:rule` and `PUT /api/alerts/defaults/:rule`: the rule, its id in the path. */
export const AlertRuleBody = z.discriminatedUnion("kind", [...ruleBodies]);
export type AlertRuleBody = z.infer<typeof AlertRuleBody>;

export const AlertRule = z.discriminatedUnion("kind", [
  ruleBodies[0].extend({ id: AlertRuleId }),
  ruleBodies[1].extend({ id: AlertRuleId }),
  ruleBodies[2].extend({ id: AlertRuleId }),
  ruleBodies[3].extend({ id: AlertRuleId }),
]);
export type AlertRule = z.infer<typeof AlertRule>;
export type AlertKind = AlertRule["kind"];

/** A rule as `GET /api/devices/:id/alerts/rules` shows it: where it comes from and how late it can be. */
export const AlertRuleView = z.strictObject({
  rule: AlertRule,
  /** `device`: this device's own; `default`: a fleet-wide default this device has not overridden. */
  source: z.enum(["device", "default"]),
  /**
   * The longest time from the condition holding for `forMs` to the alert being raised, as the room
   * runs now, nobody watching (watched, readings arrive at once): for thresholds the device's batching
   * bound; for offline the heartbeat time-out and presence check; for no-data none (an alarm at the deadline).
   */
  latencyMs: z.number().int().min(0),
  /** The same in words ("≤ 1 min 15 s after the 5 min: the device sends at least every 75 s"). */
  latency: z.string().max(200),
});
export type AlertRuleView = z.infer<typeof AlertRuleView>;

export const AlertRulesAnswer = z.strictObject({
  rules: z.array(AlertRuleView),
  /** The bound the device is asked to batch within while nobody watches (ms), rules included. */
  unwatchedBatchingMs: z.number().int().min(0),
});
export type AlertRulesAnswer = z.infer<typeof AlertRulesAnswer>;

/** Fleet-wide default rules (every room evaluates them unless it overrides one by id). */
export const AlertDefaults = z.strictObject({
  /** Changes on every change; rooms compare it to their cached copy. */
  version: z.number().int().min(0),
  rules: z.array(AlertRule).max(ALERT_LIMITS.maxRules),
});
export type AlertDefaults = z.infer<typeof AlertDefaults>;

export const AlertStatus = z.enum(["active", "acknowledged", "cleared"]);
export type AlertStatus = z.infer<typeof AlertStatus>;

/** One alert: active → acknowledged → cleared (or active → cleared), with when each step happened. */
export const AlertRecord = z.strictObject({
  id: z.number().int().min(1),
  device: DeviceId,
  rule: AlertRuleId,
  kind: z.enum(["above", "below", "no-data", "offline"]),
  status: AlertStatus,
  /** One line for people and webhooks: "71.2 °F above 70 °F for 5 min". */
  message: z.string().max(300),
  /** When the condition began: the first breaching reading's time for thresholds; the last reading / going offline otherwise. */
  since: Timestamp,
  raisedAt: Timestamp,
  acknowledgedAt: Timestamp.nullable(),
  acknowledgedBy: z.string().max(80).nullable(),
  clearedAt: Timestamp.nullable(),
  /** The reading that raised it (thresholds), converted to the rule's scale (`scale`). */
  value: z.number().nullable(),
  scale: Scale.nullable(),
});
export type AlertRecord = z.infer<typeof AlertRecord>;

export const AlertEvent = z.enum(["alert.raised", "alert.acknowledged", "alert.cleared"]);
export type AlertEvent = z.infer<typeof AlertEvent>;

/**
 * The JSON body POSTed to a webhook. Signed: header `X-IoT-Signature: t=<ms>,v1=<hex>` where `<hex>` is
 * HMAC-SHA256(ALERT_WEBHOOK_SECRET, `<t>.<body>`); `X-IoT-Delivery` is the delivery's id (the same on retries).
 */
export const WebhookPayload = z.strictObject({
  event: AlertEvent,
  delivery: z.string().max(64),
  device: DeviceId,
  alert: AlertRecord,
  rule: AlertRule.nullable(),
  /** When the event happened (the same on every retry; the signature's `t` is the attempt's). */
  at: Timestamp,
});
export type WebhookPayload = z.infer<typeof WebhookPayload>;

export const DeliveryAttempt = z.strictObject({
  at: Timestamp,
  /** The webhook's HTTP status; null when there was none (a time-out, a refused connection). */
  status: z.number().int().nullable(),
  error: z.string().max(200).nullable(),
  ms: z.number().int().min(0),
});
export type DeliveryAttempt = z.infer<typeof DeliveryAttempt>;

export const WebhookDelivery = z.strictObject({
  id: z.string().max(64),
  alert: z.number().int().min(1),
  event: AlertEvent,
  url: z.string().max(500),
  status: z.enum(["pending", "delivered", "failed"]),
  attempts: z.array(DeliveryAttempt),
  /** When the next try goes (pending only). */
  nextAttemptAt: Timestamp.nullable(),
  createdAt: Timestamp,
});
export type WebhookDelivery = z.infer<typeof WebhookDelivery>;

/** `GET /api/devices/:id/alerts`: alerts not yet cleared, then history (newest first), then webhook deliveries. */
export const DeviceAlerts = z.strictObject({
  active: z.array(AlertRecord),
  history: z.array(AlertRecord),
  deliveries: z.array(WebhookDelivery),
});
export type DeviceAlerts = z.infer<typeof DeviceAlerts>;

/** `GET /api/alerts`: devices with alerts not yet cleared, from the fleet shards' rows. */
export const ActiveAlertsPage = z.strictObject({
  devices: z.array(z.strictObject({ id: DeviceId, alerts: z.number().int().min(1), online: z.boolean(), lastSeen: Timestamp.nullable() })),
  total: z.number().int().min(0),
});
export type ActiveAlertsPage = z.infer<typeof ActiveAlertsPage>;

// ---------------------------------------------------------------------------
// Room → dashboard
// ---------------------------------------------------------------------------

/** On connect: the whole state and the latest readings, so a page never starts empty. */
export const SnapshotMessage = z.strictObject({
  type: z.literal("snapshot"),
  state: DeviceState,
  readings: z.array(Reading),
});

/** Newly stored readings, in seq order (live ones, and backfill as it arrives). */
export const ReadingsMessage = z.strictObject({
  type: z.literal("readings"),
  readings: z.array(Reading),
});

export const PresenceMessage = z.strictObject({
  type: z.literal("presence"),
  online: z.boolean(),
  lastSeen: Timestamp.nullable(),
});

export const StateMessage = z.strictObject({
  type: z.literal("state"),
  desired: DesiredState,
  reported: ReportedState.nullable(),
});

export const CommandUpdateMessage = z.strictObject({
  type: z.literal("command-status"),
  command: CommandRecord,
});

/** An alert was raised, acknowledged or cleared on this device. */
export const AlertMessage = z.strictObject({
  type: z.literal("alert"),
  alert: AlertRecord,
});

export const ToDashboardMessage = z.discriminatedUnion("type", [
  SnapshotMessage,
  ReadingsMessage,
  PresenceMessage,
  StateMessage,
  CommandUpdateMessage,
  AlertMessage,
  ErrorMessage,
]);
export type ToDashboardMessage = z.infer<typeof ToDashboardMessage>;

// ---------------------------------------------------------------------------
// REST bodies and answers
// ---------------------------------------------------------------------------

/** `GET /iot/config` answer: the legacy fields, then the device's configuration. */
export const IotConfigResponse = z.object({
  message: z.literal("IoT Configuration"),
  iotip: z.string(),
  ts: Timestamp,
  id: DeviceId,
  config: z.strictObject({
    scale: Scale,
    intervalMs: z.number().int(),
    heartbeatMs: z.number().int(),
    /** Path of the device's WebSocket, relative to the endpoint. */
    socketPath: z.string(),
    fw: z.string(),
  }),
});
export type IotConfigResponse = z.infer<typeof IotConfigResponse>;

export const IotUpdateResponse = z.object({
  message: z.literal("IoT Update"),
  current: z.string(),
  update: z
    .strictObject({
      version: z.string(),
      url: z.string().nullable(),
      /** A signed release (docs/updates.md): check the signature against the pinned key before using it. */
      size: z.number().int().optional(),
      sha256: z.string().optional(),
      signature: z.string().optional(),
      minAgent: z.string().nullable().optional(),
    })
    .nullable(),
});
export type IotUpdateResponse = z.infer<typeof IotUpdateResponse>;

/** `POST /api/tickets` answer: a short-lived ticket for `<path>?ticket=<ticket>`. */
export const TicketResponse = z.object({
  ticket: z.string().min(1).max(1024),
  expiresAt: Timestamp,
  path: z.string().startsWith("/"),
});
export type TicketResponse = z.infer<typeof TicketResponse>;

/** `POST /api/devices` and `…/rotate`: the device's token, shown this once (only its hash is kept). */
export const DeviceTokenResponse = z.strictObject({
  id: DeviceId,
  token: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\.[A-Za-z0-9_-]{32,128}$/),
});
export type DeviceTokenResponse = z.infer<typeof DeviceTokenResponse>;

/** `POST /api/devices/:id/revoke`. */
export const RevokeResponse = z.strictObject({ id: DeviceId, revoked: z.boolean() });

/**
 * `GET /api/session` and `POST /api/login`: who the caller is — the account (`admin` and `viewer`
 * are the built-in ones behind ADMIN_TOKEN and VIEWER_TOKEN), its role, and for a cookie session
 * its id and end.
 */
export const SessionResponse = z.strictObject({
  role: z.enum(["operator", "viewer"]),
  account: z.string().max(32).optional(),
  session: z.string().max(32).optional(),
  expiresAt: Timestamp.optional(),
});
export type SessionResponse = z.infer<typeof SessionResponse>;

/** `POST /iot/data`: the legacy loopback body, or a batch of readings. */
export const IotLegacyData = z.strictObject({ iot: z.union([z.number(), z.string().max(64)]) });
export const IotReadingsData = z.strictObject({ readings: ReadingBatch });
export const IotDataBody = z.union([IotLegacyData, IotReadingsData]);

export const ReadingsQuery = z.strictObject({
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  since: z.coerce.number().int().min(0).max(8_640_000_000_000).optional(),
  limit: z.coerce.number().int().min(1).max(LIMITS.maxReadingsPage).default(1000),
});
export type ReadingsQuery = z.infer<typeof ReadingsQuery>;

/**
 * `GET /api/devices`: a page of the fleet in id order. `cursor` is the last id
 * of the previous page (the answer's `next`); `q` keeps ids that contain it
 * (case-insensitive, so a prefix works too); `online` keeps one presence.
 */
export const DevicesQuery = z.strictObject({
  cursor: DeviceId.optional(),
  limit: z.coerce.number().int().min(1).max(LIMITS.maxDevicesPage).default(100),
  q: z.string().max(64).regex(/^[A-Za-z0-9._-]*$/, "q: up to 64 of A-Z a-z 0-9 . _ -").optional(),
  online: z.enum(["true", "false"]).transform((v) => v === "true").optional(),
});
export type DevicesQuery = z.infer<typeof DevicesQuery>;

/** Its answer: `next` is the cursor of the following page (null on the last); `total` counts every match. */
export const DevicesPage = z.strictObject({
  devices: z.array(DeviceSummary),
  next: DeviceId.nullable(),
  total: z.number().int().min(0),
});
export type DevicesPage = z.infer<typeof DevicesPage>;

/** `POST /api/devices/:id/commands`: `{cmd: "scale", scale: "C"}`, the id optional (the room makes one). */
export const CommandRequest = z.discriminatedUnion("cmd", [
  ScaleCommand.extend({ id: CommandId.optional() }),
  IntervalCommand.extend({ id: CommandId.optional() }),
]);
export type CommandRequest = z.infer<typeof CommandRequest>;

/**
 * `GET /api/devices/:id/stats`: what the room did since it last started (in
 * memory; a wake from hibernation starts afresh). The bench reads these to
 * report rows written per reading and requests per reading.
 */
export const RoomStats = z.strictObject({
  since: Timestamp,
  /** Readings newly stored (duplicates not counted). */
  readingsStored: z.number().int().min(0),
  /** SQLite rows written (inserts, updates, deletes; KV puts count one each), as Cloudflare bills them. */
  rowsWritten: z.number().int().min(0),
  /** Group commits of readings (each one write transaction). */
  commits: z.number().int().min(0),
  /** Alarm invocations (each a billed request). */
  alarms: z.number().int().min(0),
  /** WebSocket frames received (device and dashboards; billed 1 request per 20). */
  framesIn: z.number().int().min(0),
  /** RPC calls and HTTP requests into the room (each a billed request). */
  calls: z.number().int().min(0),
  /** Dashboards watching now, and the batching delay the device was last told. */
  watchers: z.number().int().min(0),
  batchingMs: z.number().int().min(0),
});
export type RoomStats = z.infer<typeof RoomStats>;

/** `PUT /api/devices/:id/batching`: how long an unwatched device may hold readings (0: always live). */
export const BatchingRequest = z.strictObject({ unwatchedMs: z.number().int().min(0).max(3_600_000) });
export type BatchingRequest = z.infer<typeof BatchingRequest>;

export const ApiError = z.strictObject({
  error: z.strictObject({ code: z.string(), message: z.string() }),
});
export type ApiError = z.infer<typeof ApiError>;

// ---------------------------------------------------------------------------
// Accounts, sessions, audit (party/directory.ts keeps them)
// ---------------------------------------------------------------------------

export const AccountRole = z.enum(["operator", "viewer"]);
export type AccountRole = z.infer<typeof AccountRole>;

/**
 * Names that are not accounts one may add: the built-in accounts behind ADMIN_TOKEN and
 * VIEWER_TOKEN, and the words the audit trail uses for callers without an account.
 */
export const RESERVED_ACCOUNT_NAMES: readonly string[] = ["admin", "viewer", "unknown", "system"];

/** Account names appear in tokens (`@<name>.<secret>`), audit rows and URLs: lower-case and boring. */
export const AccountName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,31}$/, "account name: 1-32 of a-z 0-9 _ - (starting with a letter)");

/** `POST /api/accounts`. */
export const AccountCreateRequest = z.strictObject({
  name: AccountName.refine((n) => !RESERVED_ACCOUNT_NAMES.includes(n), "account name: that name is reserved"),
  role: AccountRole,
});
export type AccountCreateRequest = z.infer<typeof AccountCreateRequest>;

export const Account = z.strictObject({
  name: z.string().max(32),
  role: AccountRole,
  /** `admin` / `viewer`: the shared bootstrap tokens, configured as secrets, never removed here. */
  builtin: z.boolean(),
  createdAt: Timestamp.nullable(),
  createdBy: z.string().max(80).nullable(),
});
export type Account = z.infer<typeof Account>;

/** `GET /api/accounts`. */
export const AccountsList = z.strictObject({ accounts: z.array(Account) });
export type AccountsList = z.infer<typeof AccountsList>;

/** `POST /api/accounts`: the account's token, shown this once (only its SHA-256 is kept). */
export const AccountTokenResponse = z.strictObject({
  name: z.string().max(32),
  role: AccountRole,
  token: z.string().regex(/^@[a-z][a-z0-9_-]{0,31}\.[A-Za-z0-9_-]{43}$/),
});
export type AccountTokenResponse = z.infer<typeof AccountTokenResponse>;

/** Session ids: 16 random bytes, base64url. Shown in lists; the cookie also carries a secret. */
export const SessionId = z.string().regex(/^[A-Za-z0-9_-]{22}$/, "session id: 22 of A-Z a-z 0-9 _ -");

export const SessionInfo = z.strictObject({
  id: SessionId,
  account: z.string().max(32),
  role: AccountRole,
  createdAt: Timestamp,
  lastUsed: Timestamp,
  expiresAt: Timestamp,
  userAgent: z.string().max(200),
  address: z.string().max(64),
  /** The session this request came with. */
  current: z.boolean(),
});
export type SessionInfo = z.infer<typeof SessionInfo>;

/** `GET /api/sessions`: live sessions, newest first (an operator's list has everyone's). */
export const SessionsList = z.strictObject({ sessions: z.array(SessionInfo) });
export type SessionsList = z.infer<typeof SessionsList>;

export const AuditAction = z.enum([
  "login",
  "login.failed",
  "logout",
  "session.revoke",
  "account.add",
  "account.remove",
  "release.publish",
  "rollout.create",
  "rollout.pause",
  "rollout.resume",
  "rollout.cancel",
  "rollout.advance",
  "device.provision",
  "device.rotate",
  "device.revoke",
  "device.command",
  "device.batching",
  "alert.rule.set",
  "alert.rule.delete",
  "alert.default.set",
  "alert.default.delete",
  "alert.acknowledge",
]);
export type AuditAction = z.infer<typeof AuditAction>;

/** One row of the audit trail: who did what to which target, when, and from which address. */
export const AuditEntry = z.strictObject({
  seq: z.number().int().min(1),
  ts: Timestamp,
  /** An account name, `device:<id>`, or `unknown` (a failed sign-in with no account named). */
  actor: z.string().max(80),
  role: z.enum(["operator", "viewer", "device"]).nullable(),
  /** The client address the Worker keys rate limits on (`local` for a local endpoint without a proxy). */
  address: z.string().max(64).nullable(),
  action: AuditAction,
  target: z.string().max(80).nullable(),
  /** Small facts about the change (a command's body, a role, why a sign-in failed). */
  detail: z.record(z.string(), z.unknown()).nullable(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

export const MAX_AUDIT_PAGE = 500;

/** `GET /api/audit`: newest first; `cursor` is the previous page's `next` (rows older than it). */
export const AuditQuery = z.strictObject({
  cursor: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_AUDIT_PAGE).default(100),
});
export type AuditQuery = z.infer<typeof AuditQuery>;

export const AuditPage = z.strictObject({
  entries: z.array(AuditEntry),
  next: z.number().int().min(1).nullable(),
});
export type AuditPage = z.infer<typeof AuditPage>;

// ---------------------------------------------------------------------------
// Helpers every side uses
// ---------------------------------------------------------------------------

/** Parse a WebSocket frame: size-check, JSON-parse, then validate. Never throws. */
export function parseFrame<T extends z.ZodType>(
  schema: T,
  raw: string | ArrayBuffer | ArrayBufferView,
): { ok: true; value: z.infer<T> } | { ok: false; error: ErrorMessage } {
  if (typeof raw !== "string") {
    return { ok: false, error: errorMessage("binary_unsupported", "frames are JSON text; binary frames are not accepted") };
  }
  // Length in UTF-16 units ≤ bytes for UTF-8 text, so this is a lower bound; good enough as a cheap guard.
  if (raw.length > LIMITS.maxFrameBytes) {
    return { ok: false, error: errorMessage("frame_too_large", `frame exceeds ${LIMITS.maxFrameBytes} bytes`) };
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, error: errorMessage("invalid_json", "frame is not valid JSON") };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    return { ok: false, error: errorMessage("invalid_message", describeIssues(parsed.error)) };
  }
  return { ok: true, value: parsed.data };
}

/**
 * A device frame. The hot path, a `readings` frame, is checked by hand first:
 * it accepts exactly what `DeviceReadings` accepts (test/node/protocol.test.ts
 * holds the two side by side over thousands of generated frames) at a
 * fraction of zod's cost in workerd, where zod cannot compile its checks.
 * Anything the quick check does not accept goes through the schema, so every
 * refusal is zod's, with its message.
 */
export function parseDeviceFrame(raw: string | ArrayBuffer | ArrayBufferView): ReturnType<typeof parseFrame<typeof DeviceMessage>> {
  if (typeof raw === "string" && raw.length <= LIMITS.maxFrameBytes && raw.startsWith('{"type":"readings"')) {
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      json = undefined;
    }
    if (isReadingsFrame(json)) return { ok: true, value: json };
  }
  return parseFrame(DeviceMessage, raw);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const hasOwn = Object.prototype.hasOwnProperty;

/** `DeviceReadings`, by hand: exactly its keys, its bounds and its types. */
function isReadingsFrame(v: unknown): v is z.infer<typeof DeviceReadings> {
  if (!isPlainObject(v) || Object.keys(v).length !== 2 || v.type !== "readings" || !hasOwn.call(v, "type")) return false;
  const readings = v.readings;
  if (!Array.isArray(readings) || readings.length < 1 || readings.length > LIMITS.maxBatch) return false;
  for (const r of readings as unknown[]) {
    if (!isPlainObject(r) || Object.keys(r).length !== 4) return false;
    if (!hasOwn.call(r, "seq") || !hasOwn.call(r, "ts") || !hasOwn.call(r, "temperature") || !hasOwn.call(r, "scale")) return false;
    const { seq, ts, temperature, scale } = r;
    if (!Number.isSafeInteger(seq) || (seq as number) < 1) return false;
    if (!Number.isSafeInteger(ts) || (ts as number) < 0 || (ts as number) > MAX_TIMESTAMP) return false;
    if (typeof temperature !== "number" || !Number.isFinite(temperature)) return false;
    if (temperature < LIMITS.minTemperature || temperature > LIMITS.maxTemperature) return false;
    if (scale !== "F" && scale !== "C") return false;
  }
  return true;
}

export function errorMessage(code: string, message: string): ErrorMessage {
  return { type: "error", code, message };
}

/** A short human sentence from zod issues: `readings.0.seq: Too small…; type: …`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ")
    .slice(0, 500);
}

/**
 * The desired state after a command: one pure function, so the room that
 * records it and the agent that applies it can never disagree.
 */
export function applyCommand(desired: DesiredState, command: CommandBody): DesiredState {
  switch (command.cmd) {
    case "scale":
      return { ...desired, scale: command.scale };
    case "interval":
      return { ...desired, intervalMs: command.intervalMs };
  }
}

/** Fahrenheit ↔ Celsius, rounded to 2 decimals as the legacy log line shows them. */
export function convert(temperature: number, from: Scale, to: Scale): number {
  if (from === to) return temperature;
  return to === "F" ? (temperature * 9) / 5 + 32 : ((temperature - 32) * 5) / 9;
}
