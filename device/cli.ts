#!/usr/bin/env node
/**
 * The device agent's command line.
 *
 *   node device/cli.ts [run] [options]   the agent (what the systemd unit runs)
 *   node device/cli.ts config|update|post one REST call, its JSON answer printed
 *   node device/cli.ts doctor            is this device ready? one line per check, exit 1 if not
 *   node device/cli.ts provision|rotate|revoke --id X --admin-token T   the operator's device credentials
 *
 * `npm run device -- …` is the same with the project's Node 22. `--help` lists every option.
 */
import { Agent } from "./agent.ts";
import { COMMANDS, ConfigError, OPERATOR_COMMANDS, helpText, loadConfig, type Loaded } from "./config.ts";
import { formatChecks, runDoctor } from "./doctor.ts";
import { EndpointClient } from "./http.ts";
import { consoleLogger, errorText } from "./log.ts";
import { FW_VERSION } from "./version.ts";

async function main(): Promise<number> {
  let loaded: Loaded;
  try {
    loaded = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (process.argv.includes("--help") || process.argv.includes("-h")) {
      console.log(helpText());
      return 0;
    }
    console.error(`iot-agent: ${err.message}`);
    return 2;
  }
  if (loaded.help) {
    console.log(helpText());
    return 0;
  }
  const { command, config } = loaded;
  if (command === "run") return run(new Agent(config));
  if (command === "doctor") {
    const checks = await runDoctor(config);
    console.log(formatChecks(checks));
    return checks.some((c) => c.status === "fail") ? 1 : 0;
  }

  const operator = OPERATOR_COMMANDS.includes(command);
  const client = new EndpointClient({
    endpoint: new URL(config.endpoint),
    id: config.id,
    ip: config.ip,
    token: operator ? config.adminToken : config.token,
  });
  try {
    const calls: Record<Exclude<typeof command, "run" | "doctor">, () => Promise<unknown>> = {
      config: () => client.config(),
      update: () => client.update(FW_VERSION),
      post: () => client.postData({ iot: Date.now() }),
      provision: () => client.provision(config.id),
      rotate: () => client.rotate(config.id),
      revoke: () => client.revoke(config.id),
    };
    const answer = await calls[command]();
    console.log(JSON.stringify(answer, null, 2));
    return 0;
  } catch (err) {
    console.error(`iot-agent ${command} (${COMMANDS[command]}): ${errorText(err)}`);
    return 1;
  }
}

/** Run until SIGINT/SIGTERM; then stop cleanly (LED off, outbox closed) and exit 0. */
function run(agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      consoleLogger.info(`${signal}: stopping`);
      agent.stop().then(() => resolve(0), reject);
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
    // A bug in a callback must not take the device offline: log it and keep sampling (systemd restarts us if we die anyway).
    process.on("uncaughtException", (err) => consoleLogger.error(`Unexpected error: ${err.stack ?? err}`));
    process.on("unhandledRejection", (err) => consoleLogger.error(`Unexpected rejection: ${errorText(err)}`));
    agent.start().catch(reject);
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`iot-agent: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
