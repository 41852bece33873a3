/**
 * Over-the-air updates of the agent (docs/updates.md). Who may call what:
 *
 *   POST /api/releases                 operator; the artifact as the body (application/gzip, streamed to R2)
 *                                      with the signed manifest (JSON) in `X-Release-Manifest`; or multipart:
 *                                      `manifest` + `artifact` (read whole, as older clients send it)
 *   GET  /api/releases                 viewer, operator → {releases} newest first
 *   POST /api/rollouts                 operator; {release, target: "all" | {ids} | {percent}, stages?, failureThreshold?, stageMs?}
 *   GET  /api/rollouts                 viewer, operator → {rollouts} with counts per update state
 *   GET  /api/rollouts/:id             viewer, operator
 *   POST /api/rollouts/:id/pause|resume|cancel|advance   operator
 *   GET  /api/devices/:id/firmware     viewer, operator → what runs, what is meant to, the update's step
 *   GET  /iot/releases/:version        device; only the release meant for it; HTTP Range → 206
 *
 * An upload is checked before it is kept: its size and SHA-256 against the manifest, and the
 * signature against RELEASE_PUBLIC_KEY when one is configured. A streamed one has its manifest,
 * signature and version checked before a byte of the body is read, and is hashed on its way to R2
 * (crypto.DigestStream), so the Worker never holds the artifact whole. Devices check the signature
 * again against their own pinned key, so nothing here can make a device run unsigned code.
 * Every change is in the audit trail.
 */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import {
  DeviceId,
  Ed25519PublicKey,
  RELEASE_LIMITS,
  ReleaseVersion,
  RolloutId,
  RolloutRequest,
  SignedRelease,
  describeIssues,
  releaseSigningText,
  type IotUpdateResponse,
  type ReleaseManifest,
} from "../../party/protocol";
import { releases, type RolloutAction } from "../../party/releases";
import { forgetRolloutPlan, releasePath } from "../../party/room/firmware";
import { fleetFor } from "../../party/fleet";
import { actorOf, callingDevice, requireRole, type AuthEnv } from "../auth";
import { audit } from "../audit";
import { room } from "../env";
import { ApiError } from "../errors";
import { validate, validateJson } from "../validate";

const encoder = new TextEncoder();

/** Room for the manifest and the multipart framing around the artifact. */
const UPLOAD_OVERHEAD = 64 * 1024;

// ---------------------------------------------------------------------------
// Operators: releases and rollouts (mounted under /api; no middleware for the whole sub-app,
// so nothing here touches the rest of /api)
// ---------------------------------------------------------------------------

const RolloutParam = z.object({ id: RolloutId });
const ActionParam = z.object({ id: RolloutId, action: z.enum(["pause", "resume", "cancel", "advance"]) });

export const releasesApi = new Hono<AuthEnv>()
  .post(
    "/releases",
    requireRole("operator"),
    bodyLimit({
      maxSize: RELEASE_LIMITS.maxArtifactBytes + UPLOAD_OVERHEAD,
      onError: () => {
        throw new ApiError(413, "payload_too_large", `a release artifact may be at most ${RELEASE_LIMITS.maxArtifactBytes} bytes`);
      },
    }),
    async (c) => {
      const upload = (c.req.header("content-type") ?? "").startsWith("application/gzip") ? streamedUpload(c) : await bufferedUpload(c);
      const { manifest } = upload;
      const signatureChecked = await checkSignature(c.env, manifest);
      const store = releases(c.env);
      if (await store.getRelease(manifest.version)) {
        throw new ApiError(409, "release_exists", `release ${manifest.version} exists; releases never change: publish a new version`);
      }
      // The hash in the key: a second upload of the same version can never replace the bytes a manifest names.
      const key = `releases/${manifest.version}/${manifest.sha256}.tar.gz`;
      await upload.store(c.env.RELEASE_BUCKET, key);
      const record = { ...manifest, createdAt: Date.now(), createdBy: actorOf(c).actor, signatureChecked };
      if (!(await store.addRelease({ ...record, key }))) {
        throw new ApiError(409, "release_exists", `release ${manifest.version} was published meanwhile`);
      }
      console.log(`release ${manifest.version} published (${manifest.size} bytes, sha256 ${manifest.sha256.slice(0, 12)}…)`);
      await audit(c, "release.publish", `release:${manifest.version}`, { size: manifest.size, sha256: manifest.sha256, signatureChecked });
      return c.json(record, 201);
    },
  )
  .get("/releases", requireRole("viewer"), async (c) => c.json({ releases: await releases(c.env).listReleases() }))
  .post("/rollouts", requireRole("operator"), validateJson(RolloutRequest), async (c) => {
    const request = c.req.valid("json");
    const result = await releases(c.env).createRollout(request, actorOf(c).actor);
    if (!result.ok) throw new ApiError(result.status, result.code, result.message);
    const { rollout } = result;
    await afterChange(c, rollout.id, "rollout.create", { release: rollout.release, target: rollout.target, stages: rollout.stages, failureThreshold: rollout.failureThreshold });
    return c.json(rollout, 201);
  })
  .get("/rollouts", requireRole("viewer"), async (c) => c.json({ rollouts: await releases(c.env).listRollouts() }))
  .get("/rollouts/:id", requireRole("viewer"), validate("param", RolloutParam), async (c) => {
    const rollout = await releases(c.env).getRollout(c.req.valid("param").id);
    if (!rollout) throw new ApiError(404, "unknown_rollout", `no rollout ${c.req.valid("param").id}`);
    return c.json(rollout);
  })
  .post("/rollouts/:id/:action", requireRole("operator"), validate("param", ActionParam), async (c) => {
    const { id, action } = c.req.valid("param");
    const result = await releases(c.env).changeRollout(id, action as RolloutAction, null);
    if (!result.ok) throw new ApiError(result.status, result.code, result.message);
    await afterChange(c, id, `rollout.${action}` as const, { state: result.rollout.state, stage: result.rollout.stages[result.rollout.stage] });
    return c.json(result.rollout);
  })
  .get("/devices/:id/firmware", requireRole("viewer"), validate("param", z.object({ id: DeviceId })), async (c) => {
    const { id } = c.req.valid("param");
    if (!(await fleetFor(c.env, id).get(id))) throw new ApiError(404, "unknown_device", `no device ${id}`);
    const { release: _release, ...view } = await room(c.env, id).firmware();
    return c.json(view);
  });

/**
 * After a rollout changed: its audit row, this isolate's copy of the plan dropped, and the rooms
 * of devices it names asked to look again at once (they tell a connected device; the rest of the
 * fleet learns within FIRMWARE_CHECK_MS, or at its next connect).
 */
async function afterChange(
  c: Context<AuthEnv>,
  id: string,
  action: "rollout.create" | "rollout.pause" | "rollout.resume" | "rollout.cancel" | "rollout.advance",
  detail: Record<string, unknown>,
): Promise<void> {
  forgetRolloutPlan();
  await audit(c, action, `rollout:${id}`, detail);
  const rollout = await releases(c.env).getRollout(id);
  if (rollout && typeof rollout.target === "object" && "ids" in rollout.target) {
    const ids = rollout.target.ids;
    const nudge = Promise.allSettled(ids.map(async (device) => (await fleetFor(c.env, device).get(device)) && room(c.env, device).firmware()));
    try {
      c.executionCtx.waitUntil(nudge);
    } catch {
      // No execution context (called outside a request in a test): the nudge runs unawaited, which is all it is.
    }
  }
}

/** An upload whose manifest is read and checked; `store` puts its artifact in R2 under `key`, or throws. */
type Upload = { manifest: SignedRelease; store: (bucket: R2Bucket, key: string) => Promise<void> };

const ARTIFACT_METADATA = { contentType: "application/gzip" };

/**
 * The artifact as the request body, streamed to R2: the manifest comes in `X-Release-Manifest`, so
 * it is checked (and Content-Length against its size) before the body is read. On the way, each
 * chunk goes through a SHA-256 (crypto.DigestStream) and a FixedLengthStream (R2 needs the length
 * up front, and a body shorter or longer than it fails the put instead of being stored). R2 checks
 * the hash too (`sha256`); whichever refuses, the client is told it is not the signed artifact.
 */
function streamedUpload(c: Context<AuthEnv>): Upload {
  const manifest = parseManifest(c.req.header("x-release-manifest") ?? null, "header X-Release-Manifest");
  const length = c.req.header("content-length");
  if (length === undefined) throw new ApiError(411, "length_required", "send Content-Length: the artifact is streamed to storage, which needs its length first");
  if (Number(length) !== manifest.size) throw new ApiError(422, "size_mismatch", `the artifact is ${length} bytes; the manifest says ${manifest.size}`);
  const body = c.req.raw.body;
  if (!body) throw new ApiError(400, "missing_artifact", "the body (the artifact) is empty");
  return {
    manifest,
    async store(bucket, key) {
      const digest = new crypto.DigestStream("SHA-256");
      const hasher = digest.getWriter();
      let complete = false;
      const hashing = new TransformStream<Uint8Array, Uint8Array>({
        async transform(chunk, out) {
          await hasher.write(chunk);
          out.enqueue(chunk);
        },
        async flush() {
          complete = true;
          await hasher.close();
        },
      });
      const mismatch = async () => {
        const sha256 = hex(await digest.digest);
        return sha256 === manifest.sha256 ? null : new ApiError(422, "sha256_mismatch", `the artifact's SHA-256 is ${sha256}; the manifest says ${manifest.sha256}`);
      };
      try {
        await bucket.put(key, body.pipeThrough(hashing).pipeThrough(new FixedLengthStream(manifest.size)), { httpMetadata: ARTIFACT_METADATA, sha256: manifest.sha256 });
      } catch (err) {
        // Every byte read: R2 refused the hash (say it as ours). Fewer: the body ended early or broke.
        if (complete) throw (await mismatch()) ?? err;
        throw new ApiError(400, "incomplete_artifact", `the body ended before the manifest's ${manifest.size} bytes arrived`);
      }
      // R2 checked `sha256` already; checked again here, so nothing depends on the bucket doing it.
      const wrong = await mismatch();
      if (wrong) {
        await bucket.delete(key);
        throw wrong;
      }
    },
  };
}

/** A multipart body, read whole (≤ 32 MB) and checked before it is kept. */
async function bufferedUpload(c: Context<AuthEnv>): Promise<Upload> {
  const { manifest, artifact } = await readUpload(c);
  await checkArtifact(manifest, artifact);
  return { manifest, store: async (bucket, key) => void (await bucket.put(key, artifact, { httpMetadata: ARTIFACT_METADATA, sha256: manifest.sha256 })) };
}

function parseManifest(text: string | null, where: string): SignedRelease {
  if (text === null) throw new ApiError(400, "missing_manifest", `${where} (the signed manifest, JSON) is missing`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ApiError(400, "invalid_json", `${where} is not valid JSON`);
  }
  const parsed = SignedRelease.safeParse(json);
  if (!parsed.success) throw new ApiError(400, "validation_failed", `manifest: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** The multipart body: `manifest` (JSON text of a SignedRelease) and `artifact` (the file). */
async function readUpload(c: Context<AuthEnv>): Promise<{ manifest: SignedRelease; artifact: ArrayBuffer }> {
  const type = c.req.header("content-type") ?? "";
  if (!type.startsWith("multipart/form-data")) {
    throw new ApiError(415, "unsupported_body", "send the artifact as application/gzip with the manifest in X-Release-Manifest (npm run release does), or multipart/form-data with parts `manifest` (JSON) and `artifact`");
  }
  let form: FormData;
  try {
    form = await c.req.raw.formData();
  } catch {
    throw new ApiError(400, "bad_multipart", "the body is not readable multipart/form-data");
  }
  const manifestPart = form.get("manifest");
  const artifactPart = form.get("artifact");
  const manifestText = typeof manifestPart === "string" ? manifestPart : manifestPart ? await manifestPart.text() : null;
  if (manifestText === null) throw new ApiError(400, "missing_manifest", "part `manifest` (the signed manifest, JSON) is missing");
  if (artifactPart === null || typeof artifactPart === "string") throw new ApiError(400, "missing_artifact", "part `artifact` (a file) is missing");
  return { manifest: parseManifest(manifestText, "part `manifest`"), artifact: await artifactPart.arrayBuffer() };
}

async function checkArtifact(manifest: ReleaseManifest, artifact: ArrayBuffer): Promise<void> {
  if (artifact.byteLength !== manifest.size) {
    throw new ApiError(422, "size_mismatch", `the artifact is ${artifact.byteLength} bytes; the manifest says ${manifest.size}`);
  }
  const sha256 = hex(await crypto.subtle.digest("SHA-256", artifact));
  if (sha256 !== manifest.sha256) throw new ApiError(422, "sha256_mismatch", `the artifact's SHA-256 is ${sha256}; the manifest says ${manifest.sha256}`);
}

/** True when checked against RELEASE_PUBLIC_KEY; false when none is configured. A bad signature is refused. */
async function checkSignature(env: Env, release: SignedRelease): Promise<boolean> {
  const configured = env.RELEASE_PUBLIC_KEY?.trim();
  if (!configured) return false;
  if (!Ed25519PublicKey.safeParse(configured).success) {
    throw new ApiError(500, "misconfigured", "RELEASE_PUBLIC_KEY is not an Ed25519 public key (43 base64url characters from npm run release -- keygen)");
  }
  if (!(await verifyRelease(configured, release))) {
    throw new ApiError(422, "bad_signature", "the manifest's signature does not verify against this endpoint's RELEASE_PUBLIC_KEY: signed with another key?");
  }
  return true;
}

/** Ed25519 over releaseSigningText, with WebCrypto (workerd has it; so does Node). */
export async function verifyRelease(publicKey: string, release: SignedRelease): Promise<boolean> {
  const key = await crypto.subtle.importKey("raw", fromBase64url(publicKey), { name: "Ed25519" }, false, ["verify"]);
  return crypto.subtle.verify({ name: "Ed25519" }, key, fromBase64url(release.signature), encoder.encode(releaseSigningText(release)));
}

// ---------------------------------------------------------------------------
// Devices: the download (mounted under /iot, behind its device auth and rate limit)
// ---------------------------------------------------------------------------

export const releasesIot = new Hono<AuthEnv>().get("/releases/:version", validate("param", z.object({ version: ReleaseVersion })), async (c) => {
  const id = callingDevice(c);
  const { version } = c.req.valid("param");
  const { release } = await room(c.env, id).firmware();
  // Only what is meant for this device: a device cannot fetch other releases (or probe which exist).
  if (!release || release.version !== version) {
    throw new ApiError(403, "not_your_release", `release ${version} is not meant for device ${id}${release ? ` (${release.version} is)` : ""}`);
  }
  const stored = await releases(c.env).getRelease(version);
  if (!stored) throw new ApiError(404, "unknown_release", `no release ${version}`);
  const range = parseRange(c.req.header("range"), stored.size);
  if (range === "unsatisfiable") {
    return c.body(null, 416, { "content-range": `bytes */${stored.size}` });
  }
  const object = await c.env.RELEASE_BUCKET.get(stored.key, range ? { range: { offset: range.start, length: range.end - range.start + 1 } } : {});
  if (!object) throw new ApiError(500, "artifact_missing", `release ${version} has no artifact in the bucket`);
  const headers: Record<string, string> = {
    "content-type": "application/gzip",
    "accept-ranges": "bytes",
    etag: `"${stored.sha256}"`,
    "cache-control": "private, no-store",
    "x-release-sha256": stored.sha256,
  };
  if (!range) return c.body(object.body, 200, { ...headers, "content-length": String(stored.size) });
  return c.body(object.body, 206, {
    ...headers,
    "content-length": String(range.end - range.start + 1),
    "content-range": `bytes ${range.start}-${range.end}/${stored.size}`,
  });
});

/**
 * One `bytes=` range (RFC 9110 §14): `a-b`, `a-`, `-n`. Null: no range or one we may ignore
 * (several ranges, another unit, bad syntax: the whole body then, as the RFC allows).
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | "unsatisfiable" | null {
  if (!header) return null;
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== "" && Number(m[2]) < start) return null;
  if (start >= size) return "unsatisfiable";
  return { start, end };
}

/**
 * `GET /iot/update` for a device a rollout means a release for: that release, signed, with its
 * download path; null when none does (the route then answers as it always has).
 */
export async function rolloutUpdate(env: Env, id: string, version: string | undefined): Promise<IotUpdateResponse | null> {
  const { release } = await room(env, id).firmware();
  if (!release) return null;
  const differs = version !== undefined && version !== release.version;
  return {
    message: "IoT Update",
    current: release.version,
    update: differs
      ? { version: release.version, url: releasePath(release.version), size: release.size, sha256: release.sha256, signature: release.signature, minAgent: release.minAgent }
      : null,
  };
}

function hex(buffer: ArrayBuffer): string {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function fromBase64url(text: string): Uint8Array {
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(s, (ch) => ch.charCodeAt(0));
}
