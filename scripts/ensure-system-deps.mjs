#!/usr/bin/env node
// `npm test`'s pretest: the e2e and browser projects run Debian's nginx and Chromium
// (and openssl makes the TLS pair nginx serves). On a fresh machine they are missing:
// as root on Debian/Ubuntu this installs them; anywhere else it stops at once with the
// one command to run, instead of failing deep inside a test. `.ci/run` installs its own
// list first (mosquitto for the bench too), so there this finds everything and says nothing.
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { delimiter, join } from "node:path";

/** What the tests need: the executable they run, where Debian puts it, and its package. */
const NEEDS = [
  { name: "nginx", paths: ["/usr/sbin/nginx"], pkg: "nginx" },
  // The browser tests launch /usr/bin/chromium by that path: a chromium elsewhere on PATH does not count.
  { name: "chromium", paths: ["/usr/bin/chromium"], pkg: "chromium", pathsOnly: true },
  { name: "openssl", paths: ["/usr/bin/openssl"], pkg: "openssl" },
];

function found(name, paths, pathsOnly = false) {
  const dirs = pathsOnly ? [] : (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  return [...paths, ...dirs.map((d) => join(d, name))].some((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false; // not there, or not executable: look at the next place
    }
  });
}

const missing = NEEDS.filter((n) => !found(n.name, n.paths, n.pathsOnly)).map((n) => n.pkg);
if (missing.length === 0) process.exit(0);

const debian = existsSync("/etc/debian_version") && found("apt-get", ["/usr/bin/apt-get"]);
const install = `apt-get install -y --no-install-recommends ${missing.join(" ")}`;
const isRoot = process.getuid?.() === 0;

if (!debian) {
  console.error(
    `pretest: the e2e and browser tests need ${missing.join(", ")} (Chromium at /usr/bin/chromium); ` +
      "install them with this system's package manager, then run npm test again.",
  );
  process.exit(1);
}
if (!isRoot) {
  console.error(`pretest: the e2e and browser tests need ${missing.join(", ")}; run this once, then npm test again:\n  sudo apt-get update && sudo ${install}`);
  process.exit(1);
}

console.log(`pretest: installing ${missing.join(", ")} from Debian's packages for the e2e and browser tests`);
const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
for (const args of [["update"], ["install", "-y", "--no-install-recommends", ...missing]]) {
  const run = spawnSync("apt-get", args, { stdio: "inherit", env });
  if (run.status !== 0) {
    console.error(`pretest: apt-get ${args[0]} failed (${run.signal ?? run.status}); run it by hand: apt-get update && ${install}`);
    process.exit(1);
  }
}
// Debian starts nginx as a service on install (on :80); the tests start their own.
if (missing.includes("nginx")) spawnSync("service", ["nginx", "stop"], { stdio: "ignore" });
