#!/usr/bin/env node
// `npm start`: the whole demo with no hardware. The endpoint (scripts/endpoint.mjs,
// wrangler dev) and, once it answers, one simulated device streaming into it.
// Ctrl-C stops both; if either stops on its own, the other is stopped too.
//
//   PORT, HOST, STATE_DIR, DEV_VARS   as for `npm run endpoint`
//   DEVICE_ID                         the simulated device's id (default sim-1)
//   IOT_*                             any agent setting (see `npm run device -- --help`)
import { spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const port = process.env.PORT || "8787";
const host = process.env.HOST || "127.0.0.1";
// An endpoint bound to every interface is still reached locally on the loopback address.
const local = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
const base = `http://${local.includes(":") ? `[${local}]` : local}:${port}`;
const deviceId = process.env.DEVICE_ID || "sim-1";

const children = new Set();
let stopping = false;

function start(name, args) {
  const child = spawn(process.execPath, args, { cwd: root, stdio: "inherit", env: process.env });
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

start("endpoint", [join(root, "scripts/endpoint.mjs")]);

/** Wait until the endpoint answers a cheap route (wrangler dev takes a few seconds to start). */
async function waitForEndpoint(timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (!stopping && Date.now() < deadline) {
    try {
      const res = await fetch(`${base}/iot/update`, { signal: AbortSignal.timeout(2_000) });
      if (res.ok) return true;
    } catch {
      // Not listening yet: keep polling until the deadline.
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  return false;
}

if (await waitForEndpoint()) {
  console.log(`start: endpoint up at ${base}; starting simulated device ${deviceId} (dashboard: ${base}/)`);
  const agentArgs = ["--disable-warning=ExperimentalWarning", join(root, "device/cli.ts"), "--simulate", "--id", deviceId];
  if (!process.env.IOT_ENDPOINT) agentArgs.push("--endpoint", base);
  start("device", agentArgs);
} else if (!stopping) {
  console.error(`start: the endpoint did not answer at ${base} within 120 s`);
  stop(1);
}
