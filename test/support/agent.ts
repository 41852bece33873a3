/**
 * The device agent users run (`npm run device -- --simulate`, device/cli.ts)
 * as a child process of a test, and what it knows about itself read from its
 * own output: the lines device/log.ts declares in LINES. Never from the room's
 * API: that would test the room, not the device.
 */
import { join } from "node:path";
import type { CommandBody, Scale } from "../../party/protocol";
import { LINES } from "../../device/log";
import { Proc, ROOT } from "./processes";

export type AgentOptions = {
  endpoint: string;
  /** `<id>.<secret>` from provisioning; the agent takes its id from it. */
  token: string;
  /** Where its outbox lives: a fresh directory per test unless a restart is the point. */
  stateDir: string;
  /** Reported as x-iot-ip; from the documentation range (RFC 5737), nothing connects to it. */
  ip?: string;
  /** More flags, e.g. ["--backoff-max-ms", "2000"]. */
  args?: string[];
  /** More environment, e.g. NODE_EXTRA_CA_CERTS for an endpoint with a self-signed certificate. */
  env?: Record<string, string>;
};

export type AgentReading = { temperature: number; scale: Scale };

/** LINES.temperature's shape: `Temperature: 22.61C`. */
const TEMPERATURE = /^Temperature: (-?\d+\.\d\d)([FC])$/;
/** LINES.commandApplied's shape: `Command cmd-…: {"cmd":"scale","scale":"C"} applied`. */
const COMMAND_APPLIED = /^Command \S+: (\{.*\}) applied$/;

/** The agent process, and what its lines say it did. */
export class Agent extends Proc {
  /** Every reading it made, in order, as it printed them. */
  get readings(): AgentReading[] {
    return this.lines.flatMap((l) => {
      const m = TEMPERATURE.exec(l);
      return m ? [{ temperature: Number(m[1]), scale: m[2] as Scale }] : [];
    });
  }

  get lastReading(): AgentReading | undefined {
    return this.readings.at(-1);
  }

  /** The scale it reads in now: its newest reading's. */
  get scale(): Scale | undefined {
    return this.lastReading?.scale;
  }

  /** Every command it applied, in order. */
  get commands(): CommandBody[] {
    return this.lines.flatMap((l) => {
      const m = COMMAND_APPLIED.exec(l);
      return m ? [JSON.parse(m[1]!) as CommandBody] : [];
    });
  }

  /** Wait until its link to the room is up (a line at or after `from`); returns the line's index. */
  connected(from = 0, timeoutMs = 30_000): Promise<number> {
    return this.waitForLine(LINES.connected, from, timeoutMs);
  }
}

export function startAgent(opts: AgentOptions): Agent {
  // Nothing from the test's own environment (IOT_QUIET, IOT_SCALE…) may change what it prints or does.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("IOT_")));
  return new Agent(
    "agent",
    process.execPath,
    [
      "--disable-warning=ExperimentalWarning",
      join(ROOT, "device/cli.ts"),
      "--simulate",
      "--no-led",
      "--endpoint", opts.endpoint,
      "--ip", opts.ip ?? "192.0.2.10",
      "--state-dir", opts.stateDir,
      ...(opts.args ?? []),
    ],
    // In the environment, not argv, as `npm start` does: other users can read a process's arguments.
    { env: { ...env, ...opts.env, IOT_TOKEN: opts.token } },
  );
}
