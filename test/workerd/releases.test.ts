/**
 * Over-the-air updates on the endpoint (issue 15): releases checked before they are kept, who may
 * publish and download, rollouts and their state machine, the stable percentage selection, Range
 * reads from R2, and the room learning its device's release and counting its steps.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { releaseSigningText, type ReleaseManifest, type Rollout, type SignedRelease } from "../../party/protocol";
import { chooseRelease, includes, rolloutBucket } from "../../party/releases";
import { parseRange } from "../../worker/routes/releases";
import { asAdmin, asDevice, asViewer, call, connectDevice, get, json, postJson, provision, register, uniqueId } from "./helpers";

/** The private half of the test-only RELEASE_PUBLIC_KEY in vitest.config.ts. */
const TEST_KEY = { kty: "OKP", crv: "Ed25519", d: "dPA0pYn0I8GiKEEkxB2FXxDpWk6k2T_d232K2UyGRxQ", x: "GA8efEoKDIUl4_lEzffyrgEeevr3iU0qx0vLsTsLWho" };

function b64url(bytes: ArrayBuffer): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function sha256(bytes: Uint8Array): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function sign(manifest: ReleaseManifest, jwk: JsonWebKey = TEST_KEY): Promise<SignedRelease> {
  const key = await crypto.subtle.importKey("jwk", jwk, { name: "Ed25519" }, false, ["sign"]);
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, key, new TextEncoder().encode(releaseSigningText(manifest)));
  return { ...manifest, signature: b64url(signature) };
}

/** An artifact of `size` bytes that differ from one another, and its signed manifest. */
async function release(version: string, size = 1000, jwk?: JsonWebKey): Promise<{ artifact: Uint8Array; manifest: SignedRelease }> {
  const artifact = Uint8Array.from({ length: size }, (_, i) => (i * 7 + version.length) % 256);
  const manifest = await sign({ version, size, sha256: await sha256(artifact), notes: `test ${version}`, minAgent: null }, jwk);
  return { artifact, manifest };
}

/** As npm run release sends it: the artifact as the body, streamed; the manifest in a header. */
function uploadStreamed(manifest: unknown, body: Uint8Array | ReadableStream<Uint8Array>, length: number): Promise<Response> {
  return call("/api/releases", {
    method: "POST",
    headers: { ...asAdmin, "content-type": "application/gzip", "content-length": String(length), ...(manifest ? { "x-release-manifest": JSON.stringify(manifest) } : {}) },
    body,
  });
}

function upload(manifest: unknown, artifact: Uint8Array | null, headers: Record<string, string> = asAdmin): Promise<Response> {
  const form = new FormData();
  form.set("manifest", JSON.stringify(manifest));
  if (artifact) form.set("artifact", new File([artifact], "agent.tar.gz", { type: "application/gzip" }));
  return call("/api/releases", { method: "POST", headers, body: form });
}

async function publish(version: string, size = 1000): Promise<Uint8Array> {
  const { artifact, manifest } = await release(version, size);
  const res = await upload(manifest, artifact);
  if (res.status !== 201) throw new Error(`publish ${version}: ${res.status} ${await res.text()}`);
  return artifact;
}

async function rollout(body: Record<string, unknown>): Promise<Rollout> {
  const res = await postJson("/api/rollouts", body, asAdmin);
  if (res.status !== 201) throw new Error(`rollout: ${res.status} ${await res.text()}`);
  return json<Rollout>(res);
}

const action = (id: string, what: string, headers = asAdmin) => call(`/api/rollouts/${id}/${what}`, { method: "POST", headers });

async function auditActions(): Promise<{ action: string; actor: string; target: string | null; detail: any }[]> {
  return (await json(await get("/api/audit?limit=200"))).entries;
}

describe("POST /api/releases", () => {
  it("keeps a signed release whose size and SHA-256 match, lists it, and records who published it", async () => {
    const { artifact, manifest } = await release("1.1.0");
    const res = await upload(manifest, artifact);
    expect(res.status).toBe(201);
    expect(await json(res)).toMatchObject({ version: "1.1.0", size: 1000, sha256: manifest.sha256, signatureChecked: true, createdBy: "admin" });
    const { releases } = await json(await get("/api/releases", asViewer));
    expect(releases.map((r: { version: string }) => r.version)).toContain("1.1.0");
    expect((await auditActions()).find((e) => e.action === "release.publish" && e.target === "release:1.1.0")).toMatchObject({ actor: "admin" });
  });

  it("streams an artifact sent as the body to R2 (manifest in X-Release-Manifest) and keeps exactly its bytes", async () => {
    const { artifact, manifest } = await release("1.8.0", 300_000);
    const res = await uploadStreamed(manifest, artifact, artifact.length);
    expect(res.status).toBe(201);
    expect(await json(res)).toMatchObject({ version: "1.8.0", size: 300_000, sha256: manifest.sha256, signatureChecked: true });
    const stored = await env.RELEASE_BUCKET.get(`releases/1.8.0/${manifest.sha256}.tar.gz`);
    expect(new Uint8Array(await stored!.arrayBuffer())).toEqual(artifact);
  });

  it("refuses a streamed artifact that is not the signed one, keeping nothing, and says why", async () => {
    const { artifact, manifest } = await release("1.8.1", 50_000);
    const tampered = artifact.slice();
    tampered[40_000] ^= 0x01;
    const bad = await uploadStreamed(manifest, tampered, tampered.length);
    expect(bad.status).toBe(422);
    expect((await json(bad)).error).toMatchObject({ code: "sha256_mismatch", message: expect.stringContaining(manifest.sha256) });
    expect((await env.RELEASE_BUCKET.list({ prefix: "releases/1.8.1/" })).objects).toEqual([]);
    const longer = await uploadStreamed(manifest, artifact, artifact.length + 1);
    expect(longer.status).toBe(422);
    expect((await json(longer)).error.code).toBe("size_mismatch");
    const noManifest = await uploadStreamed(null, artifact, artifact.length);
    expect(noManifest.status).toBe(400);
    expect((await json(noManifest)).error.code).toBe("missing_manifest");
    expect((await json(await get("/api/releases"))).releases.map((r: { version: string }) => r.version)).not.toContain("1.8.1");
  });

  it("refuses a streamed release signed with another key, or of a version that exists, before reading its body", async () => {
    const other = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const foreign = await release("1.8.2", 1000, (await crypto.subtle.exportKey("jwk", other.privateKey)) as JsonWebKey);
    await publish("1.8.3");
    const again = await release("1.8.3");
    for (const [manifest, code] of [[foreign.manifest, "bad_signature"], [again.manifest, "release_exists"]] as const) {
      let pulled = 0;
      // Pulled only when read (no read-ahead queue).
      const body = new ReadableStream<Uint8Array>(
        {
          pull(ctl) {
            pulled++;
            ctl.enqueue(new Uint8Array(100));
          },
        },
        { highWaterMark: 0 },
      );
      const res = await uploadStreamed(manifest, body, manifest.size);
      expect((await json(res)).error.code).toBe(code);
      // The runtime's pump reads one chunk ahead of the Worker; reading the body would take all ten.
      expect(pulled).toBeLessThanOrEqual(1);
    }
  });

  it("refuses a second upload of the same version: releases never change", async () => {
    await publish("1.2.0");
    const { artifact, manifest } = await release("1.2.0", 1200);
    const res = await upload(manifest, artifact);
    expect(res.status).toBe(409);
    expect((await json(res)).error.code).toBe("release_exists");
  });

  it("refuses an artifact with one byte changed, or of another size, than its manifest says", async () => {
    const { artifact, manifest } = await release("1.3.0");
    const tampered = artifact.slice();
    tampered[500] ^= 0x01;
    const bad = await upload(manifest, tampered);
    expect(bad.status).toBe(422);
    expect((await json(bad)).error.code).toBe("sha256_mismatch");
    const short = await upload(manifest, artifact.slice(0, 999));
    expect(short.status).toBe(422);
    expect((await json(short)).error.code).toBe("size_mismatch");
    expect((await json(await get("/api/releases"))).releases.map((r: { version: string }) => r.version)).not.toContain("1.3.0");
  });

  it("refuses a manifest signed with another key than RELEASE_PUBLIC_KEY, and one whose signed fields were changed", async () => {
    const other = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const otherJwk = (await crypto.subtle.exportKey("jwk", other.privateKey)) as JsonWebKey;
    const { artifact, manifest } = await release("1.4.0", 1000, otherJwk);
    const res = await upload(manifest, artifact);
    expect(res.status).toBe(422);
    expect((await json(res)).error.code).toBe("bad_signature");
    const good = await release("1.4.1");
    const renotes = await upload({ ...good.manifest, notes: "a different promise" }, good.artifact);
    expect(renotes.status).toBe(422);
    expect((await json(renotes)).error.code).toBe("bad_signature");
  });

  it("answers a clear error for a body that is not a release", async () => {
    const notMultipart = await postJson("/api/releases", { version: "1.5.0" }, asAdmin);
    expect(notMultipart.status).toBe(415);
    const { artifact, manifest } = await release("1.5.0");
    const noArtifact = await upload(manifest, null);
    expect(noArtifact.status).toBe(400);
    expect((await json(noArtifact)).error.code).toBe("missing_artifact");
    const badVersion = await upload({ ...manifest, version: "v1.5" }, artifact);
    expect(badVersion.status).toBe(400);
    expect((await json(badVersion)).error.message).toMatch(/version/);
  });

  it("is for operators only: viewers and devices are refused, and nobody without a token", async () => {
    const { artifact, manifest } = await release("1.6.0");
    expect((await upload(manifest, artifact, asViewer)).status).toBe(403);
    expect((await upload(manifest, artifact, await asDevice(uniqueId("pub")))).status).toBe(403);
    expect((await upload(manifest, artifact, {})).status).toBe(401);
    expect((await postJson("/api/rollouts", { release: "1.1.0", target: "all" }, asViewer)).status).toBe(403);
  });
});

describe("rollouts", () => {
  it("move through their state machine: pause, resume, advance by stage, cancel; refused moves say why", async () => {
    await publish("2.1.0");
    const r = await rollout({ release: "2.1.0", target: { ids: ["nobody-1"] }, stages: [5, 25, 100], failureThreshold: 2 });
    expect(r).toMatchObject({ state: "active", stage: 0, stages: [5, 25, 100], failureThreshold: 2, createdBy: "admin" });
    expect(await json(await action(r.id, "pause"))).toMatchObject({ state: "paused", reason: "paused by an operator" });
    expect((await action(r.id, "pause")).status).toBe(409);
    expect((await action(r.id, "advance")).status).toBe(409);
    expect(await json(await action(r.id, "resume"))).toMatchObject({ state: "active", reason: null });
    expect(await json(await action(r.id, "advance"))).toMatchObject({ stage: 1 });
    expect(await json(await action(r.id, "advance"))).toMatchObject({ stage: 2 });
    const last = await action(r.id, "advance");
    expect(last.status).toBe(409);
    expect((await json(last)).error.message).toMatch(/last stage/);
    expect(await json(await action(r.id, "cancel"))).toMatchObject({ state: "cancelled" });
    expect((await action(r.id, "resume")).status).toBe(409);
    expect((await action(r.id, "pause", asViewer)).status).toBe(403);
    const actions = (await auditActions()).filter((e) => e.target === `rollout:${r.id}`).map((e) => e.action);
    expect(actions).toEqual(["rollout.cancel", "rollout.advance", "rollout.advance", "rollout.resume", "rollout.pause", "rollout.create"]);
  });

  it("refuses a rollout of a release nobody published, and stages that do not rise", async () => {
    const unknown = await postJson("/api/rollouts", { release: "9.9.9", target: "all" }, asAdmin);
    expect(unknown.status).toBe(409);
    expect((await json(unknown)).error.code).toBe("unknown_release");
    const falling = await postJson("/api/rollouts", { release: "2.1.0", target: "all", stages: [50, 10] }, asAdmin);
    expect(falling.status).toBe(400);
    expect((await json(falling)).error.message).toMatch(/rising/);
  });

  it("a percentage picks the same devices every time, about that share, each stage a superset of the one before", async () => {
    const ids = Array.from({ length: 2000 }, (_, i) => `pi-${i}`);
    const pick = async (id: string, percent: number) => {
      const chosen: string[] = [];
      for (const d of ids) if (await includes({ id, target: { percent: 10 }, percent }, d)) chosen.push(d);
      return chosen;
    };
    const first = await pick("r-aaaa", 100);
    expect(await pick("r-aaaa", 100)).toEqual(first);
    // 10 % of 2000 is 200; a hash is not exact, but a stable hash of this many ids lands close.
    expect(first.length).toBeGreaterThan(150);
    expect(first.length).toBeLessThan(250);
    const stage5 = await pick("r-aaaa", 5);
    expect(stage5.length).toBeLessThan(first.length);
    expect(stage5.every((d) => first.includes(d))).toBe(true);
    // Another rollout picks other devices: the same few are not always first.
    const other = await pick("r-bbbb", 100);
    expect(other).not.toEqual(first);
    expect(await rolloutBucket("r-aaaa", "pi-1")).toBe(await rolloutBucket("r-aaaa", "pi-1"));
  });

  it("chooses the newest active rollout a device is in; a paused one only for a device already under way", async () => {
    const release = (version: string) => ({ version, size: 1, sha256: "0".repeat(64), notes: "", minAgent: null, signature: "A".repeat(86) });
    const plan = {
      rollouts: [
        { id: "r-new1", state: "paused" as const, release: release("3.0.0"), target: "all" as const, percent: 100 },
        { id: "r-old1", state: "active" as const, release: release("2.0.0"), target: "all" as const, percent: 100 },
      ],
    };
    expect((await chooseRelease(plan, "pi-1", null))?.release.version).toBe("2.0.0");
    expect((await chooseRelease(plan, "pi-1", "r-new1"))?.release.version).toBe("3.0.0");
    expect(await chooseRelease({ rollouts: [{ ...plan.rollouts[1]!, target: { ids: ["pi-2"] } }] }, "pi-1", null)).toBeNull();
  });
});

describe("devices and their release", () => {
  it("a device downloads the release meant for it, whole or from a byte on (206 with Content-Range); others may not", async () => {
    const id = uniqueId("dl");
    const outsider = uniqueId("dl-out");
    await register(id);
    await register(outsider);
    const artifact = await publish("3.1.0", 5000);
    await rollout({ release: "3.1.0", target: { ids: [id] } });
    const auth = await asDevice(id);

    const whole = await get("/iot/releases/3.1.0", auth);
    expect(whole.status).toBe(200);
    expect(whole.headers.get("accept-ranges")).toBe("bytes");
    expect(new Uint8Array(await whole.arrayBuffer())).toEqual(artifact);

    const rest = await get("/iot/releases/3.1.0", { ...auth, range: "bytes=2500-" });
    expect(rest.status).toBe(206);
    expect(rest.headers.get("content-range")).toBe("bytes 2500-4999/5000");
    expect(new Uint8Array(await rest.arrayBuffer())).toEqual(artifact.slice(2500));

    const middle = await get("/iot/releases/3.1.0", { ...auth, range: "bytes=10-19" });
    expect(middle.status).toBe(206);
    expect(new Uint8Array(await middle.arrayBuffer())).toEqual(artifact.slice(10, 20));

    const past = await get("/iot/releases/3.1.0", { ...auth, range: "bytes=5000-" });
    expect(past.status).toBe(416);
    expect(past.headers.get("content-range")).toBe("bytes */5000");

    // Not meant for it: another device, another version, and no operator through the device route.
    const refused = await get("/iot/releases/3.1.0", await asDevice(outsider));
    expect(refused.status).toBe(403);
    expect((await json(refused)).error.code).toBe("not_your_release");
    expect((await get("/iot/releases/1.1.0", auth)).status).toBe(403);
    expect((await get("/iot/releases/3.1.0", asAdmin)).status).toBe(403);
  });

  it("GET /iot/update answers the release a rollout means for the device, signed, with its download path", async () => {
    const id = uniqueId("upd");
    await register(id);
    await publish("3.2.0");
    await rollout({ release: "3.2.0", target: { ids: [id] } });
    const answer = await json(await get("/iot/update?version=1.0.0", await asDevice(id)));
    expect(answer).toMatchObject({ message: "IoT Update", current: "3.2.0", update: { version: "3.2.0", url: "/iot/releases/3.2.0", size: 1000 } });
    expect(answer.update.signature).toMatch(/^[A-Za-z0-9_-]{86}$/);
    expect((await json(await get("/iot/update?version=3.2.0", await asDevice(id)))).update).toBeNull();
  });

  it("the room tells its device its release after hello, records each step it reports, and the rollout counts them", async () => {
    const id = uniqueId("room");
    await provision(id);
    await publish("3.3.0");
    const r = await rollout({ release: "3.3.0", target: { ids: [id] } });
    const device = await connectDevice(id);
    const firmware = await device.next((m) => m.type === "firmware");
    expect(firmware).toMatchObject({ rollout: r.id, path: "/iot/releases/3.3.0", release: { version: "3.3.0", size: 1000 } });
    for (const step of [
      { state: "downloading", progress: 0.5 },
      { state: "verifying" },
      { state: "installing" },
      { state: "restarting" },
      { state: "trial" },
      { state: "applied" },
    ]) {
      device.send({ type: "update", version: "3.3.0", ...step });
    }
    const counted = async () => (await json<Rollout>(await get(`/api/rollouts/${r.id}`))).counts;
    await expect.poll(counted, { timeout: 5_000 }).toEqual({ applied: 1 });
    const view = await json(await get(`/api/devices/${id}/firmware`, asViewer));
    expect(view).toMatchObject({ running: "1.0.0", target: { version: "3.3.0", rollout: r.id }, update: { version: "3.3.0", state: "applied", rollout: r.id } });
    device.close();
  });

  it("a rollout pauses itself once failures and roll-backs reach its threshold, with the reason, in the audit trail", async () => {
    const ids = [uniqueId("fail"), uniqueId("fail"), uniqueId("fail")];
    await publish("3.4.0");
    const r = await rollout({ release: "3.4.0", target: { ids }, failureThreshold: 2 });
    const sockets = [];
    for (const id of ids) {
      await provision(id);
      sockets.push(await connectDevice(id));
    }
    for (const s of sockets) await s.next((m) => m.type === "firmware" && m.release?.version === "3.4.0");
    sockets[0]!.send({ type: "update", version: "3.4.0", state: "rolled-back", reason: "exited with code 3 at each of 3 starts" });
    await expect.poll(async () => (await json<Rollout>(await get(`/api/rollouts/${r.id}`))).counts["rolled-back"], { timeout: 5_000 }).toBe(1);
    expect((await json<Rollout>(await get(`/api/rollouts/${r.id}`))).state).toBe("active");
    sockets[1]!.send({ type: "update", version: "3.4.0", state: "failed", reason: "sha256 mismatch" });
    await expect.poll(async () => (await json<Rollout>(await get(`/api/rollouts/${r.id}`))).state, { timeout: 5_000 }).toBe("paused");
    const paused = await json<Rollout>(await get(`/api/rollouts/${r.id}`));
    expect(paused.reason).toMatch(/2 device\(s\) failed or rolled back \(threshold 2\)/);
    expect(paused.failures.map((f) => f.state).sort()).toEqual(["failed", "rolled-back"]);
    expect((await auditActions()).find((e) => e.action === "rollout.pause" && e.target === `rollout:${r.id}`)).toMatchObject({ actor: "system" });
    // Paused: the third device, which has not started, is no longer meant to download it.
    expect((await get("/iot/releases/3.4.0", await asDevice(ids[2]!))).status).toBe(403);
    for (const s of sockets) s.close();
  });

  it("counts devices with no release key pinned as unsupported, never toward the failure threshold", async () => {
    const ids = [uniqueId("nokey"), uniqueId("nokey"), uniqueId("nokey")];
    await publish("3.5.0");
    const r = await rollout({ release: "3.5.0", target: { ids }, failureThreshold: 1 });
    const sockets = [];
    for (const id of ids) {
      await provision(id);
      sockets.push(await connectDevice(id));
    }
    for (const s of sockets) await s.next((m) => m.type === "firmware" && m.release?.version === "3.5.0");
    const reason = "no IOT_RELEASE_KEY pinned: updates are off on this device";
    sockets[0]!.send({ type: "update", version: "3.5.0", state: "unsupported", reason });
    sockets[1]!.send({ type: "update", version: "3.5.0", state: "unsupported", reason });
    const view = async () => json<Rollout>(await get(`/api/rollouts/${r.id}`));
    await expect.poll(async () => (await view()).counts.unsupported, { timeout: 5_000 }).toBe(2);
    expect(await view()).toMatchObject({ state: "active", failures: [] });
    expect(await json(await get(`/api/devices/${ids[0]}/firmware`, asViewer))).toMatchObject({ update: { version: "3.5.0", state: "unsupported", reason } });
    // The threshold still works beside them: one real failure pauses it.
    sockets[2]!.send({ type: "update", version: "3.5.0", state: "failed", reason: "sha256 mismatch" });
    await expect.poll(async () => (await view()).state, { timeout: 5_000 }).toBe("paused");
    expect((await view()).reason).toMatch(/^1 device\(s\) failed or rolled back \(threshold 1\)/);
    for (const s of sockets) s.close();
  });

  it("refuses an update report that is not one (bad state, unprintable reason)", async () => {
    const id = uniqueId("bad");
    await provision(id);
    const device = await connectDevice(id);
    device.send({ type: "update", version: "3.3.0", state: "exploded" });
    expect(await device.next((m) => m.type === "error")).toMatchObject({ code: "invalid_message" });
    device.send({ type: "update", version: "3.3.0", state: "failed", reason: "\u001b[31mred" });
    expect(await device.next((m) => m.type === "error", 5_000, 1 + device.messages.findIndex((m) => m.type === "error"))).toMatchObject({ code: "invalid_message" });
    device.close();
  });
});

describe("parseRange", () => {
  it("reads one bytes= range and ignores what it may", () => {
    expect(parseRange(undefined, 100)).toBeNull();
    expect(parseRange("bytes=0-9", 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange("bytes=90-200", 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange("bytes=-10", 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange("bytes=100-", 100)).toBe("unsatisfiable");
    expect(parseRange("bytes=0-1,5-6", 100)).toBeNull();
    expect(parseRange("items=0-1", 100)).toBeNull();
    expect(parseRange("bytes=9-3", 100)).toBeNull();
  });
});
