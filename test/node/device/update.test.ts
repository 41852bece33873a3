/**
 * The agent's update path piece by piece (issue 15; end to end: test/e2e/ota.test.ts): the archive
 * reader that cannot be steered out of its folder, the signature and hash checks, the resumed
 * download, the updater refusing before it downloads or unpacks, and the launcher rolling back a
 * release that never connects.
 */
import { generateKeyPairSync, sign, createHash, type KeyObject } from "node:crypto";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { releaseSigningText, type SignedRelease } from "../../../party/protocol.ts";
import { downloadResumable } from "../../../device/update/download.ts";
import { layout, pruneReleases } from "../../../device/update/layout.ts";
import { packTarGz, unpackTarGz } from "../../../device/update/tar.ts";
import { Updater, type UpdateReport } from "../../../device/update/updater.ts";
import { artifactMismatch, releaseKey, signatureValid } from "../../../device/update/verify.ts";

const tmp = mkdtempSync(join(tmpdir(), "iot-update-"));
const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  rmSync(tmp, { recursive: true, force: true });
});

const silent = { info() {}, warn() {}, error() {} };

function keyPair(): { pub: string; priv: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return { pub: publicKey.export({ format: "jwk" }).x!, priv: privateKey };
}

function signed(artifact: Buffer, version: string, priv: KeyObject): SignedRelease {
  const manifest = { version, size: artifact.length, sha256: createHash("sha256").update(artifact).digest("hex"), notes: "", minAgent: null };
  return { ...manifest, signature: sign(null, Buffer.from(releaseSigningText(manifest)), priv).toString("base64url") };
}

/** A tar.gz whose one entry's name and type are rewritten after packing (checksum fixed up). */
function forged(name: string, type: string): Buffer {
  const tar = Buffer.from(gunzipSync(packTarGz([{ name: "placeholder", data: Buffer.from("x") }])));
  tar.fill(0, 0, 100);
  tar.write(name, 0, "utf8");
  tar.write(type, 156, "ascii");
  tar.write("        ", 148, "ascii");
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += tar[i]!;
  tar.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return gzipSync(tar);
}

/** An HTTP server for one artifact with Range; `cutFirstAt` drops the first response after that many bytes. */
async function artifactServer(artifact: Buffer, cutFirstAt?: number): Promise<{ url: string; requests: { range: string | null; bytes: number }[] }> {
  const requests: { range: string | null; bytes: number }[] = [];
  const server = createServer((req, res) => {
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = m ? Number(m[1]) : 0;
    const body = artifact.subarray(start);
    const record = { range: req.headers.range ?? null, bytes: 0 };
    requests.push(record);
    res.writeHead(m ? 206 : 200, { "content-length": body.length, ...(m ? { "content-range": `bytes ${start}-${artifact.length - 1}/${artifact.length}` } : {}) });
    if (cutFirstAt !== undefined && requests.length === 1) {
      record.bytes = cutFirstAt;
      res.write(body.subarray(0, cutFirstAt), () => setTimeout(() => res.socket?.destroy(), 200));
      return;
    }
    record.bytes = body.length;
    res.end(body);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests };
}

describe("release archives", () => {
  it("round-trip plain files, byte for byte and reproducibly", () => {
    const files = [{ name: "iot-agent.mjs", data: Buffer.from("console.log('v2')\n") }, { name: "lib/a.txt", data: Buffer.alloc(1500, 7) }];
    const packed = packTarGz(files);
    expect(packTarGz(files).equals(packed)).toBe(true);
    expect(unpackTarGz(packed).map((f) => [f.name, Buffer.from(f.data).toString("base64")])).toEqual(
      [...files].sort((a, b) => a.name.localeCompare(b.name)).map((f) => [f.name, f.data.toString("base64")]),
    );
  });

  it("refuse names that leave the folder, and anything but plain files", () => {
    expect(() => unpackTarGz(forged("../evil.mjs", "0"))).toThrow(/refusing the name/);
    expect(() => unpackTarGz(forged("/etc/passwd", "0"))).toThrow(/refusing the name/);
    expect(() => unpackTarGz(forged("link", "2"))).toThrow(/only plain files/);
    expect(() => packTarGz([{ name: "a/../b", data: Buffer.from("") }])).toThrow(/refusing the name/);
  });
});

describe("signature and hash", () => {
  it("a manifest verifies against its own key only, and not once a signed field changed", () => {
    const fleet = keyPair();
    const stranger = keyPair();
    const release = signed(Buffer.from("bundle"), "2.0.0", fleet.priv);
    expect(signatureValid(releaseKey(fleet.pub), release)).toBe(true);
    expect(signatureValid(releaseKey(stranger.pub), release)).toBe(false);
    expect(signatureValid(releaseKey(fleet.pub), { ...release, size: release.size + 1 })).toBe(false);
    expect(() => releaseKey("not-a-key")).toThrow(/IOT_RELEASE_KEY/);
  });

  it("a file of another size or with one byte changed is named as not the signed artifact", async () => {
    const artifact = Buffer.alloc(4096, 1);
    const release = signed(artifact, "2.0.0", keyPair().priv);
    const file = join(tmp, "a.part");
    writeFileSync(file, artifact);
    expect(await artifactMismatch(file, release)).toBeNull();
    const tampered = Buffer.from(artifact);
    tampered[100] ^= 1;
    writeFileSync(file, tampered);
    expect(await artifactMismatch(file, release)).toMatch(/^SHA-256 /);
    writeFileSync(file, artifact.subarray(1));
    expect(await artifactMismatch(file, release)).toMatch(/^size 4095 bytes/);
  });
});

describe("download", () => {
  it("a download cut halfway is resumed from where it stopped, not started again", async () => {
    const artifact = Buffer.from(Array.from({ length: 200_000 }, (_, i) => i % 251));
    const { url, requests } = await artifactServer(artifact, 100_000);
    const path = join(tmp, "downloads", "2.0.0.part");
    await expect(downloadResumable({ url: new URL("/x", url), path, size: artifact.length })).rejects.toThrow();
    const second = await downloadResumable({ url: new URL("/x", url), path, size: artifact.length });
    expect(second.resumedFrom).toBe(100_000);
    expect(requests.map((r) => r.range)).toEqual([null, "bytes=100000-"]);
    expect(requests.reduce((n, r) => n + r.bytes, 0)).toBe(artifact.length);
    expect(readFileSync(path).equals(artifact)).toBe(true);
  });
});

/** An Updater whose reports, exits and messages to the launcher are recorded. */
function updater(opts: { releaseKey?: string; fetch?: typeof fetch; launcherDir?: string | null; stateDir?: string; running?: string; trial?: string }) {
  const reports: UpdateReport[] = [];
  const exits: number[] = [];
  const told: string[] = [];
  const u = new Updater({
    endpoint: "http://endpoint.invalid",
    stateDir: opts.stateDir ?? mkdtempSync(join(tmp, "state-")),
    releaseKey: opts.releaseKey,
    running: opts.running ?? "1.0.0",
    launcherDir: opts.launcherDir === undefined ? tmp : opts.launcherDir,
    trial: opts.trial ?? null,
    send: (m) => (reports.push(m), true),
    log: silent,
    exit: async (code) => void exits.push(code),
    tellLauncher: (m) => void told.push(m.version),
    fetch: opts.fetch,
  });
  return { u, reports, exits, told };
}

describe("updater", () => {
  const settle = async (reports: UpdateReport[], state: string) => {
    for (let i = 0; i < 100 && !reports.some((r) => r.state === state); i++) await new Promise((r) => setTimeout(r, 20));
  };

  it("without a pinned key, or with a release signed by another key, installs nothing and downloads nothing", async () => {
    const fleet = keyPair();
    let fetches = 0;
    const counting = (async () => {
      fetches++;
      throw new Error("must not be called");
    }) as unknown as typeof fetch;
    const release = signed(Buffer.from("x"), "2.0.0", keyPair().priv);
    const none = updater({ fetch: counting });
    none.u.onFirmware(release, "/iot/releases/2.0.0");
    await settle(none.reports, "unsupported");
    // Not a failure: a device with no key pinned is not set up for updates; rollouts do not count it as failed.
    expect(none.reports).toEqual([{ type: "update", version: "2.0.0", state: "unsupported", reason: "no IOT_RELEASE_KEY pinned: updates are off on this device" }]);
    // Nor is an agent that no launcher runs: it could not roll back.
    const bare = updater({ releaseKey: fleet.pub, launcherDir: null, fetch: counting });
    bare.u.onFirmware(signed(Buffer.from("x"), "2.0.0", fleet.priv), "/iot/releases/2.0.0");
    await settle(bare.reports, "unsupported");
    expect(bare.reports.at(-1)).toMatchObject({ state: "unsupported", reason: expect.stringMatching(/not started by the launcher/) });
    const wrong = updater({ releaseKey: fleet.pub, fetch: counting });
    wrong.u.onFirmware(release, "/iot/releases/2.0.0");
    await settle(wrong.reports, "failed");
    expect(wrong.reports.at(-1)).toMatchObject({ state: "failed", reason: expect.stringMatching(/signature does not verify/) });
    expect(fetches).toBe(0);
    // Refused once per run: the same release again is not retried (nor reported again).
    wrong.u.onFirmware(release, "/iot/releases/2.0.0");
    await new Promise((r) => setTimeout(r, 50));
    expect(wrong.reports.filter((r) => r.state === "failed")).toHaveLength(1);
  });

  it("installs a verified release beside the running one, switches current, writes the trial and exits 75", async () => {
    const fleet = keyPair();
    const artifact = packTarGz([{ name: "iot-agent.mjs", data: Buffer.from("// 2.0.0\n") }, { name: "package.json", data: Buffer.from("{}") }]);
    const { url } = await artifactServer(artifact);
    const stateDir = mkdtempSync(join(tmp, "state-"));
    const { u, reports, exits } = updater({ releaseKey: fleet.pub, stateDir, fetch: (input, init) => fetch(new URL(new URL(String(input)).pathname, url), init) });
    u.onFirmware(signed(artifact, "2.0.0", fleet.priv), "/iot/releases/2.0.0");
    await settle(reports, "restarting");
    expect(reports.map((r) => r.state).filter((s, i, all) => s !== all[i - 1])).toEqual(["downloading", "verifying", "installing", "restarting"]);
    expect(exits).toEqual([75]);
    expect(readFileSync(join(stateDir, "releases", "2.0.0", "iot-agent.mjs"), "utf8")).toBe("// 2.0.0\n");
    expect(readlinkSync(join(stateDir, "current"))).toBe(join("releases", "2.0.0"));
    expect(JSON.parse(readFileSync(join(stateDir, "update", "trial.json"), "utf8"))).toMatchObject({ version: "2.0.0", previous: null, boots: 0 });
    expect(existsSync(join(stateDir, "update", "downloads", "2.0.0.part"))).toBe(false);
  });

  it("an artifact that is not the signed one is deleted, never unpacked, and current stays", async () => {
    const fleet = keyPair();
    const artifact = packTarGz([{ name: "iot-agent.mjs", data: Buffer.from("// 2.1.0\n") }]);
    const tampered = Buffer.from(artifact);
    tampered[20] ^= 1;
    const { url } = await artifactServer(tampered);
    const stateDir = mkdtempSync(join(tmp, "state-"));
    const { u, reports, exits } = updater({ releaseKey: fleet.pub, stateDir, fetch: (input, init) => fetch(new URL(new URL(String(input)).pathname, url), init) });
    u.onFirmware(signed(artifact, "2.1.0", fleet.priv), "/iot/releases/2.1.0");
    await settle(reports, "failed");
    expect(reports.at(-1)).toMatchObject({ state: "failed", reason: expect.stringMatching(/artifact refused before unpacking: SHA-256/) });
    expect(exits).toEqual([]);
    expect(existsSync(join(stateDir, "releases"))).toBe(false);
    expect(existsSync(join(stateDir, "current"))).toBe(false);
    expect(existsSync(join(stateDir, "update", "downloads", "2.1.0.part"))).toBe(false);
  });
});

describe("pruning old releases", () => {
  /** A state dir after several updates: four releases, a half-unpacked one, two downloads, 2.0.0 on trial after 1.2.0. */
  function stateAfterUpdates(trial: object | null): string {
    const stateDir = mkdtempSync(join(tmp, "state-"));
    for (const v of ["1.0.0", "1.1.0", "1.2.0", "2.0.0", ".3.0.0.unpacking"]) {
      mkdirSync(join(stateDir, "releases", v), { recursive: true });
      writeFileSync(join(stateDir, "releases", v, "iot-agent.mjs"), `// ${v}\n`);
    }
    mkdirSync(join(stateDir, "update", "downloads"), { recursive: true });
    writeFileSync(join(stateDir, "update", "downloads", "1.2.0.part"), "old");
    writeFileSync(join(stateDir, "update", "downloads", "1.3.0.part"), "given up");
    if (trial) writeFileSync(join(stateDir, "update", "trial.json"), JSON.stringify(trial));
    symlinkSync(join("releases", "2.0.0"), join(stateDir, "current"));
    return stateDir;
  }
  const names = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);

  it("once a release passes its trial, keeps it and the one before it and deletes older releases and downloads", () => {
    const stateDir = stateAfterUpdates({ version: "2.0.0", previous: "1.2.0", boots: 1, since: Date.now() });
    const { u, reports, told } = updater({ stateDir, running: "2.0.0", trial: "2.0.0" });
    u.onLinkOpen();
    expect(names(join(stateDir, "releases"))).toHaveLength(5); // nothing removed while on trial
    u.onAck();
    expect(reports.map((r) => r.state)).toEqual(["trial", "applied"]);
    expect(told).toEqual(["2.0.0"]);
    expect(names(join(stateDir, "releases"))).toEqual(["1.2.0", "2.0.0"]);
    expect(readFileSync(join(stateDir, "current", "iot-agent.mjs"), "utf8")).toBe("// 2.0.0\n");
    expect(names(join(stateDir, "update", "downloads"))).toEqual([]);
  });

  it("after an update from the installed agent keeps only the new release; without a trial record it deletes nothing", () => {
    const fromInstalled = stateAfterUpdates({ version: "2.0.0", previous: null, boots: 1, since: Date.now() });
    updater({ stateDir: fromInstalled, running: "2.0.0", trial: "2.0.0" }).u.onAck();
    expect(names(join(fromInstalled, "releases"))).toEqual(["2.0.0"]);

    // Which release came before is unknown: nothing is deleted (disk space is cheaper than the way back).
    const unknown = stateAfterUpdates(null);
    const { u, reports } = updater({ stateDir: unknown, running: "2.0.0", trial: "2.0.0" });
    u.onAck();
    expect(reports.map((r) => r.state)).toEqual(["applied"]);
    expect(names(join(unknown, "releases"))).toHaveLength(5);
    expect(names(join(unknown, "update", "downloads"))).toEqual(["1.2.0.part", "1.3.0.part"]);
  });

  it("never deletes the release current names, nor a download under way", () => {
    const stateDir = stateAfterUpdates(null);
    expect(pruneReleases(layout(stateDir), ["1.1.0"], "1.3.0").sort()).toEqual(
      [join("releases", ".3.0.0.unpacking"), join("releases", "1.0.0"), join("releases", "1.2.0"), join("update", "downloads", "1.2.0.part")].sort(),
    );
    expect(names(join(stateDir, "releases"))).toEqual(["1.1.0", "2.0.0"]);
    expect(names(join(stateDir, "update", "downloads"))).toEqual(["1.3.0.part"]);
    // A half-unpacked folder survives only while its install is under way.
    mkdirSync(join(stateDir, "releases", ".3.0.0.unpacking"));
    expect(pruneReleases(layout(stateDir), ["1.1.0"], "3.0.0")).toEqual([join("update", "downloads", "1.3.0.part")]);
    expect(names(join(stateDir, "releases"))).toEqual([".3.0.0.unpacking", "1.1.0", "2.0.0"]);
  });
});

describe("launcher", () => {
  it("rolls back a release whose hello is never acknowledged within the trial, and says why", async () => {
    const opt = mkdtempSync(join(tmp, "opt-"));
    const stateDir = mkdtempSync(join(tmp, "state-"));
    writeFileSync(join(opt, "launcher.mjs"), readFileSync(join(import.meta.dirname, "../../../device/launcher.mjs")));
    // The installed agent: says which it is and waits to be stopped.
    writeFileSync(join(opt, "iot-agent.mjs"), 'console.log("installed agent running"); process.on("SIGTERM", () => process.exit(0)); setInterval(() => {}, 1000);\n');
    // 2.0.0 starts and never connects (a hang, not a crash).
    mkdirSync(join(stateDir, "releases", "2.0.0"), { recursive: true });
    writeFileSync(join(stateDir, "releases", "2.0.0", "iot-agent.mjs"), 'console.log("2.0.0 hanging"); setInterval(() => {}, 1000);\n');
    mkdirSync(join(stateDir, "update"));
    writeFileSync(join(stateDir, "update", "trial.json"), JSON.stringify({ version: "2.0.0", previous: null, boots: 0, since: Date.now() }));
    symlinkSync(join("releases", "2.0.0"), join(stateDir, "current"));

    const child = spawn(process.execPath, [join(opt, "launcher.mjs")], { env: { ...process.env, IOT_STATE_DIR: stateDir, IOT_TRIAL_MS: "1000" }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    for (let i = 0; i < 200 && !out.includes("installed agent running"); i++) await new Promise((r) => setTimeout(r, 50));
    child.kill("SIGTERM");
    await new Promise((r) => child.on("exit", r));
    expect(out).toContain("launcher: starting 2.0.0 on trial (start 1 of 3; 1 s to connect)");
    expect(out).toContain("launcher: 2.0.0 rolled back to the installed agent: no hello acknowledged within 1 s");
    expect(out).toContain("installed agent running");
    expect(existsSync(join(stateDir, "current"))).toBe(false);
    expect(JSON.parse(readFileSync(join(stateDir, "update", "failed.json"), "utf8"))).toEqual(["2.0.0"]);
    expect(JSON.parse(readFileSync(join(stateDir, "update", "result.json"), "utf8"))).toMatchObject({ version: "2.0.0", state: "rolled-back", to: null });
    expect(existsSync(join(stateDir, "update", "trial.json"))).toBe(false);
  });
});
