#!/usr/bin/env node
// `npm run bench` step one: bundle the benchmark (TypeScript, and the test
// support it shares with the end-to-end tests) into bench/dist with esbuild,
// the bundler the dashboard and the agent already use. Packages stay external.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
await build({
  entryPoints: ["run.ts", "load.ts", "relay.ts"].map((f) => join(here, f)),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  packages: "external",
  // Two levels below the root, as test/support is: its ROOT (import.meta.dirname/../..) stays right.
  outdir: join(here, "dist"),
  outExtension: { ".js": ".mjs" },
  logLevel: "warning",
});
