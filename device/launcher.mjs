#!/usr/bin/env node
// The launcher: what the systemd unit runs. It starts the agent release `current` points to
// in the state directory (else the agent installed beside it), and is never replaced by an
// update, so a bad release can always be undone. Plain JavaScript with no imports beyond
// Node's own: nothing an update ships can break it. docs/updates.md has the whole story.
//
// A release on trial (update/trial.json, written by the agent before it switched `current`)
// must come up, connect and have its hello acknowledged (the agent says so over IPC) within
// IOT_TRIAL_MS. Each start of it counts (in the file, so a power cut counts too); past
// IOT_TRIAL_BOOTS starts, or when the time runs out, `current` goes back to the previous
// release, the version goes on update/failed.json (never installed again) and the reason into
// update/result.json, which the agent it returns to reports to its room as `rolled-back`.
//
// Exit codes: the agent's 75 means "start `current` again" (it just switched); a release on
// trial that exits is started again here (counted); any other exit outside a trial ends the
// launcher with the agent's code, and systemd restarts it (Restart=always).
//
//   node launcher.mjs [agent options…]       IOT_STATE_DIR (or --state-dir) names the state directory
//   IOT_AGENT_ENTRY                          the installed agent, when `current` names no release
//                                            (default: iot-agent.mjs beside this file; npm start
//                                            names device/cli.ts, the agent from source)
import { spawn } from "node:child_process";
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SWITCH_EXIT_CODE = 75;
const here = dirname(fileURLToPath(import.meta.url));
const trialMs = positiveInt("IOT_TRIAL_MS", 120_000);
const trialBoots = positiveInt("IOT_TRIAL_BOOTS", 3);
const stateArg = flagValue("--state-dir");
if (!stateArg && !process.env.IOT_STATE_DIR) {
  console.error("launcher: set IOT_STATE_DIR (or --state-dir): releases and the trial live there");
  process.exit(2);
}
const stateDir = resolve(stateArg ?? process.env.IOT_STATE_DIR);
const installed = process.env.IOT_AGENT_ENTRY ? resolve(process.env.IOT_AGENT_ENTRY) : join(here, "iot-agent.mjs");
// The same names as device/update/layout.ts.
const paths = {
  current: join(stateDir, "current"),
  release: (v) => join(stateDir, "releases", v),
  trial: join(stateDir, "update", "trial.json"),
  result: join(stateDir, "update", "result.json"),
  failed: join(stateDir, "update", "failed.json"),
};

let child = null;
let stopping = false;
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) {
  process.on(signal, () => {
    stopping = true;
    if (child && child.exitCode === null) child.kill(signal);
    else process.exit(0);
  });
}

for (;;) {
  const current = currentVersion();
  let trial = readJson(paths.trial);
  // A trial for another version than `current` is left over from a power cut before the switch.
  if (trial && trial.version !== current) {
    rmSync(paths.trial, { force: true });
    trial = null;
  }
  if (trial && trial.boots >= trialBoots) {
    rollBack(trial, `it did not pass its trial in ${trial.boots} starts${trial.lastFailure ? ` (last: ${trial.lastFailure})` : ""}`);
    continue;
  }
  const entry = current ? join(paths.release(current), "iot-agent.mjs") : installed;
  if (!existsSync(entry)) {
    if (trial) {
      rollBack(trial, `${entry} is missing`);
      continue;
    }
    if (current) {
      log(`release ${current} has no iot-agent.mjs; starting the installed agent`);
      unlinkSync(paths.current);
      continue;
    }
    console.error(`launcher: no agent to start (${entry} is missing)`);
    process.exit(1);
  }
  if (trial) {
    trial.boots += 1;
    writeJsonAtomic(paths.trial, trial);
    log(`starting ${current} on trial (start ${trial.boots} of ${trialBoots}; ${trialMs / 1000} s to connect)`);
  } else {
    log(`starting ${current ?? "the installed agent"}`);
  }
  const outcome = await run(entry, trial);
  if (stopping) process.exit(outcome.code ?? 0);
  if (outcome.code === SWITCH_EXIT_CODE) continue;
  if (trial && !outcome.passed) {
    const failure = outcome.timedOut ? `no hello acknowledged within ${trialMs / 1000} s` : `exited with ${outcome.code ?? outcome.signal} before its hello was acknowledged`;
    if (outcome.timedOut) {
      rollBack(trial, failure);
    } else {
      writeJsonAtomic(paths.trial, { ...trial, lastFailure: failure });
      await new Promise((r) => setTimeout(r, 1_000));
    }
    continue;
  }
  // Outside a trial: the service manager restarts us, as it always restarted the agent.
  process.exit(outcome.code ?? 1);
}

/** One run of the agent: resolves with how it ended and whether its trial passed. */
function run(entry, trial) {
  return new Promise((resolveRun) => {
    let passed = false;
    let timedOut = false;
    const env = { ...process.env, IOT_LAUNCHER: here, IOT_STATE_DIR: stateDir, IOT_TRIAL: trial ? trial.version : "" };
    child = spawn(process.execPath, [...process.execArgv, entry, ...process.argv.slice(2)], { stdio: ["inherit", "inherit", "inherit", "ipc"], env });
    let timer = null;
    if (trial) {
      timer = setTimeout(() => {
        timedOut = true;
        log(`${trial.version}: no hello acknowledged within ${trialMs / 1000} s; stopping it`);
        child.kill("SIGTERM");
        setTimeout(() => child.exitCode === null && child.kill("SIGKILL"), 10_000).unref();
      }, trialMs);
    }
    child.on("message", (msg) => {
      if (!trial || passed || msg?.type !== "trial-passed" || msg.version !== trial.version) return;
      passed = true;
      clearTimeout(timer);
      rmSync(paths.trial, { force: true });
      log(`${trial.version} passed its trial`);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolveRun({ code, signal, passed, timedOut });
    });
  });
}

/** Back to the release before the trial (or the installed agent), and the verdict kept for the agent to report. */
function rollBack(trial, reason) {
  const to = trial.previous && existsSync(join(paths.release(trial.previous), "iot-agent.mjs")) ? trial.previous : null;
  if (to) switchTo(to);
  else rmSync(paths.current, { force: true });
  const failed = readJson(paths.failed) ?? [];
  if (!failed.includes(trial.version)) writeJsonAtomic(paths.failed, [...failed, trial.version]);
  writeJsonAtomic(paths.result, { version: trial.version, state: "rolled-back", reason: reason.slice(0, 280), to, at: Date.now() });
  rmSync(paths.trial, { force: true });
  log(`${trial.version} rolled back to ${to ?? "the installed agent"}: ${reason}`);
}

function currentVersion() {
  try {
    return basename(readlinkSync(paths.current));
  } catch {
    return null;
  }
}

function switchTo(version) {
  const tmp = `${paths.current}.tmp`;
  rmSync(tmp, { force: true });
  symlinkSync(join("releases", version), tmp);
  renameSync(tmp, paths.current);
  syncPath(stateDir);
}

function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    // Missing, or torn by a power cut mid-write: treated as absent (writes are atomic, so this is rare).
    return null;
  }
}

function writeJsonAtomic(path, value) {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value)}\n`, { mode: 0o600 });
  syncPath(tmp);
  renameSync(tmp, path);
  syncPath(dirname(path));
}

function syncPath(path) {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function flagValue(name) {
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) return args[i + 1];
    if (args[i].startsWith(`${name}=`)) return args[i].slice(name.length + 1);
  }
  return undefined;
}

function positiveInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`launcher: ${name} must be a positive integer, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

function log(line) {
  console.log(`launcher: ${line}`);
}
