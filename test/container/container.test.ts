/**
 * The container, for real: docker/Dockerfile built and run by a Docker engine,
 * as docker/compose.yaml runs its `endpoint` service (its command, a volume on
 * /data), with Debian's nginx on this host in front of it rendered from the
 * same templates compose's nginx service uses, and the real agent streaming a
 * simulated sensor through nginx. TLS is on by default, as in compose: the
 * endpoint makes a self-signed pair on first start and prints its fingerprint,
 * nginx serves https/wss with it and answers plain HTTP with a redirect, and the
 * agent trusts the copied cert.pem as a Pi would. Restarting the container must
 * keep the state, the secrets and the pair; nothing in it may run as root.
 *
 * What this cannot cover: the official base images. Where Docker Hub cannot be
 * reached (CI) the image is built on docker/standin-base.sh's stand-in for
 * node:22-bookworm-slim, and nginx runs on the host rather than in nginx:stable
 * (docs/lan.md, "What the tests prove about the container"). Where no engine can start, every test here is
 * skipped with a message saying why.
 */
import { X509Certificate } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseDevVars } from "../../scripts/lib/dev-vars.mjs";
import { startAgent, type Agent } from "../support/agent";
import { EndpointClient, request, type SocketClient } from "../support/client";
import { baseImage, buildImage, docker, dockerOk, ensureEngine, health } from "../support/docker";
import { startNginx, type Certs, type Nginx } from "../support/nginx";
import { freePort, waitFor } from "../support/processes";

const engine = await ensureEngine();
if (!engine.ok) {
  const bar = "!".repeat(78);
  console.warn(`\n${bar}\n!! CONTAINER TEST SKIPPED: ${engine.why}\n!! docker/Dockerfile was NOT built or run on this machine.\n${bar}\n`);
}

const IMAGE = "iot-edge-endpoint:test";
const tag = `iot-edge-test-${process.pid}-${Date.now().toString(36)}`;
const CONTAINER = tag;
const VOLUME = `${tag}-data`;
const TLS_VOLUME = `${tag}-tls`;
const tmp = mkdtempSync(join(tmpdir(), "iot-container-"));

let hostPort: number;
let proxy: Nginx;
let client: EndpointClient;
let secrets: Record<string, string>;
let certs: Certs;
/** The fingerprint the endpoint printed for the pair it made. */
let printedFingerprint: string;
let agent: Agent | undefined;
let watcher: SocketClient | undefined;

/** The container's /data/.dev.vars: the secrets scripts/endpoint.mjs made on its first start. */
const devVars = () => parseDevVars(dockerOk(["exec", CONTAINER, "cat", "/data/.dev.vars"])) as Record<string, string>;

/** The pair the endpoint keeps in /tls, copied out as a Pi owner copies cert.pem. */
function copyPair(): Certs {
  const dir = join(tmp, "certs");
  mkdirSync(dir, { recursive: true });
  const cert = dockerOk(["exec", CONTAINER, "cat", "/tls/cert.pem"]) + "\n";
  writeFileSync(join(dir, "cert.pem"), cert);
  writeFileSync(join(dir, "key.pem"), dockerOk(["exec", CONTAINER, "cat", "/tls/key.pem"]) + "\n", { mode: 0o600 });
  return { dir, cert: join(dir, "cert.pem"), key: join(dir, "key.pem"), ca: Buffer.from(cert) };
}

/** The last fingerprint line the endpoint printed: `made` or `kept`, and the fingerprint. */
function fingerprintLine(): { how: string; fingerprint: string } {
  const logs = docker(["logs", CONTAINER]);
  const made = [...(logs.stdout + logs.stderr).matchAll(/TLS for nginx: (made|kept) \S+[^\n]*\n\s*SHA-256 fingerprint ([0-9A-F:]{95})/g)].at(-1);
  if (!made) throw new Error(`no fingerprint in the endpoint's output:\n${logs.stdout}${logs.stderr}`);
  return { how: made[1]!, fingerprint: made[2]! };
}

async function healthy(timeoutMs = 120_000): Promise<void> {
  await waitFor(`container ${CONTAINER} healthy`, () => {
    const status = health(CONTAINER);
    if (status === "unhealthy") throw new Error(`container unhealthy:\n${docker(["logs", "--tail", "30", CONTAINER]).stderr}`);
    return status === "healthy" ? true : null;
  }, timeoutMs, 1_000);
}

const allReadings = (id: string) => client.allReadings(id);

describe.skipIf(!engine.ok)(`the container (${engine.ok ? `Docker ${engine.version}` : "no engine"})`, () => {
  beforeAll(async () => {
    const base = baseImage();
    const built = buildImage(IMAGE, base.tag);
    console.log(`container: built ${IMAGE} on ${base.tag} (${base.how}) in ${built.seconds.toFixed(1)} s`);
    hostPort = await freePort();
    dockerOk(["volume", "create", VOLUME]);
    dockerOk(["volume", "create", TLS_VOLUME]);
    // docker/compose.yaml's endpoint service: its command, its TLS settings, the volumes on
    // /data and /tls. A fixed host port (loopback only) so nginx's upstream stays right across a restart.
    dockerOk([
      "run", "-d", "--name", CONTAINER,
      "-v", `${VOLUME}:/data`,
      "-v", `${TLS_VOLUME}:/tls`,
      "-e", "TLS_DIR=/tls",
      "-e", "LAN_HOSTS=nginx,",
      "-p", `127.0.0.1:${hostPort}:8787`,
      IMAGE,
      "node", "scripts/endpoint.mjs", "--var", "TRUST_PROXY:true",
    ]);
    await healthy();
    secrets = devVars();
    certs = copyPair();
    printedFingerprint = fingerprintLine().fingerprint;
    // As compose's nginx: TLS with the endpoint's pair, plain HTTP only redirecting.
    proxy = await startNginx({ upstream: `127.0.0.1:${hostPort}`, certs, plainHttp: false });
    client = new EndpointClient(proxy.https!, secrets.ADMIN_TOKEN!, certs.ca);
  }, 900_000);

  afterAll(async () => {
    watcher?.close();
    await agent?.stop(5_000);
    await proxy?.stop();
    if (proxy) rmSync(proxy.dir, { recursive: true, force: true });
    docker(["rm", "-f", CONTAINER]);
    docker(["volume", "rm", "-f", VOLUME, TLS_VOLUME]);
    rmSync(tmp, { recursive: true, force: true });
    if (engine.ok) await engine.stop();
  }, 60_000);

  afterEach((ctx) => {
    if (ctx.task.result?.state !== "fail") return;
    const logs = docker(["logs", "--tail", "40", CONTAINER]);
    console.error(`container logs:\n${logs.stdout}${logs.stderr}`);
    if (agent) console.error(agent.tail());
  });

  it("runs as the image's unprivileged user, and cannot write its own code", () => {
    expect(dockerOk(["exec", CONTAINER, "id", "-u"])).toBe("1000");
    // Every process in the container, as the host sees it (no user namespace: the same uid).
    const top = dockerOk(["top", CONTAINER, "-eo", "pid,uid,comm"]).split("\n").slice(1);
    expect(top.length).toBeGreaterThanOrEqual(2); // node and workerd at least
    for (const line of top) expect(line.trim().split(/\s+/)[1], line).toBe("1000");
    expect(docker(["exec", CONTAINER, "sh", "-c", "touch /app/worker/index.ts"]).status).not.toBe(0);
    // The secrets file it made is readable by that user alone.
    expect(dockerOk(["exec", CONTAINER, "stat", "-c", "%a %u", "/data/.dev.vars"])).toBe("600 1000");
  });

  it("type-checks the agent without the optional native addons, which npm skipped in this compiler-less image", () => {
    // No C/C++ toolchain in the image: npm could not build i2c-bus and onoff, so they are absent,
    // and nothing but the Pi's hardware seam may need them (issue 11: a Mac or slim container).
    expect(docker(["exec", CONTAINER, "sh", "-c", "command -v g++ || command -v cc"]).stdout.trim()).toBe("");
    expect(docker(["exec", CONTAINER, "test", "-e", "node_modules/i2c-bus"]).status).not.toBe(0);
    expect(docker(["exec", CONTAINER, "test", "-e", "node_modules/onoff"]).status).not.toBe(0);
    const tsc = docker(["exec", CONTAINER, "node", "node_modules/typescript/bin/tsc", "-p", "tsconfig.device.json"], { timeout: 180_000 });
    expect(tsc.stdout + tsc.stderr).toBe("");
    expect(tsc.status).toBe(0);
  });

  it("made its secrets on first start, on the volume", () => {
    expect(secrets.ADMIN_TOKEN).toMatch(/^op_/);
    expect(secrets.VIEWER_TOKEN).toMatch(/^view_/);
    expect(secrets.SESSION_SECRET?.length).toBeGreaterThanOrEqual(32);
  });

  it("made a TLS pair for nginx on first start, printed its fingerprint, and nginx serves only https with it", async () => {
    expect(fingerprintLine().how).toBe("made");
    const cert = new X509Certificate(certs.ca);
    expect(printedFingerprint).toBe(cert.fingerprint256);
    for (const name of ["DNS:localhost", "IP Address:127.0.0.1", "DNS:nginx"]) expect(cert.subjectAltName).toContain(name);
    // The key is the runtime user's alone.
    expect(dockerOk(["exec", CONTAINER, "stat", "-c", "%a %u", "/tls/key.pem"])).toBe("600 1000");
    // Plain HTTP is a redirect, never the endpoint.
    const plain = await request(`${proxy.http}/api/session`, { headers: { authorization: `Bearer ${secrets.ADMIN_TOKEN}` } });
    expect(plain.status).toBe(308);
    expect(plain.headers.location).toBe(`${proxy.https}/api/session`);
    expect((await client.admin("/api/session")).status).toBe(200);
  });

  it("keeps wrangler's state tools unreachable (the Local Explorer), straight and through nginx", async () => {
    for (const base of [`http://127.0.0.1:${hostPort}`, proxy.https!]) {
      const res = await request(`${base}/cdn-cgi/local/explorer/api/workers/durable_objects/namespaces`, { ca: certs.ca });
      expect(res.headers["content-type"] ?? "", base).not.toMatch(/json/);
      expect(res.text, base).not.toContain("DeviceRoom");
    }
  });

  let sessionCookie: string;
  const id = "container-sim-1";

  it("signs an operator in through nginx, and streams a simulated device into it", async () => {
    const login = await request(`${proxy.https}/api/login`, { method: "POST", json: { token: secrets.ADMIN_TOKEN }, headers: { origin: proxy.https! }, ca: certs.ca });
    expect(login.status, login.text).toBe(200);
    expect(login.json().role).toBe("operator");
    const setCookie = login.headers["set-cookie"]?.[0] ?? "";
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/Secure/i);
    sessionCookie = setCookie.split(";")[0]!;
    const session = await request(`${proxy.https}/api/session`, { headers: { cookie: sessionCookie }, ca: certs.ca });
    expect(session.status).toBe(200);
    expect(session.json().role).toBe("operator");

    const token = await client.token(id);
    // A dashboard watching, as a user would: the agent then sends each reading at once.
    watcher = await client.openRoom(id, "dashboard", proxy.https);
    // Over https/wss, trusting the copied cert.pem as a Pi would (NODE_EXTRA_CA_CERTS).
    agent = startAgent({
      endpoint: proxy.https!,
      token,
      stateDir: join(tmp, "agent"),
      args: ["--backoff-max-ms", "2000"],
      env: { NODE_EXTRA_CA_CERTS: certs.cert },
    });
    await agent.connected();
    await watcher.next((m) => m.type === "readings" || m.type === "reading", 30_000);
    await waitFor("8 readings in the room", async () => ((await allReadings(id)).length >= 8 ? true : null), 60_000, 500);
  });

  it("keeps state and secrets across a restart, and the agent catches up with no gap", async () => {
    const before = await allReadings(id);
    const lastBefore = before.at(-1)!.seq;
    watcher?.close();

    dockerOk(["restart", "--time", "20", CONTAINER]);
    await healthy();

    // Same secrets, read from the volume: the operator token and the old session cookie still work.
    expect(devVars()).toEqual(secrets);
    expect((await client.admin("/api/session")).status).toBe(200);
    expect((await request(`${proxy.https}/api/session`, { headers: { cookie: sessionCookie }, ca: certs.ca })).status).toBe(200);
    // The same TLS pair, kept, not made again.
    expect(fingerprintLine()).toEqual({ how: "kept", fingerprint: printedFingerprint });
    // The device is still provisioned (its token works) and listed.
    const listed = await client.json<{ devices: { id: string }[] }>(`/api/devices?q=${id}`);
    expect(listed.devices.map((d) => d.id)).toContain(id);

    watcher = await client.openRoom(id, "dashboard", proxy.https);
    await waitFor(`readings past seq ${lastBefore + 5}`, async () => ((await allReadings(id)).at(-1)!.seq >= lastBefore + 5 ? true : null), 90_000, 500);
    const after = await allReadings(id);
    // Every seq from the first on, once: nothing lost in the restart, nothing doubled.
    const seqs = after.map((r) => r.seq);
    expect(seqs[0]).toBe(before[0]!.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
    // What was there before is there, unchanged.
    expect(after.slice(0, before.length)).toEqual(before);
  });
});
