/**
 * A release published as `npm run release` publishes it (scripts/release.mjs), without building
 * the agent: an artifact of made-up bytes and its manifest, signed with `privateKey` over
 * releaseSigningText, uploaded as multipart by the operator. For tests that need a release in
 * the Releases object and R2 but never install it.
 */
import { createHash, sign, type KeyObject } from "node:crypto";
import { releaseSigningText, type ReleaseManifest } from "../../party/protocol";

export async function publishRelease(opts: { url: string; adminToken: string; privateKey: KeyObject; version: string; notes?: string; size?: number }): Promise<ReleaseManifest> {
  const size = opts.size ?? 48_000;
  const artifact = Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + 7) % 256));
  const manifest: ReleaseManifest = { version: opts.version, size, sha256: createHash("sha256").update(artifact).digest("hex"), notes: opts.notes ?? "", minAgent: null };
  const signature = sign(null, Buffer.from(releaseSigningText(manifest)), opts.privateKey).toString("base64url");
  const form = new FormData();
  form.set("manifest", JSON.stringify({ ...manifest, signature }));
  form.set("artifact", new File([artifact], "iot-agent.tar.gz", { type: "application/gzip" }));
  const res = await fetch(`${opts.url}/api/releases`, { method: "POST", headers: { authorization: `Bearer ${opts.adminToken}` }, body: form, signal: AbortSignal.timeout(15_000) });
  if (res.status !== 201) throw new Error(`publish ${opts.version}: ${res.status} ${await res.text()}`);
  return manifest;
}
