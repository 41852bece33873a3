/**
 * Over-the-air updates end to end (issue 15): the real endpoint process (Miniflare direct, as
 * `npm start` and the container run it), `npm run release` as an operator runs it, and the
 * bundled agent started through its launcher, as the systemd unit starts it. A proxy between
 * the agent and the endpoint counts download bytes, cuts one download halfway and flips a byte
 * of another (test/support/proxy.ts).
 *
 *  1. release 2.0.0 to all → its download is cut halfway and resumed, not restarted; the agent
 *     runs 2.0.0 (it says so in hello) and the room records `applied`;
 *  2. 2.1.0 with one byte changed on the way → refused before unpacking; 2.0.0 keeps running;
 *  3. 2.2.0 signed with another key (this endpoint has no RELEASE_PUBLIC_KEY, as a compromised
 *     one would not) → refused before a byte is downloaded;
 *  4. 3.0.0 that exits at start → the launcher rolls back to 2.0.0, which reports `rolled-back`
 *     with the reason, and the rollout (threshold 1) pauses itself;
 * and every reading from the first to the last is stored once, seq contiguous, across all of it;
 * and after an endpoint restart the releases and their artifacts are still there.
 */
import { spawnSync } from "node:child_process";
import { createHash, createPublicKey, createPrivateKey } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, onTestFailed } from "vitest";
import { LINES } from "../../device/log.ts";
import type { DeviceFirmware, DeviceState, Reading, Rollout } from "../../party/protocol.ts";
import { EndpointClient } from "../support/client.ts";
import { startEndpoint, type Endpoint } from "../support/endpoint.ts";
import { Proc, ROOT, waitFor } from "../support/processes.ts";
import { ReleaseProxy } from "../support/proxy.ts";

const tmp = mkdtempSync(join(tmpdir(), "iot-e2e-ota-"));
const opt = join(tmp, "opt"); // what /opt/iot-agent holds on a Pi
const state = join(tmp, "state"); // what /var/lib/iot-agent holds
const keyFile = join(tmp, "keys", "release-key.pem");
const otherKeyFile = join(tmp, "keys", "other-key.pem");
let ep: Endpoint | undefined;
let proxy: ReleaseProxy | undefined;
let launcher: Proc | undefined;

afterAll(async () => {
  await launcher?.stop(10_000);
  await proxy?.close();
  await ep?.close();
  rmSync(tmp, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string> = {}): string {
  const res = spawnSync(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8" });
  if (res.status !== 0) throw new Error(`${args.join(" ")} exited ${res.status}:\n${res.stdout}\n${res.stderr}`);
  return res.stdout;
}

/** `npm run release -- …` as the operator, against the endpoint itself (not the proxy). */
function release(args: string[], key = keyFile): string {
  const operator: Record<string, string> = ep ? { ADMIN_TOKEN: ep.adminToken, IOT_ENDPOINT: ep.url } : {};
  return run([join(ROOT, "scripts/release.mjs"), ...args], { ...operator, IOT_RELEASE_KEY_FILE: key });
}

function publicKey(file: string): string {
  return createPublicKey(createPrivateKey(readFileSync(file))).export({ format: "jwk" }).x!;
}

describe("over-the-air updates through the launcher", () => {
  it("applies a release (download resumed), refuses tampered and foreign ones, rolls back a broken one, and loses no reading", async () => {
    const id = `ota-${Date.now().toString(36)}`;
    onTestFailed(() => {
      for (const p of [ep?.proc, launcher]) if (p) console.error(p.tail(80));
    });
    const t0 = Date.now();

    // The fleet's key, and a stranger's; the installed agent (1.0.0) with its launcher.
    release(["keygen"]);
    release(["keygen"], otherKeyFile);
    run([join(ROOT, "scripts/build-device.mjs")], { OUT_DIR: opt, FW_VERSION: "1.0.0" });
    expect(existsSync(join(opt, "launcher.mjs"))).toBe(true);

    ep = await startEndpoint({
      direct: true,
      // Nobody watches: the agent sends a frame a second; the room looks at the rollouts every second.
      vars: {
        HEARTBEAT_MS: "500",
        HEARTBEAT_TIMEOUT_MS: "1500",
        DEFAULT_INTERVAL_MS: "200",
        LOG_READINGS: "false",
        UNWATCHED_BATCH_MS: "1000",
        UNWATCHED_CHECK_MS: "1000",
        FIRMWARE_CHECK_MS: "500",
      },
    });
    const client = new EndpointClient(ep.url, ep.adminToken);
    const token = await client.token(id);
    proxy = new ReleaseProxy({ host: "127.0.0.1", port: ep.port });
    const viaProxy = await proxy.listen();
    const device = () => client.json<DeviceState>(`/api/devices/${id}`);
    const firmware = () => client.json<DeviceFirmware>(`/api/devices/${id}/firmware`);
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("IOT_")));
    launcher = new Proc(
      "launcher",
      process.execPath,
      [join(opt, "launcher.mjs"), "--simulate", "--no-led", "--quiet", "--endpoint", viaProxy, "--ip", "192.0.2.10", "--backoff-max-ms", "1000"],
      {
        env: { ...env, IOT_STATE_DIR: state, IOT_TOKEN: token, IOT_RELEASE_KEY: publicKey(keyFile), IOT_TRIAL_MS: "20000", IOT_TRIAL_BOOTS: "2" },
      },
    );
    await launcher.waitForLine(LINES.connected, 0, 30_000);
    await waitFor("readings from 1.0.0", async () => (await device()).ackedSeq >= 5, 20_000);
    expect((await device()).reported?.fw).toBe("1.0.0");
    const timings: Record<string, number> = { setup: Date.now() - t0 };

    // 1. 2.0.0 to everyone; the proxy cuts its first download halfway.
    const t1 = Date.now();
    const out = release(["--version", "2.0.0", "--notes", "first OTA", "--rollout", "all"]);
    const size = Number(/→ (\d+) bytes/.exec(out)?.[1]);
    expect(size).toBeGreaterThan(10_000);
    proxy.rules.cutAfter.set("2.0.0", Math.floor(size / 2));
    await waitFor("2.0.0 applied", async () => (await firmware()).update?.state === "applied" && (await device()).reported?.fw === "2.0.0", 40_000);
    timings["2.0.0 published → applied"] = Date.now() - t1;
    const v2 = proxy.downloads.filter((d) => d.version === "2.0.0");
    expect(v2[0]).toMatchObject({ range: null, cut: true, bytes: Math.floor(size / 2) });
    // Resumed: the second request asked for the rest only, and about one artifact's bytes were served in all.
    expect(v2[1]).toMatchObject({ range: `bytes=${Math.floor(size / 2)}-`, status: 206, cut: false });
    expect(proxy.served("2.0.0")).toBe(size);
    expect(launcher.lines.some((l) => l.includes("launcher: 2.0.0 passed its trial"))).toBe(true);

    // 2. 2.1.0 with one byte flipped on the way: refused before anything is unpacked.
    proxy.rules.tamperAt.set("2.1.0", 1000);
    release(["--version", "2.1.0", "--rollout", "all"]);
    await waitFor("2.1.0 refused", async () => {
      const u = (await firmware()).update;
      return u?.version === "2.1.0" && u.state === "failed" ? u : null;
    }, 30_000).then((u) => expect(u.reason).toMatch(/artifact refused before unpacking: SHA-256/));
    expect(existsSync(join(state, "releases", "2.1.0"))).toBe(false);
    expect(existsSync(join(state, "update", "downloads", "2.1.0.part"))).toBe(false);

    // 3. 2.2.0 signed with a stranger's key: refused before a byte is downloaded.
    release(["--version", "2.2.0", "--rollout", "all"], otherKeyFile);
    await waitFor("2.2.0 refused", async () => {
      const u = (await firmware()).update;
      return u?.version === "2.2.0" && u.state === "failed" ? u : null;
    }, 30_000).then((u) => expect(u.reason).toMatch(/signature does not verify against the pinned IOT_RELEASE_KEY/));
    expect(proxy.served("2.2.0")).toBe(0);
    expect(existsSync(join(state, "releases", "2.2.0"))).toBe(false);
    expect((await device()).reported?.fw).toBe("2.0.0");

    // 4. 3.0.0 exits at start: rolled back to 2.0.0, reported with the reason; the rollout pauses itself.
    const broken = join(tmp, "broken");
    mkdirSync(broken);
    writeFileSync(join(broken, "iot-agent.mjs"), 'console.error("3.0.0: cannot start"); process.exit(3);\n');
    writeFileSync(join(broken, "package.json"), '{"name":"iot-agent","version":"3.0.0","type":"module"}\n');
    const t4 = Date.now();
    release(["--version", "3.0.0", "--dir", broken, "--rollout", "all", "--failure-threshold", "1"]);
    const rolledBack = await waitFor("3.0.0 rolled back", async () => {
      const u = (await firmware()).update;
      return u?.version === "3.0.0" && u.state === "rolled-back" ? u : null;
    }, 60_000);
    timings["3.0.0 published → rolled back"] = Date.now() - t4;
    expect(rolledBack.reason).toMatch(/did not pass its trial in 2 starts \(last: exited with 3/);
    await waitFor("2.0.0 running again", async () => (await device()).reported?.fw === "2.0.0", 20_000);
    expect(JSON.parse(readFileSync(join(state, "update", "failed.json"), "utf8"))).toEqual(["3.0.0"]);
    const { rollouts } = await client.json<{ rollouts: Rollout[] }>("/api/rollouts");
    expect(rollouts.find((r) => r.release === "3.0.0")).toMatchObject({ state: "paused", counts: { "rolled-back": 1 } });

    // Readings kept flowing across both restarts: stop, then every seq from 1 is stored once.
    const before = (await device()).ackedSeq;
    await waitFor("readings after the roll-back", async () => (await device()).ackedSeq >= before + 3, 20_000);
    await launcher.stop(15_000);
    const readings: Reading[] = [];
    for (;;) {
      const page = await client.json<{ readings: Reading[] }>(`/api/devices/${id}/readings?after=${readings.at(-1)?.seq ?? 0}&limit=1000`);
      readings.push(...page.readings);
      if (page.readings.length < 1000) break;
    }
    const seqs = readings.map((r) => r.seq);
    expect(seqs[0]).toBe(1);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    const final = await device();
    expect(final.lost).toBe(0);
    expect(final.ackedSeq).toBe(seqs.length);

    // Releases survive an endpoint restart on the same state: manifests in the Releases object, the
    // artifact in Miniflare's on-disk R2 bucket (STATE_DIR/v3/r2), still served to the device it is for.
    await ep.stop();
    await ep.start();
    const { releases } = await client.json<{ releases: { version: string; sha256: string }[] }>("/api/releases");
    expect(releases.map((r) => r.version).sort()).toEqual(["2.0.0", "2.1.0", "2.2.0", "3.0.0"]);
    const download = await fetch(`${ep.url}/iot/releases/3.0.0`, { headers: { authorization: `Bearer ${token}` } });
    expect(download.status).toBe(200);
    const bytes = Buffer.from(await download.arrayBuffer());
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(releases.find((r) => r.version === "3.0.0")!.sha256);
    timings.total = Date.now() - t0;
    console.log(`OTA e2e timings (ms): ${JSON.stringify(timings)}; ${seqs.length} readings, seq 1..${seqs.length}, none lost`);
  });
});
