#!/usr/bin/env node
// `npm start`: the whole demo with no hardware. The endpoint (scripts/endpoint.mjs,
// Miniflare/workerd directly: the fast mode the container runs too) and, once it
// answers, one simulated device streaming into it. `npm run dev` (--dev) is the
// same under wrangler dev, which reloads the Worker on every edit.
// Ctrl-C or SIGTERM (an IDE's stop button) stops everything it started: each child
// runs in a process group of its own (so workerd and esbuild under the endpoint go
// too), and this script exits only once those groups are empty and the port is free.
// Killed outright (SIGKILL), it cannot: its children notice their stdin pipe close and
// stop themselves (scripts/lib/exit-with-parent.mjs). A second npm start on another
// PORT with the same STATE_DIR is refused by the endpoint's lock (scripts/lib/state-lock.mjs).
// The endpoint stopping stops the rest; the agent crashing is restarted, unless it
// crash-loops. One banner says when the device is streaming; VERBOSE=1 shows every reading.
// The simulated device runs as the unit runs a Pi's agent: under device/launcher.mjs, its
// releases beside its outbox (device/.state/<id>/releases), with the fleet's release key pinned
// when the operator has made one (`npm run release -- keygen`), so over-the-air updates work on
// it end to end (docs/updates.md, "Try it with npm start").
//
//   PORT, HOST, STATE_DIR, DEV_VARS   as for `npm run endpoint`
//   DEVICE_ID                         the simulated device's id (default sim-1)
//   VERBOSE=1                         the agent's `Temperature: …` line per reading (quiet by default)
//   IOT_*                             any agent setting (see `npm run device -- --help`)
//   IOT_RELEASE_KEY_FILE              the release key whose public half is pinned (as `npm run release`)
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, watchFile, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ensureDevVars } from "./lib/dev-vars.mjs";
import { portFree } from "./lib/port.mjs";
import { publicKeyFromFile, releaseKeyFile } from "./lib/release-key.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const port = process.env.PORT || "8787";
const host = process.env.HOST || "127.0.0.1";
// An endpoint bound to every interface is still reached locally on the loopback address.
const local = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
const base = `http://${local.includes(":") ? `[${local}]` : local}:${port}`;
const deviceId = process.env.DEVICE_ID || "sim-1";
const devVars = resolve(root, process.env.DEV_VARS || ".dev.vars");
// The simulated device's token lives beside its outbox (git-ignored), like IOT_TOKEN in a Pi's env file.
const tokenFile = join(root, "device/.state", deviceId, "token");
// Its state (outbox, releases, update records): the launcher's IOT_STATE_DIR, as /var/lib/iot-agent on a Pi.
const deviceState = resolve(root, process.env.IOT_STATE_DIR || join("device/.state", deviceId));

// Before anything starts, prints or is built: a port in use is either this demo already
// running (say so and touch nothing: no second agent on its outbox, no rebuild) or
// another program (say how to pick another port; `--port` is not an npm start flag).
if (!(await portFree(host, port))) {
  let ours = false;
  try {
    const res = await fetch(`${base}/api/session`, { signal: AbortSignal.timeout(2_000) });
    ours = res.status === 401 && (res.headers.get("content-type") ?? "").includes("json");
  } catch {
    // Nothing answering HTTP there: some other program holds the port.
  }
  console.error(
    ours
      ? `start: an endpoint is already running at ${base}/ (another npm start?); nothing started. Open it there, or stop it first.`
      : `start: port ${port} on ${host} is already in use by another program; pick another with PORT=<n> npm start`,
  );
  process.exit(1);
}

/** Live children: name → { child, pgid }. Each is the leader of its own process group. */
const children = new Map();
let stopping = false;
let exitCode = 0;

/** Signal a child's whole process group (the endpoint's workerd, esbuild, wrangler's own children). */
function signalGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    // ESRCH: the group is already empty, which is what stopping wants.
    return false;
  }
}

/** Preloaded into each child: it stops its group when this script dies, even by SIGKILL. */
const exitWithParent = pathToFileURL(join(root, "scripts/lib/exit-with-parent.mjs")).href;

function start(name, args, { env = {}, onExit, stdout = "inherit" } = {}) {
  const child = spawn(process.execPath, ["--import", exitWithParent, ...args], {
    cwd: root,
    // Own process group: a stop reaches its grandchildren, and the terminal's Ctrl-C reaches
    // only this script, which stops the groups in order. stdin is a pipe nobody writes to, not
    // the tty (a background group must not read it): it closes when this script dies, however
    // it dies, and the child's preload (exit-with-parent.mjs) then stops the child's group.
    detached: true,
    stdio: ["pipe", stdout, "inherit"],
    env: { ...process.env, ...env },
  });
  children.set(name, { child, pgid: child.pid });
  child.on("exit", (code, signal) => {
    if (stopping) return; // stop() waits for the whole group, not just its leader
    children.delete(name);
    // Its group may still hold grandchildren (a workerd): they go with it.
    signalGroup(child.pid, "SIGTERM");
    if (onExit) onExit(code, signal);
    else {
      console.error(`start: ${name} exited (${signal ?? code}); stopping the rest`);
      void stop(code || 1);
    }
  });
  return child;
}

const groupAlive = (pgid) => signalGroup(pgid, 0);

async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  exitCode = code;
  // Last started, first stopped: the agent goes before the endpoint it talks to, so it
  // does not log a lost connection on the way out.
  const groups = [...children.values()].map((c) => c.pgid).reverse();
  // A group that ignores SIGTERM for 10 s is not going to stop politely.
  const deadline = Date.now() + 10_000;
  for (const pgid of groups) {
    signalGroup(pgid, "SIGTERM");
    while (groupAlive(pgid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  }
  if (groups.some(groupAlive)) {
    for (const pgid of groups) signalGroup(pgid, "SIGKILL");
    exitCode ||= 1;
    await new Promise((r) => setTimeout(r, 200));
  }
  process.exit(exitCode);
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => void stop(0));

const dev = process.argv.includes("--dev");
start("endpoint", [join(root, "scripts/endpoint.mjs")], { env: { DIRECT: dev ? "0" : "1" } });

/** Wait until the endpoint answers a cheap route (wrangler dev takes a few seconds to start). */
async function waitForEndpoint(timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (!stopping && Date.now() < deadline) {
    try {
      // Unauthenticated, /api/session answers a JSON 401 as soon as the Worker is up.
      const res = await fetch(`${base}/api/session`, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 401) return true;
    } catch {
      // Not listening yet: keep polling until the deadline.
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  return false;
}

/**
 * The simulated device's token: the saved one if the endpoint still accepts it,
 * else fresh credentials from the operator API (provision, or rotate if the
 * device exists but we lost its token). What an operator does for a real Pi.
 */
async function deviceToken() {
  if (existsSync(tokenFile)) {
    const saved = readFileSync(tokenFile, "utf8").trim();
    const check = await fetch(`${base}/iot/update`, { headers: { authorization: `Bearer ${saved}` } });
    if (check.ok) return saved;
  }
  const admin = ensureDevVars(devVars).ADMIN_TOKEN;
  const call = (path, body) =>
    fetch(`${base}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  let res = await call("/api/devices", { id: deviceId });
  if (res.status === 409) res = await call(`/api/devices/${deviceId}/rotate`, {});
  if (!res.ok) throw new Error(`provisioning ${deviceId} answered ${res.status} ${await res.text()}`);
  const { token } = await res.json();
  mkdirSync(dirname(tokenFile), { recursive: true });
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  console.log(`start: provisioned ${deviceId}; its token is in ${tokenFile}`);
  return token;
}

/** Five crashes within a minute is a loop, not bad luck: give up rather than spin. */
const RESTART_DELAY_MS = 2_000;
/** The agent's "start `current` again" (device/update/layout.ts SWITCH_EXIT_CODE): a restart, not a crash. */
const SWITCH_EXIT_CODE = 75;
const CRASH_LOOP = { count: 5, windowMs: 60_000 };
const crashes = [];
// device/log.ts LINES.connected, byte for byte (the old agent's line; scripts grep for it).
const CONNECTED = "IoT Connected to the Endpoint.";
let announced = false;

/**
 * The simulated agent, restarted when it dies so the demo survives. Its stdout is
 * passed through line by line, watching for the connected line to print the banner.
 */
function startDevice(agentArgs, admin) {
  const child = start("device", agentArgs, {
    stdout: "pipe",
    env: deviceEnv(),
    onExit(code, signal) {
      // The launcher handles 75 itself; an agent run without it (or a key just made) starts again at once.
      if (code === SWITCH_EXIT_CODE || restartNow) {
        restartNow = false;
        if (!stopping) startDevice(agentArgs, admin);
        return;
      }
      const now = Date.now();
      crashes.push(now);
      while (crashes.length && now - crashes[0] > CRASH_LOOP.windowMs) crashes.shift();
      if (crashes.length >= CRASH_LOOP.count) {
        console.error(`start: the simulated device exited ${crashes.length} times within a minute (last: ${signal ?? code}); giving up, stopping the demo`);
        void stop(1);
        return;
      }
      console.error(`start: the simulated device exited (${signal ?? code}); restarting it in ${RESTART_DELAY_MS / 1000} s`);
      setTimeout(() => stopping || startDevice(agentArgs, admin), RESTART_DELAY_MS);
    },
  });
  let partial = "";
  child.stdout.on("data", (chunk) => {
    process.stdout.write(chunk);
    if (announced) return;
    partial += chunk.toString("utf8");
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    if (lines.includes(CONNECTED)) {
      announced = true;
      banner(admin);
    }
  });
}

/**
 * The release key pinned on the simulated device: IOT_RELEASE_KEY if set, else the public half of
 * the operator's key file (its private half is read here only to derive that; it goes nowhere).
 */
function releaseKeyPin() {
  if (process.env.IOT_RELEASE_KEY) return { key: process.env.IOT_RELEASE_KEY, from: "IOT_RELEASE_KEY" };
  const file = releaseKeyFile();
  try {
    const key = publicKeyFromFile(file);
    return key ? { key, from: file } : null;
  } catch (err) {
    console.error(`start: ${file}: ${err.message}; no release key pinned on ${deviceId}`);
    return null;
  }
}

let pinned = null;
let restartNow = false;

/** The launcher's environment: where the agent's state and the agent itself are, and the key. */
function deviceEnv() {
  pinned = releaseKeyPin();
  return {
    IOT_STATE_DIR: deviceState,
    // No bundle is installed beside the launcher here: the agent from source is "the installed agent".
    IOT_AGENT_ENTRY: join(root, "device/cli.ts"),
    // Empty, not absent: the agent's config ignores an empty setting, and no key means updates are off
    // (it reports rollouts as `unsupported`, which no rollout counts as a failure).
    IOT_RELEASE_KEY: pinned?.key ?? "",
  };
}

/**
 * A key made while the demo runs (`npm run release -- keygen` in another terminal) is pinned at
 * once: the device is restarted with it, as an installer re-pins a Pi. Polled (stat every 2 s):
 * the folder may not exist yet, which fs.watch cannot follow.
 */
function watchReleaseKey(agentArgs, admin) {
  if (process.env.IOT_RELEASE_KEY) return;
  const file = releaseKeyFile();
  watchFile(file, { interval: 2_000, persistent: false }, () => {
    if (stopping) return;
    const next = releaseKeyPin();
    if (!next || next.key === pinned?.key) return;
    const device = children.get("device");
    console.log(`start: release key ${next.key} found in ${file}; restarting ${deviceId} with it pinned`);
    if (!device) return; // between restarts: the next start reads it
    restartNow = true;
    signalGroup(device.pgid, "SIGTERM");
  });
}

function banner(admin) {
  console.log(
    [
      "",
      `start: ready. ${deviceId} is streaming; dashboard at ${base}/`,
      `  operator token: ${admin}`,
      `  add a real device: npm run device -- provision --endpoint ${base} --id <name> --admin-token ${admin}`,
      pinned
        ? `  updates: release key pinned (${pinned.from}); try npm run release -- --version 1.1.0 --rollout ${deviceId}`
        : `  updates: no release key pinned; make one with npm run release -- keygen (docs/updates.md)`,
      `  Ctrl-C stops everything${process.env.VERBOSE === "1" ? "" : "; VERBOSE=1 npm start shows every reading"}.`,
      "",
    ].join("\n"),
  );
}

if (await waitForEndpoint()) {
  try {
    const token = await deviceToken();
    const admin = ensureDevVars(devVars).ADMIN_TOKEN;
    console.log(`start: endpoint up at ${base}; starting simulated device ${deviceId}`);
    // Through the launcher, as the unit runs it; it passes these Node flags and options to the agent.
    const agentArgs = ["--disable-warning=ExperimentalWarning", join(root, "device/launcher.mjs"), "--simulate", "--id", deviceId];
    if (!process.env.IOT_ENDPOINT) agentArgs.push("--endpoint", base);
    // The banner is the news; a line per reading only when asked for.
    if (process.env.VERBOSE !== "1") agentArgs.push("--quiet");
    // In the environment, not argv: other users can read a process's arguments.
    process.env.IOT_TOKEN = token;
    startDevice(agentArgs, admin);
    watchReleaseKey(agentArgs, admin);
  } catch (err) {
    console.error(`start: ${err.message}`);
    void stop(1);
  }
} else if (!stopping) {
  console.error(`start: the endpoint did not answer at ${base} within 120 s`);
  void stop(1);
}
