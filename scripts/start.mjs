#!/usr/bin/env node
// `npm start`: the whole demo with no hardware. The endpoint (scripts/endpoint.mjs,
// Miniflare/workerd directly: the fast mode the container runs too) and, once it
// answers, one simulated device streaming into it. `npm run dev` (--dev) is the
// same under wrangler dev, which reloads the Worker on every edit.
// Ctrl-C stops both; if either stops on its own, the other is stopped too.
//
//   PORT, HOST, STATE_DIR, DEV_VARS   as for `npm run endpoint`
//   DEVICE_ID                         the simulated device's id (default sim-1)
//   IOT_*                             any agent setting (see `npm run device -- --help`)
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDevVars } from "./lib/dev-vars.mjs";

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

const children = new Set();
let stopping = false;

function start(name, args, env = {}) {
  const child = spawn(process.execPath, args, { cwd: root, stdio: "inherit", env: { ...process.env, ...env } });
  children.add(child);
  child.on("exit", (code, signal) => {
    children.delete(child);
    if (!stopping) {
      console.error(`start: ${name} exited (${signal ?? code}); stopping the rest`);
      stop(code ?? 1);
    } else if (children.size === 0) {
      process.exit(exitCode);
    }
  });
  return child;
}

let exitCode = 0;
function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  exitCode = code;
  if (children.size === 0) process.exit(code);
  for (const child of children) child.kill("SIGTERM");
  // A child that ignores SIGTERM for 10 s is not going to stop politely.
  setTimeout(() => {
    for (const child of children) child.kill("SIGKILL");
    process.exit(code || 1);
  }, 10_000).unref();
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => stop(0));

const dev = process.argv.includes("--dev");
start("endpoint", [join(root, "scripts/endpoint.mjs")], { DIRECT: dev ? "0" : "1" });

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

if (await waitForEndpoint()) {
  try {
    const token = await deviceToken();
    console.log(`start: endpoint up at ${base}; starting simulated device ${deviceId} (dashboard: ${base}/)`);
    const agentArgs = ["--disable-warning=ExperimentalWarning", join(root, "device/cli.ts"), "--simulate", "--id", deviceId];
    if (!process.env.IOT_ENDPOINT) agentArgs.push("--endpoint", base);
    // In the environment, not argv: other users can read a process's arguments.
    process.env.IOT_TOKEN = token;
    start("device", agentArgs);
  } catch (err) {
    console.error(`start: ${err.message}`);
    stop(1);
  }
} else if (!stopping) {
  console.error(`start: the endpoint did not answer at ${base} within 120 s`);
  stop(1);
}
