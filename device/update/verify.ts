/**
 * The checks an artifact passes before anything of it is unpacked: the manifest's Ed25519
 * signature against the key pinned on this device (IOT_RELEASE_KEY, never the endpoint's word),
 * then the downloaded file's size and SHA-256 against the signed manifest.
 */
import { createHash, createPublicKey, verify, type KeyObject } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Ed25519PublicKey, releaseSigningText, type SignedRelease } from "../../party/protocol.ts";

/** The pinned key as a KeyObject; throws with what is wrong for anything but 32 bytes of base64url. */
export function releaseKey(text: string): KeyObject {
  const parsed = Ed25519PublicKey.safeParse(text.trim());
  if (!parsed.success) throw new Error("IOT_RELEASE_KEY: an Ed25519 public key, 43 base64url characters (npm run release -- keygen prints it)");
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: parsed.data }, format: "jwk" });
}

/** The manifest was signed by the holder of the pinned key's private half. */
export function signatureValid(key: KeyObject, release: SignedRelease): boolean {
  try {
    return verify(null, Buffer.from(releaseSigningText(release)), key, Buffer.from(release.signature, "base64url"));
  } catch {
    // A malformed signature is simply not a valid one.
    return false;
  }
}

/** Why a downloaded file is not the signed artifact, or null when its size and SHA-256 match. */
export async function artifactMismatch(path: string, release: Pick<SignedRelease, "size" | "sha256">): Promise<string | null> {
  const size = (await stat(path)).size;
  if (size !== release.size) return `size ${size} bytes, the signed manifest says ${release.size}`;
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  const sha256 = hash.digest("hex");
  return sha256 === release.sha256 ? null : `SHA-256 ${sha256.slice(0, 16)}…, the signed manifest says ${release.sha256.slice(0, 16)}…`;
}

// The endpoint compares versions the same way (GET /iot/update): one function for both.
export { compareVersions } from "../../party/version.ts";
