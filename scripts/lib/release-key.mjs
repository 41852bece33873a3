// The fleet's release key on the operator's machine (docs/updates.md, "Keys"). One rule for where
// `npm run release` keeps its private half, shared with npm start, which pins the public half on
// its simulated device the way an installer pins IOT_RELEASE_KEY on a Pi.
import { createPrivateKey, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";

/** --key, else IOT_RELEASE_KEY_FILE, else $XDG_CONFIG_HOME (~/.config)/iot-edge/release-key.pem. */
export function releaseKeyFile(flag, env = process.env) {
  return resolve(flag || env.IOT_RELEASE_KEY_FILE || join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config"), "iot-edge", "release-key.pem"));
}

/** The public half (base64url, 43 characters) of an Ed25519 private key. */
export function publicKeyOf(privateKey) {
  return createPublicKey(privateKey).export({ format: "jwk" }).x;
}

/** The public half of the key in `file`; null when there is none (throws for a file that is not an Ed25519 key). */
export function publicKeyFromFile(file) {
  let pem;
  try {
    pem = readFileSync(file);
  } catch (err) {
    if (err.code === "ENOENT") return null;
    throw err;
  }
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== "ed25519") throw new Error(`${file} is a ${key.asymmetricKeyType} key, not Ed25519`);
  return publicKeyOf(key);
}
