/**
 * Issue 15's "done when", as one scripted run: `npm start` (scripts/start.mjs, its simulated
 * device under device/launcher.mjs as the unit runs it) and `npm run release` (scripts/release.mjs)
 * as an operator types them, with nothing but a temporary key, state and secrets file:
 *
 *  1. `npm run release -- keygen` makes the fleet's key (IOT_RELEASE_KEY_FILE: never the real ~/.config);
 *     npm start pins its public half on the simulated device and says so in its banner;
 *  2. `--version 1.1.0 --rollout all`: the device downloads, installs and runs 1.1.0 and reports `applied`;
 *  3. a 1.2.0 that exits at start, to all: the launcher rolls it back to 1.1.0, reported `rolled-back`;
 *  4. Ctrl-C (SIGTERM) stops it all.
 * The timings (release published → applied, → rolled back) are printed, never asserted.
 *
 * The secrets file also sets FIRMWARE_CHECK_MS and UNWATCHED_CHECK_MS to 1 s: a rollout to "all"
 * reaches a connected device at its room's next look, by default up to 60 s + 5 min later when
 * nobody watches (docs/updates.md), which would time the poll rather than the update.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, onTestFailed } from "vitest";
import type { DeviceFirmware, DeviceState } from "../../party/protocol.ts";
import { parseDevVars } from "../../scripts/lib/dev-vars.mjs";
import { portFree } from "../../scripts/lib/port.mjs";
import { EndpointClient } from "../support/client.ts";
import { freePort, nodeProc, ROOT, waitFor, type Proc } from "../support/processes.ts";

const tmp = mkdtempSync(join(tmpdir(), "iot-e2e-ota-demo-"));
const keyFile = join(tmp, "config", "iot-edge", "release-key.pem");
const devVars = join(tmp, ".dev.vars");
const deviceId = `demo-${process.pid}`;
const deviceState = join(ROOT, "device/.state", deviceId);
let npmStart: Proc | undefined;

afterAll(async () => {
  await npmStart?.stop(15_000);
  rmSync(tmp, { recursive: true, force: true });
  rmSync(deviceState, { recursive: true, force: true });
});

/** The test's environment without its own IOT_* settings, and the key in the temporary folder. */
const baseEnv = (): Record<string, string> => ({
  ...(Object.fromEntries(Object.entries(process.env).filter(([k, v]) => v !== undefined && !k.startsWith("IOT_") && k !== "VERBOSE")) as Record<string, string>),
  IOT_RELEASE_KEY_FILE: keyFile,
});

/** `npm run release -- …`, as the operator in another terminal (ADMIN_TOKEN and PORT as npm start has them). */
function release(args: string[], port: number): string {
  const res = spawnSync(process.execPath, [join(ROOT, "scripts/release.mjs"), ...args], {
    cwd: ROOT,
    env: { ...baseEnv(), DEV_VARS: devVars, PORT: String(port) },
    encoding: "utf8",
  });
  if (res.status !== 0) throw new Error(`release ${args.join(" ")} exited ${res.status}:\n${res.stdout}\n${res.stderr}`);
  return res.stdout;
}

describe("the OTA demo with npm start", () => {
  it("releases 1.1.0 to a running simulated device, sees it applied, releases a broken 1.2.0 and sees it rolled back", async () => {
    onTestFailed(() => console.error(npmStart?.tail(120)));
    const port = await freePort();
    const t0 = Date.now();

    // 1. The key first, as docs/updates.md says; then npm start, which pins its public half.
    const keygen = release(["keygen"], port);
    const pub = /IOT_RELEASE_KEY=([\w-]{43})/.exec(keygen)?.[1];
    expect(pub).toBeDefined();
    writeFileSync(devVars, "FIRMWARE_CHECK_MS=1000\nUNWATCHED_CHECK_MS=1000\n", { mode: 0o600 });
    npmStart = nodeProc("npm start", [join(ROOT, "scripts/start.mjs")], {
      env: { ...baseEnv(), PORT: String(port), STATE_DIR: join(tmp, "state"), DEV_VARS: devVars, DEVICE_ID: deviceId, SKIP_BUILD: "1" },
    });
    await npmStart.waitForLine("start: ready.", 0, 120_000);
    expect(npmStart.output()).toContain(`updates: release key pinned (${keyFile})`);
    expect(npmStart.output()).toContain("launcher: starting the installed agent");
    const client = new EndpointClient(`http://127.0.0.1:${port}`, (parseDevVars(readFileSync(devVars, "utf8")) as Record<string, string>).ADMIN_TOKEN!);
    const firmware = () => client.json<DeviceFirmware>(`/api/devices/${deviceId}/firmware`);
    const device = () => client.json<DeviceState>(`/api/devices/${deviceId}`);
    await waitFor("the agent's hello", async () => (await device()).reported?.fw === "1.0.0", 30_000);
    const timings: Record<string, number> = { "npm start → ready": Date.now() - t0 };

    // 2. 1.1.0 to all.
    let t = Date.now();
    release(["--version", "1.1.0", "--notes", "demo", "--rollout", "all"], port);
    let published = Date.now();
    timings["1.1.0 build + sign + upload"] = published - t;
    await waitFor("1.1.0 applied", async () => (await firmware()).update?.state === "applied" && (await device()).reported?.fw === "1.1.0", 60_000);
    timings["1.1.0 published → applied"] = Date.now() - published;
    expect((await firmware()).update).toMatchObject({ version: "1.1.0", state: "applied" });
    expect(npmStart.output()).toContain("launcher: 1.1.0 passed its trial");
    expect(existsSync(join(deviceState, "releases", "1.1.0", "iot-agent.mjs"))).toBe(true);

    // 3. A 1.2.0 that exits at start (as test/e2e/ota.test.ts makes it), to all.
    const broken = join(tmp, "broken");
    mkdirSync(broken);
    writeFileSync(join(broken, "iot-agent.mjs"), 'console.error("1.2.0: cannot start"); process.exit(3);\n');
    writeFileSync(join(broken, "package.json"), '{"name":"iot-agent","version":"1.2.0","type":"module"}\n');
    t = Date.now();
    release(["--version", "1.2.0", "--dir", broken, "--rollout", "all"], port);
    published = Date.now();
    timings["1.2.0 sign + upload"] = published - t;
    const rolledBack = await waitFor("1.2.0 rolled back", async () => {
      const u = (await firmware()).update;
      return u?.version === "1.2.0" && u.state === "rolled-back" ? u : null;
    }, 90_000);
    timings["1.2.0 published → rolled back"] = Date.now() - published;
    expect(rolledBack.reason).toMatch(/did not pass its trial in 3 starts \(last: exited with 3/);
    await waitFor("1.1.0 running again", async () => (await device()).reported?.fw === "1.1.0", 30_000);
    expect(npmStart.output()).toContain("launcher: 1.2.0 rolled back to 1.1.0");
    // The agent's switches (exit 75) and the broken release's exits were the launcher's, not crashes npm start restarted.
    expect(npmStart.output()).not.toContain("start: the simulated device exited");

    // 4. Ctrl-C's SIGTERM stops everything, the port comes free.
    const exit = await npmStart.stop(15_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(await portFree("127.0.0.1", port)).toBe(true);
    timings.total = Date.now() - t0;
    console.log(`OTA demo timings (ms): ${JSON.stringify(timings)}`);
  });
});
