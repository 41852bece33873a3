/**
 * The agent's one configuration loader: flags > environment > config file >
 * defaults, merged per setting and validated once with zod. Every setting is
 * declared once in OPTIONS, which also writes `--help`.
 */
import { readFileSync } from "node:fs";
import { hostname, networkInterfaces } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { z } from "zod";
import { DeviceId, Ed25519PublicKey, IntervalMs, Scale, SensorKind, describeIssues } from "../party/protocol.ts";
import { DEFAULT_OUTBOX_MAX, DEFAULT_SPILL_MAX, DEFAULT_SPILL_MS, DEFAULT_SPILL_UNWATCHED_MS } from "./outbox.ts";
import { DEFAULT_ADDRESS, isConversionRate } from "./sensors/tmp102.ts";

const DEVICE_DIR = dirname(fileURLToPath(import.meta.url));

type Kind = "string" | "boolean";
type OptionDef = { key: string; flag: string; env: string; kind: Kind; help: string; default?: string };

/** Every setting: its flag, its environment variable, what it does. */
export const OPTIONS: readonly OptionDef[] = [
  { key: "endpoint", flag: "endpoint", env: "IOT_ENDPOINT", kind: "string", default: "http://localhost:8787", help: "endpoint URL (http[s]://host[:port])" },
  { key: "id", flag: "id", env: "IOT_ID", kind: "string", default: "the token's id, else the hostname", help: "device id (1-64 of A-Z a-z 0-9 . _ -)" },
  { key: "token", flag: "token", env: "IOT_TOKEN", kind: "string", help: "device token <id>.<secret> from the operator; sent as Authorization: Bearer" },
  { key: "adminToken", flag: "admin-token", env: "IOT_ADMIN_TOKEN", kind: "string", help: "operator token, only for provision / rotate / revoke (never stored)" },
  { key: "ip", flag: "ip", env: "IOT_IP", kind: "string", default: "first non-loopback IPv4", help: "LAN IPv4 address reported as x-iot-ip" },
  { key: "sensor", flag: "sensor", env: "IOT_SENSOR", kind: "string", default: "tmp102; simulated with --simulate", help: "where readings come from: tmp102 (the I2C sensor; while it is missing, no readings and the reason) or simulated (invented values, marked simulated on the dashboard)" },
  { key: "simulate", flag: "simulate", env: "IOT_SIMULATE", kind: "boolean", default: "false", help: "short for --sensor simulated (a demo without hardware)" },
  { key: "i2cBus", flag: "i2c-bus", env: "IOT_I2C_BUS", kind: "string", default: "1", help: "I2C bus number (/dev/i2c-N)" },
  { key: "i2cAddress", flag: "i2c-address", env: "IOT_I2C_ADDRESS", kind: "string", default: "0x48", help: "TMP102 address (0x48-0x4B, by its ADD0 pin)" },
  { key: "tmp102Rate", flag: "tmp102-rate", env: "IOT_TMP102_RATE", kind: "string", default: "4", help: "TMP102 conversion rate in Hz: 0.25, 1, 4 or 8" },
  { key: "tmp102Extended", flag: "tmp102-extended", env: "IOT_TMP102_EXTENDED", kind: "boolean", default: "false", help: "TMP102 extended (13-bit) mode, up to 150 °C" },
  { key: "led", flag: "led", env: "IOT_LED", kind: "boolean", default: "true", help: "blink the heartbeat LED (--no-led to skip)" },
  { key: "ledGpio", flag: "led-gpio", env: "IOT_LED_GPIO", kind: "string", default: "12", help: "header GPIO of the heartbeat LED" },
  { key: "stateDir", flag: "state-dir", env: "IOT_STATE_DIR", kind: "string", default: "device/.state/<id>", help: "where the outbox and persisted state live" },
  { key: "outboxMax", flag: "outbox-max", env: "IOT_OUTBOX_MAX", kind: "string", default: String(DEFAULT_OUTBOX_MAX), help: "outbox bound in readings; the oldest are dropped past it" },
  { key: "outbox", flag: "outbox", env: "IOT_OUTBOX", kind: "string", default: "memory", help: "memory: readings wait in memory and only those not acked within --spill-ms reach the disk (a power cut may lose those not yet spilled); strict: every reading written to disk before it is sent" },
  { key: "spillMs", flag: "spill-ms", env: "IOT_SPILL_MS", kind: "string", default: String(DEFAULT_SPILL_MS), help: "memory outbox: readings not acked this long are written to disk, in one group (the power-cut window while watched or offline)" },
  { key: "spillUnwatchedMs", flag: "spill-unwatched-ms", env: "IOT_SPILL_UNWATCHED_MS", kind: "string", default: String(DEFAULT_SPILL_UNWATCHED_MS), help: "memory outbox: the same while online and nobody watches (the room batches, so readings wait for its delay): the power-cut window then" },
  { key: "spillMax", flag: "spill-max", env: "IOT_SPILL_MAX", kind: "string", default: String(DEFAULT_SPILL_MAX), help: "memory outbox: ...or once this many wait (the power-cut window in readings)" },
  { key: "scale", flag: "scale", env: "IOT_SCALE", kind: "string", default: "F", help: "scale until the endpoint says otherwise (F or C)" },
  { key: "intervalMs", flag: "interval-ms", env: "IOT_INTERVAL_MS", kind: "string", default: "1000", help: "sample interval until the endpoint says otherwise" },
  { key: "backoffMaxMs", flag: "backoff-max-ms", env: "IOT_BACKOFF_MAX_MS", kind: "string", default: "15000", help: "longest wait between reconnection attempts" },
  { key: "quiet", flag: "quiet", env: "IOT_QUIET", kind: "boolean", default: "false; true under systemd", help: "no `Temperature: …` line per reading (a summary line every --summary-ms instead)" },
  { key: "summaryMs", flag: "summary-ms", env: "IOT_SUMMARY_MS", kind: "string", default: "600000", help: "with per-reading lines off, one status line this often" },
  { key: "releaseKey", flag: "release-key", env: "IOT_RELEASE_KEY", kind: "string", help: "the fleet's release key (public half, base64url): only releases signed with it are installed; none: updates are off (docs/updates.md)" },
  { key: "config", flag: "config", env: "IOT_CONFIG", kind: "string", help: "JSON file with any of these settings (camelCase keys)" },
];

export const COMMANDS = {
  run: "run the agent (the default)",
  config: "GET /iot/config once and print the JSON answer",
  update: "GET /iot/update once and print the JSON answer",
  post: "POST /iot/data {iot: <now>} once and print the JSON answer",
  doctor: "check this device is ready (OS, Node, I2C, TMP102, GPIO, state dir, clock, TCP, endpoint, token, systemd unit); exit 1 if not",
  provision: "as the operator (--admin-token): create --id's credentials and print its token, shown once",
  rotate: "as the operator: new credentials for --id; the old token stops working at once",
  revoke: "as the operator: cut --id off now, until provisioned again",
} as const;
export const OPERATOR_COMMANDS: readonly Command[] = ["provision", "rotate", "revoke"];
export type Command = keyof typeof COMMANDS;

const bool = z.preprocess((v) => {
  if (typeof v !== "string") return v;
  const s = v.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(s)) return true;
  if (["0", "false", "no", "off"].includes(s)) return false;
  return v;
}, z.boolean());
const int = (min: number, max: number) =>
  z.preprocess((v) => (typeof v === "string" && v.trim() !== "" ? Number(v) : v), z.number().int().min(min).max(max));

/** Token: `<device id>.<secret>`; the id part names the device. */
const Token = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\.[A-Za-z0-9_-]{16,256}$/, "token: <device id>.<secret>");

export const AgentConfig = z.strictObject({
  endpoint: z.url({ protocol: /^https?$/, error: "endpoint: an http:// or https:// URL" }),
  id: DeviceId,
  token: Token.optional(),
  adminToken: z.string().min(1).max(256).optional(),
  ip: z.ipv4(),
  /** The temperature source, chosen explicitly; never a silent fallback from one to the other. */
  sensor: SensorKind,
  /** Same as `sensor === "simulated"` (kept for the code and scripts that know only --simulate). */
  simulate: bool,
  i2cBus: int(0, 255),
  i2cAddress: int(0x03, 0x77),
  tmp102Rate: z.preprocess((v) => (typeof v === "string" ? Number(v) : v), z.number().refine(isConversionRate, "one of 0.25, 1, 4, 8")),
  tmp102Extended: bool,
  led: bool,
  ledGpio: int(0, 27),
  stateDir: z.string().min(1),
  outboxMax: int(1, 100_000_000),
  /** Optional in the type (defaults: memory, 30 s, 150 s, 300), so a configuration built by hand needs none of them. */
  outbox: z.enum(["memory", "strict"], { error: "outbox: memory or strict" }).optional(),
  spillMs: int(0, 3_600_000).optional(),
  spillUnwatchedMs: int(0, 3_600_000).optional(),
  spillMax: int(1, 5_000).optional(),
  scale: Scale,
  intervalMs: z.preprocess((v) => (typeof v === "string" ? Number(v) : v), IntervalMs),
  backoffMaxMs: int(1_000, 3_600_000),
  quiet: bool,
  summaryMs: int(1_000, 86_400_000).optional(),
  releaseKey: Ed25519PublicKey.optional(),
});
export type AgentConfig = z.infer<typeof AgentConfig> & { tmp102Rate: 0.25 | 1 | 4 | 8 };

export class ConfigError extends Error {
  override name = "ConfigError";
}

export type Loaded = { command: Command; help: boolean; config: AgentConfig };

export type LoadInputs = {
  argv?: string[];
  env?: Record<string, string | undefined>;
  readFile?: (path: string) => string;
  /** Injectable for tests. */
  hostname?: () => string;
  detectIp?: () => string;
};

/** Parse argv + env (+ the config file they name) into one validated configuration. */
export function loadConfig(inputs: LoadInputs = {}): Loaded {
  const argv = inputs.argv ?? process.argv.slice(2);
  const env = inputs.env ?? process.env;
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      allowNegative: true,
      strict: true,
      options: {
        help: { type: "boolean", short: "h" },
        ...Object.fromEntries(OPTIONS.map((o) => [o.flag, { type: o.kind }])),
      },
    });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message} (see --help)`);
  }
  const [command = "run", ...extra] = parsed.positionals;
  if (!(command in COMMANDS)) throw new ConfigError(`unknown command ${JSON.stringify(command)} (see --help)`);
  if (extra.length) throw new ConfigError(`unexpected argument ${JSON.stringify(extra[0])} (see --help)`);

  const fromFlags: Record<string, unknown> = {};
  const fromEnv: Record<string, unknown> = {};
  for (const o of OPTIONS) {
    const flag = parsed.values[o.flag];
    if (flag !== undefined) fromFlags[o.key] = flag;
    const e = env[o.env];
    if (e !== undefined && e !== "") fromEnv[o.key] = e;
  }
  const file = (fromFlags.config ?? fromEnv.config) as string | undefined;
  const fromFile = file ? readConfigFile(file, inputs.readFile) : {};

  const pick = (key: string) => fromFlags[key] ?? fromEnv[key] ?? fromFile[key];
  const merged: Record<string, unknown> = {};
  for (const o of OPTIONS) {
    if (o.key === "config") continue;
    merged[o.key] = pick(o.key) ?? o.default;
  }
  // Defaults that depend on other settings.
  const token = pick("token") as string | undefined;
  // Ids may contain dots; the secret (base64url) never does, so the id is everything before the last one.
  const tokenId = typeof token === "string" && token.includes(".") ? token.slice(0, token.lastIndexOf(".")) : undefined;
  merged.id = pick("id") ?? tokenId ?? deviceIdFromHostname((inputs.hostname ?? hostname)());
  merged.token = token;
  merged.adminToken = pick("adminToken");
  merged.ip = pick("ip") ?? (inputs.detectIp ?? detectLanIpv4)();
  merged.stateDir = pick("stateDir") ?? join(DEVICE_DIR, ".state", String(merged.id));
  // Under systemd (it sets INVOCATION_ID) a line per reading is ~86,000 journal lines a day:
  // state changes and a periodic summary instead, unless asked (IOT_QUIET=false).
  merged.quiet = pick("quiet") ?? (env.INVOCATION_ID ? "true" : "false");
  // --sensor is the choice; --simulate is its short form. Both given and disagreeing is an error,
  // not a guess: a device meant to be real must never stream invented values by a flag's accident.
  const simulate = bool.safeParse(pick("simulate") ?? "false");
  const sensor = pick("sensor");
  if (simulate.success && simulate.data && sensor !== undefined && sensor !== "simulated") {
    throw new ConfigError(`--simulate (IOT_SIMULATE) asks for the simulated sensor but --sensor (IOT_SENSOR) says ${JSON.stringify(sensor)}: give one of them`);
  }
  merged.sensor = sensor ?? (simulate.success && simulate.data ? "simulated" : "tmp102");
  merged.simulate = merged.sensor === "simulated" ? true : (pick("simulate") ?? "false");

  const result = AgentConfig.safeParse(merged);
  if (!result.success) throw new ConfigError(`invalid configuration: ${describeIssues(result.error)}`);
  const config = result.data as AgentConfig;
  if (tokenId !== undefined && tokenId !== config.id) {
    throw new ConfigError(`the token is for device ${JSON.stringify(tokenId)} but the id is ${JSON.stringify(config.id)}`);
  }
  config.stateDir = resolve(config.stateDir);
  if (OPERATOR_COMMANDS.includes(command as Command) && !config.adminToken) {
    throw new ConfigError(`${command} needs the operator token: --admin-token or IOT_ADMIN_TOKEN`);
  }
  return { command: command as Command, help: parsed.values.help === true, config };
}

function readConfigFile(path: string, read: (path: string) => string = (p) => readFileSync(p, "utf8")): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(read(path));
  } catch (err) {
    throw new ConfigError(`config file ${path}: ${(err as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new ConfigError(`config file ${path}: not a JSON object`);
  const known = new Set(OPTIONS.map((o) => o.key));
  const unknown = Object.keys(json).filter((k) => !known.has(k) || k === "config");
  if (unknown.length) throw new ConfigError(`config file ${path}: unknown setting ${unknown.map((k) => JSON.stringify(k)).join(", ")}`);
  return json as Record<string, unknown>;
}

/** A hostname made into a valid device id (`raspberrypi` → `raspberrypi`, `my pi!` → `my-pi`). */
export function deviceIdFromHostname(name: string): string {
  const id = name.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[._-]+/, "").slice(0, 64);
  return id || "pi";
}

/** The first non-internal IPv4 address (what the old agent sent as x-iot-ip). */
export function detectLanIpv4(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) {
      if (a.family === "IPv4" && !a.internal) return a.address;
    }
  }
  return "127.0.0.1";
}

export function helpText(): string {
  const rows = OPTIONS.map((o) => {
    const flag = o.kind === "boolean" ? `--[no-]${o.flag}` : `--${o.flag} <value>`;
    const def = o.default ? ` (default: ${o.default})` : "";
    return `  ${flag.padEnd(26)} ${o.env.padEnd(20)} ${o.help}${def}`;
  });
  const commands = Object.entries(COMMANDS).map(([name, what]) => `  ${name.padEnd(8)} ${what}`);
  return [
    "Usage: npm run device -- [command] [options]",
    "       node device/cli.ts [command] [options]      (node iot-agent.mjs … for the bundle, see npm run device:build)",
    "",
    "Commands:",
    ...commands,
    "",
    "Options (flag, environment variable; flags win over the environment, which wins over --config's file):",
    ...rows,
    `  ${"-h, --help".padEnd(26)} ${"".padEnd(20)} print this help`,
    "",
    "Example: npm run device -- --simulate --endpoint http://localhost:8787 --token dev-1.<secret>",
    "         npm run device -- provision --endpoint https://iot.example.com --id pi-kitchen --admin-token <operator token>",
  ].join("\n");
}
