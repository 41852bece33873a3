// TLS on the LAN by default: the container's endpoint makes a self-signed pair for
// nginx on its first start (TLS_DIR, a volume nginx mounts read-only), so a fresh
// `docker compose up` serves https/wss and plain http only when asked. An existing
// pair (yours, or the one made before) is never replaced.
//
// Made with @peculiar/x509 over WebCrypto (node:crypto has no certificate builder;
// openssl may be missing from a slim image): ECDSA P-256, SHA-256, 825 days (the
// longest validity Apple platforms accept), serverAuth, and a subjectAltName for
// localhost, 127.0.0.1, ::1, the container's host name and every LAN_HOSTS entry,
// which should name the address or name the Pis use.
//
// The SHA-256 fingerprint is printed at every start: compare it with the one of the
// cert.pem you copy to a Pi before trusting it there (docs/lan.md).
//
//   node scripts/lib/lan-tls.mjs DIR [host ...]    make (or show) the pair in DIR
import "reflect-metadata"; // @peculiar/x509's dependency injection needs it loaded first
import * as x509 from "@peculiar/x509";
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { isIP } from "node:net";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

x509.cryptoProvider.set(globalThis.crypto);

const VALID_DAYS = 825;
const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

/** The names and addresses a certificate is made for: the loopback ones, this host's name, and `extra`. */
export function tlsHosts(extra = []) {
  const all = ["localhost", "127.0.0.1", "::1", hostname(), ...extra].map((h) => h.trim()).filter(Boolean);
  return [...new Set(all)];
}

/** `AB:CD:…`, as `openssl x509 -noout -fingerprint -sha256` prints it. */
export const fingerprintOf = (pem) => new X509Certificate(pem).fingerprint256;

/**
 * The pair in `dir` (cert.pem, key.pem): kept if both exist, else made now.
 * @param {string} dir
 * @param {string[]} hosts  subjectAltName entries (names and IP addresses)
 * @returns {Promise<{ made: boolean, cert: string, key: string, fingerprint: string, hosts: string[] }>}
 */
export async function ensureTlsPair(dir, hosts = tlsHosts()) {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  if (existsSync(cert) && existsSync(key)) {
    const pem = readFileSync(cert, "utf8");
    const names = new X509Certificate(pem).subjectAltName ?? "";
    return { made: false, cert, key, fingerprint: fingerprintOf(pem), hosts: names.split(", ").map((n) => n.replace(/^[^:]+:/, "")) };
  }
  for (const h of hosts) if (!isIP(h) && !/^[A-Za-z0-9.-]{1,253}$/.test(h)) throw new Error(`not a host name or IP address: ${JSON.stringify(h)}`);
  const keys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex").replace(/^[89a-f]/, "1"),
    name: "CN=iot-edge LAN endpoint",
    // An hour back: a device whose clock is a little behind still accepts it.
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + VALID_DAYS * 86_400_000),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.SubjectAlternativeNameExtension(hosts.map((h) => ({ type: isIP(h) ? "ip" : "dns", value: h }))),
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ],
  });
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", keys.privateKey)).toString("base64");
  mkdirSync(dir, { recursive: true });
  // The key first and private; the certificate last, so a pair is never half there.
  writeFileSync(key, `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g).join("\n")}\n-----END PRIVATE KEY-----\n`, { mode: 0o600 });
  const pem = certificate.toString("pem").replace(/\r\n/g, "\n").replace(/\n?$/, "\n");
  writeFileSync(cert, pem, { mode: 0o644 });
  return { made: true, cert, key, fingerprint: fingerprintOf(pem), hosts };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [dir, ...extra] = process.argv.slice(2);
  if (!dir) {
    console.error("usage: node scripts/lib/lan-tls.mjs DIR [host ...]");
    process.exit(2);
  }
  const pair = await ensureTlsPair(resolve(dir), tlsHosts(extra));
  console.log(`${pair.made ? "made" : "kept"} ${pair.cert} for ${pair.hosts.join(", ")}\nSHA-256 fingerprint ${pair.fingerprint}`);
}
