#!/usr/bin/env node
// `npm run device:build`: the agent as one file for the Pi, in device/dist/:
//   iot-agent.mjs            device/cli.ts bundled with zod and partysocket (Node 22, ESM)
//   launcher.mjs             what the unit runs: starts the current release, rolls back a failed one (docs/updates.md)
//   package.json             only the native addons, built on the Pi by `npm install`
//   iot-agent.service        the systemd unit
//   iot-agent.env.example    its settings
// Copy the folder to /opt/iot-agent on the Pi (docs/device.md).
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
// OUT_DIR: somewhere else than device/dist (the CLI test builds into a temporary folder).
const out = resolve(process.env.OUT_DIR || join(root, "device/dist"));
// FW_VERSION: the version the bundle reports (`npm run release` sets it); default device/version.ts's.
const fwVersion = process.env.FW_VERSION;
if (fwVersion !== undefined && !/^\d+\.\d+\.\d+$/.test(fwVersion)) throw new Error(`FW_VERSION must be MAJOR.MINOR.PATCH, got ${JSON.stringify(fwVersion)}`);
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
// Native addons stay outside the bundle: they are compiled on the Pi, for its Node.
const natives = ["i2c-bus", "onoff"];

mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(root, "device/cli.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  external: natives,
  outfile: join(out, "iot-agent.mjs"),
  define: fwVersion ? { __IOT_FW_VERSION__: JSON.stringify(fwVersion) } : {},
  logLevel: "warning",
});
writeFileSync(
  join(out, "package.json"),
  `${JSON.stringify(
    {
      name: "iot-agent",
      version: fwVersion ?? pkg.version,
      private: true,
      type: "module",
      description: "The IoT device agent, bundled (npm run device:build)",
      engines: { node: ">=22.13" },
      optionalDependencies: Object.fromEntries(natives.map((n) => [n, pkg.optionalDependencies[n]])),
      // npm 11 runs install scripts only for packages listed here: the two addons and onoff's epoll.
      allowScripts: { "i2c-bus": true, epoll: true },
    },
    null,
    2,
  )}\n`,
);
for (const f of ["iot-agent.service", "iot-agent.env.example", "launcher.mjs"]) copyFileSync(join(root, "device", f), join(out, f));
console.log(`device:build: ${out}/ (iot-agent.mjs${fwVersion ? ` ${fwVersion}` : ""}, launcher.mjs, package.json, iot-agent.service, iot-agent.env.example)`);
