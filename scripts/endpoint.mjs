#!/usr/bin/env node
// `npm run endpoint`: the endpoint alone, in Miniflare/workerd directly (state on
// disk), with nothing that needs the internet. `npm start` and the container run
// it this way; `DIRECT=0` runs it under wrangler dev instead (reload on edit, as
// `npm run dev` does).
//
//   PORT       port to listen on (default 8787)
//   HOST       address to bind (default 127.0.0.1; 0.0.0.0 for the LAN / a container)
//   STATE_DIR  where rooms keep their SQLite state (default .wrangler/state)
//   DEV_VARS   the secrets file (default .dev.vars, created on first run)
//   TLS_DIR    make a self-signed pair for nginx there if none is (the container: /tls);
//   LAN_HOSTS  with the names and addresses it is for, comma-separated (scripts/lib/lan-tls.mjs)
//   DIRECT=0   wrangler dev instead of Miniflare directly (the default, DIRECT=1, has no
//              proxy Worker and no file watcher; see scripts/lib/direct.mjs)
import { spawn, spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDevVars } from "./lib/dev-vars.mjs";
import { portFree } from "./lib/port.mjs";
import { lockStateDir } from "./lib/state-lock.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const port = process.env.PORT || "8787";
const host = process.env.HOST || "127.0.0.1";
const stateDir = resolve(root, process.env.STATE_DIR || ".wrangler/state");
const devVars = resolve(root, process.env.DEV_VARS || ".dev.vars");

// Before anything prints or is built: a port in use fails with one line saying what to change
// (workerd would only fail after the banner, with a stack and advice that does not apply here).
if (!(await portFree(host, port))) {
  console.error(`endpoint: port ${port} on ${host} is already in use; pick another with PORT=<n> npm run endpoint`);
  process.exit(1);
}

// One endpoint per state directory: two on the same SQLite files corrupt each other's rooms.
const lock = lockStateDir(stateDir, port);
if (!lock.ok) {
  console.error(
    `endpoint: ${stateDir} is in use by another endpoint (pid ${lock.pid}, port ${lock.port}); stop it, ` +
      `or give this one its own state: STATE_DIR=<dir> (and, for npm start, DEVICE_ID=<id>)`,
  );
  process.exit(1);
}

const secrets = ensureDevVars(devVars);
if (process.env.TLS_DIR) {
  const { ensureTlsPair, tlsHosts } = await import("./lib/lan-tls.mjs");
  const pair = await ensureTlsPair(resolve(process.env.TLS_DIR), tlsHosts((process.env.LAN_HOSTS ?? "").split(/[\s,]+/)));
  console.log(
    `endpoint: TLS for nginx: ${pair.made ? "made" : "kept"} ${pair.cert} (self-signed, for ${pair.hosts.join(", ")})\n` +
      `          SHA-256 fingerprint ${pair.fingerprint}: check a copy of cert.pem against it before a Pi trusts it`,
  );
}
const shownHost = host === "0.0.0.0" ? "localhost" : host;
console.log(
  `endpoint: sign in at http://${shownHost}:${port} with the operator token ${secrets.ADMIN_TOKEN}\n` +
    `          (read-only viewers: ${secrets.VIEWER_TOKEN}); both live in ${devVars}`,
);
if (process.env.SKIP_BUILD !== "1") {
  const built = spawnSync(process.execPath, [join(root, "dashboard/build.mjs")], { stdio: "inherit" });
  if (built.status !== 0) process.exit(built.status ?? 1);
}

// Miniflare without wrangler dev's proxy and watcher (scripts/lib/direct.mjs), unless
// DIRECT=0 asks for wrangler dev. `--var NAME:VALUE` works in both.
if (process.env.DIRECT !== "0") {
  const { startDirect } = await import("./lib/direct.mjs");
  const argv = process.argv.slice(2);
  // Not behind Cloudflare's edge: a client-sent CF-Connecting-IP is not an address (worker/rate-limit.ts).
  const vars = { LOCAL_ENDPOINT: "true" };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] !== "--var") throw new Error(`DIRECT=1 takes only --var NAME:VALUE, got ${argv[i]}`);
    const [name, ...value] = (argv[++i] ?? "").split(":");
    vars[name] = value.join(":");
  }
  const mf = await startDirect({ root, host, port, stateDir, secrets, vars });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => void mf.dispose().finally(() => process.exit(0)));
  }
} else {
  runWranglerDev();
}

function runWranglerDev() {
  const args = [
    join(root, "node_modules/wrangler/bin/wrangler.js"),
    "dev",
    "--port", port,
    "--ip", host,
    "--persist-to", stateDir,
    "--env-file", devVars,
    "--show-interactive-dev-session=false",
    // Not behind Cloudflare's edge: a client-sent CF-Connecting-IP is not an address (worker/rate-limit.ts).
    "--var", "LOCAL_ENDPOINT:true",
    ...process.argv.slice(2),
  ];
  const child = spawn(process.execPath, args, {
    cwd: root,
    stdio: "inherit",
    env: {
      ...process.env,
      // No telemetry, no request.cf download: these machines (and many LANs) have no internet.
      WRANGLER_SEND_METRICS: "false",
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      // wrangler dev's Local Explorer (/cdn-cgi/local/explorer/api: SQL on every Durable Object,
      // no credentials, guarded only by a Host check any client can pass) and its trace store
      // (request URLs, socket tickets included) are off: nothing that reads or writes state may
      // be reachable without auth, in any run mode.
      X_LOCAL_EXPLORER: "false",
      X_LOCAL_OBSERVABILITY: "false",
    },
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => child.kill(signal));
  }
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
}
