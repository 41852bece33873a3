#!/usr/bin/env node
// `npm run release`: signed releases of the device agent, and their rollouts (docs/updates.md).
//
//   npm run release -- keygen [--key FILE] [--force]       the fleet's release key, made once
//   npm run release -- --version X.Y.Z [--notes TEXT] [--min-agent X.Y.Z] [--rollout all|N%|id,id] [--stages 5,25,100]
//                                                           build, pack, hash, sign, upload (and start a rollout)
//   npm run release -- list                                releases and rollouts, with counts per update state
//   npm run release -- rollout --release X.Y.Z --target all|N%|id,id [--stages 5,25,100] [--failure-threshold N] [--stage-ms MS]
//   npm run release -- pause|resume|cancel|advance <rollout id>
//
//   --key FILE       the private key (default IOT_RELEASE_KEY_FILE, else ~/.config/iot-edge/release-key.pem):
//                    made 0600 outside the repository; it never leaves this machine, only signatures do
//   --dir FOLDER     pack this folder (a bundle built elsewhere, e.g. by CI) instead of building one
//   --out FOLDER     also keep the artifact and its signed manifest there
//   --endpoint URL   (or IOT_ENDPOINT) default http://127.0.0.1:$PORT (8787), as `npm start` serves it
//   ADMIN_TOKEN      an operator's token; default: ADMIN_TOKEN from .dev.vars (DEV_VARS), as npm start wrote it
import { createHash, createPrivateKey, generateKeyPairSync, sign } from "node:crypto";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { endpointUrl, fail, operatorApi } from "./lib/operator-api.mjs";
import { publicKeyOf, releaseKeyFile } from "./lib/release-key.mjs";
import { packTarGz } from "../device/update/tar.ts";
import { releaseSigningText } from "../party/protocol.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const usage = `usage: npm run release -- keygen [--key FILE] [--force]
       npm run release -- --version X.Y.Z [--notes TEXT] [--min-agent X.Y.Z] [--dir FOLDER] [--out FOLDER] [--rollout all|N%|id,id] [--stages 5,25,100]
       npm run release -- list | rollout --release X.Y.Z --target all|N%|id,id [--stages …] [--failure-threshold N] [--stage-ms MS]
       npm run release -- pause|resume|cancel|advance <rollout id>
       [--key FILE] (default IOT_RELEASE_KEY_FILE, else ~/.config/iot-edge/release-key.pem) [--endpoint URL]; ADMIN_TOKEN from the environment or .dev.vars`;
const VERSION = /^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$/;
/** Files of the installed agent that a release never carries (the launcher is never replaced). */
const INSTALL_ONLY = new Set(["launcher.mjs", "iot-agent.service", "iot-agent.env.example"]);

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      version: { type: "string" },
      notes: { type: "string" },
      "min-agent": { type: "string" },
      key: { type: "string" },
      force: { type: "boolean" },
      dir: { type: "string" },
      out: { type: "string" },
      endpoint: { type: "string" },
      rollout: { type: "string" },
      release: { type: "string" },
      target: { type: "string" },
      stages: { type: "string" },
      "failure-threshold": { type: "string" },
      "stage-ms": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
} catch (err) {
  fail(`${err.message}\n${usage}`);
}
const o = args.values;
const [command, arg] = args.positionals;
if (o.help || (!command && !o.version)) {
  console.log(usage);
  process.exit(o.help ? 0 : 1);
}
const keyFile = releaseKeyFile(o.key);
const endpoint = endpointUrl(o.endpoint);
const api = operatorApi({ who: "release", endpoint, timeoutMs: 60_000 });

switch (command) {
  case "keygen":
    keygen();
    break;
  case undefined:
    await release();
    break;
  case "list":
    await list();
    break;
  case "rollout": {
    if (!o.release || !o.target) fail(`rollout needs --release X.Y.Z and --target all|N%|id,id\n${usage}`);
    const r = await startRollout(o.release, o.target);
    console.log(`rollout ${r.id}: ${r.release} to ${targetText(r.target)}, stage ${r.stages[r.stage]} % of ${r.stages.join(" → ")} %`);
    break;
  }
  case "pause":
  case "resume":
  case "cancel":
  case "advance": {
    if (!arg) fail(`${command} needs a rollout id (see: npm run release -- list)`);
    const r = await api("POST", `/api/rollouts/${encodeURIComponent(arg)}/${command}`);
    console.log(`rollout ${r.id}: ${r.state}, stage ${r.stages[r.stage]} %${r.reason ? ` (${r.reason})` : ""}`);
    break;
  }
  default:
    fail(`unknown command ${command}\n${usage}`);
}

/** The release key: Ed25519, the private half 0600 in a 0700 folder outside the repository. */
function keygen() {
  if (existsSync(keyFile) && !o.force) {
    fail(`release: ${keyFile} exists; its public half is ${publicKeyOf(loadKey())}\n` +
      `  (--force makes a new one: every Pi pinned to the old key then refuses releases signed with the new one)`);
  }
  if (resolve(keyFile).startsWith(`${root}/`) && !gitIgnored(keyFile)) {
    fail(`release: ${keyFile} is inside the repository and not git-ignored; choose --key outside it`);
  }
  const { privateKey } = generateKeyPairSync("ed25519");
  mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
  writeFileSync(keyFile, privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600, flag: o.force ? "w" : "wx" });
  const pub = publicKeyOf(privateKey);
  console.log(`release key written to ${keyFile} (mode 600). Keep it safe and off the endpoint; back it up offline.\n`);
  console.log(`Its public half, for each Pi (/etc/iot-agent.env) and for the endpoint:\n`);
  console.log(`  IOT_RELEASE_KEY=${pub}`);
  console.log(`  RELEASE_PUBLIC_KEY=${pub}     (wrangler.toml [vars], .dev.vars, or --var RELEASE_PUBLIC_KEY:${pub})`);
}

/** Build (or take --dir), pack, hash, sign, upload; then a rollout if asked. */
async function release() {
  const version = o.version;
  if (!VERSION.test(version)) fail(`release: --version must be MAJOR.MINOR.PATCH (digits, no leading zeros), got ${JSON.stringify(version)}`);
  if (o["min-agent"] !== undefined && !VERSION.test(o["min-agent"])) fail(`release: --min-agent must be MAJOR.MINOR.PATCH`);
  const notes = o.notes ?? "";
  if (!/^[\x20-\x7e]{0,500}$/.test(notes)) fail("release: --notes must be printable ASCII, at most 500 characters");
  const key = loadKey();
  const t0 = Date.now();

  let dir = o.dir ? resolve(o.dir) : null;
  let built = null;
  if (!dir) {
    built = dir = mkdtempSync(join(tmpdir(), "iot-release-"));
    const res = spawnSync(process.execPath, [join(root, "scripts/build-device.mjs")], { env: { ...process.env, OUT_DIR: dir, FW_VERSION: version }, stdio: ["ignore", "ignore", "inherit"] });
    if (res.status !== 0) fail(`release: the agent bundle did not build (scripts/build-device.mjs exited ${res.status})`);
  }
  const files = walk(dir).filter((f) => !INSTALL_ONLY.has(f));
  if (!files.includes("iot-agent.mjs")) fail(`release: ${dir} has no iot-agent.mjs: not an agent bundle`);
  const artifact = packTarGz(files.map((name) => ({ name, data: readFileSync(join(dir, name)) })));
  if (built) rmSync(built, { recursive: true, force: true });

  const manifest = { version, size: artifact.length, sha256: createHash("sha256").update(artifact).digest("hex"), notes, minAgent: o["min-agent"] ?? null };
  const signed = { ...manifest, signature: sign(null, Buffer.from(releaseSigningText(manifest)), key).toString("base64url") };
  const built_ms = Date.now() - t0;
  console.log(`release ${version}: ${files.join(", ")} → ${artifact.length} bytes, sha256 ${manifest.sha256}, signed by ${publicKeyOf(key)} (${built_ms} ms)`);
  if (o.out) {
    const out = resolve(o.out);
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, `iot-agent-${version}.tar.gz`), artifact);
    writeFileSync(join(out, `iot-agent-${version}.manifest.json`), `${JSON.stringify(signed, null, 2)}\n`);
    console.log(`release ${version}: kept in ${out}`);
  }

  const t1 = Date.now();
  // The artifact as the body, streamed by the endpoint into R2; the manifest (printable ASCII JSON)
  // in a header, so the endpoint checks it and the signature before it reads a byte.
  const record = await api("POST", "/api/releases", artifact, { "content-type": "application/gzip", "x-release-manifest": JSON.stringify(signed) });
  console.log(
    `release ${version}: published to ${endpoint} in ${Date.now() - t1} ms` +
      (record.signatureChecked ? " (the endpoint checked the signature)" : " (the endpoint has no RELEASE_PUBLIC_KEY: devices check the signature themselves)"),
  );
  if (o.rollout) {
    const r = await startRollout(version, o.rollout);
    console.log(`rollout ${r.id}: ${version} to ${targetText(r.target)}, stage ${r.stages[r.stage]} % of ${r.stages.join(" → ")} %`);
  }
}

async function list() {
  const { releases } = await api("GET", "/api/releases");
  const { rollouts } = await api("GET", "/api/rollouts");
  console.log(releases.length ? "Releases:" : "No releases yet (npm run release -- --version X.Y.Z).");
  for (const r of releases) {
    console.log(`  ${r.version.padEnd(10)} ${String(r.size).padStart(9)} bytes  ${new Date(r.createdAt).toISOString()} by ${r.createdBy}${r.signatureChecked ? "" : " (signature not checked by the endpoint)"}  ${r.notes}`);
  }
  if (rollouts.length) console.log("Rollouts:");
  for (const r of rollouts) {
    const counts = Object.entries(r.counts).map(([s, n]) => `${s} ${n}`).join(", ") || "no reports yet";
    console.log(`  ${r.id}  ${r.release.padEnd(10)} ${r.state.padEnd(9)} ${targetText(r.target)}, stage ${r.stages[r.stage]} % of ${r.stages.join(" → ")}  ${counts}${r.reason ? `  (${r.reason})` : ""}`);
  }
}

async function startRollout(version, target) {
  const body = { release: version, target: parseTarget(target) };
  if (o.stages) body.stages = o.stages.split(",").map(Number);
  if (o["failure-threshold"]) body.failureThreshold = Number(o["failure-threshold"]);
  if (o["stage-ms"]) body.stageMs = Number(o["stage-ms"]);
  return api("POST", "/api/rollouts", body);
}

/** `all`, `10%`, or `pi-1,pi-2`. */
function parseTarget(text) {
  if (text === "all") return "all";
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (pct) return { percent: Number(pct[1]) };
  return { ids: text.split(",").map((s) => s.trim()).filter(Boolean) };
}

function targetText(t) {
  return t === "all" ? "all devices" : "percent" in t ? `${t.percent} % of devices` : `${t.ids.length} device(s)`;
}

function loadKey() {
  if (!existsSync(keyFile)) fail(`release: no release key at ${keyFile}; make one with: npm run release -- keygen`);
  const mode = statSync(keyFile).mode & 0o777;
  if (mode & 0o077) console.warn(`release: warning: ${keyFile} is readable by others (mode ${mode.toString(8)}); chmod 600 it`);
  try {
    const key = createPrivateKey(readFileSync(keyFile));
    if (key.asymmetricKeyType !== "ed25519") fail(`release: ${keyFile} is a ${key.asymmetricKeyType} key, not Ed25519`);
    return key;
  } catch (err) {
    fail(`release: cannot read the key in ${keyFile}: ${err.message}`);
  }
}

function walk(dir, base = dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === "node_modules" ? [] : walk(p, base);
    return e.isFile() ? [relative(base, p)] : [];
  });
}

function gitIgnored(path) {
  return spawnSync("git", ["check-ignore", "-q", path], { cwd: root }).status === 0;
}
