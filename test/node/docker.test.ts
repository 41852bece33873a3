/**
 * The container setup, checked statically (test/container/ builds and runs the
 * image for real): docker/Dockerfile and docker/compose.yaml are parsed and held
 * against each other, against the nginx templates and against the endpoint's
 * own settings; the nginx config compose would render is checked with
 * `nginx -t`, and the two shell scripts compose uses are run for real.
 * (test/e2e/nginx.test.ts runs the same nginx config in front of the endpoint.)
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { LIMITS } from "../../party/protocol";
import { ROOT } from "../support/processes";
import { makeCerts, nginxTest, renderInto } from "../support/nginx";
// A plain .mjs script (no types): users run it too, to run nginx outside a container.
import { DEFAULTS, SWITCHES } from "../../nginx/render.mjs";

const DOCKER = join(ROOT, "docker");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

const temps: string[] = [];
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// Dockerfile, as a list of instructions
// ---------------------------------------------------------------------------

type Instruction = { cmd: string; args: string };

/** Instructions in order: continuations joined, comment lines dropped (as Docker does). */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#") || (line === "" && current === "")) continue;
    current += (current ? " " : "") + line.replace(/\\$/, "").trim();
    if (line.endsWith("\\")) continue;
    const m = /^(\w+)\s+(.*)$/s.exec(current);
    if (m) out.push({ cmd: m[1]!.toUpperCase(), args: m[2]!.trim() });
    current = "";
  }
  return out;
}

const dockerfile = parseDockerfile(read("docker/Dockerfile"));
const all = (cmd: string) => dockerfile.filter((i) => i.cmd === cmd);
const one = (cmd: string) => {
  const found = all(cmd);
  expect(found, `one ${cmd} in docker/Dockerfile`).toHaveLength(1);
  return found[0]!;
};
/** ENV as a map (KEY=value pairs, one instruction or many). */
const dockerEnv: Record<string, string> = Object.fromEntries(
  all("ENV").flatMap((i) => [...i.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)].map((m) => [m[1]!, m[2]!.replace(/^"|"$/g, "")])),
);

// ---------------------------------------------------------------------------
// compose.yaml
// ---------------------------------------------------------------------------

const compose = parse(read("docker/compose.yaml"));
const services = compose.services as Record<string, any>;
const endpoint = services.endpoint;
const nginx = services.nginx;
const device = services.device;

/** `source:target[:mode]` bind or volume mounts of a service. */
function mounts(service: any): { source: string; target: string; mode?: string }[] {
  return (service.volumes ?? []).map((v: string) => {
    const [source, target, mode] = v.split(":");
    return { source: source!, target: target!, mode };
  });
}
const isBind = (source: string) => source.startsWith(".") || source.startsWith("/");

/** "3600s", "1h", "90" (seconds) → seconds. */
function seconds(value: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!m) throw new Error(`not an nginx time: ${value}`);
  const n = Number(m[1]);
  return { ms: n / 1000, s: n, m: n * 60, h: n * 3600, d: n * 86400 }[m[2] ?? "s"]!;
}

const templateNames = readdirSync(join(ROOT, "nginx/templates")).filter((f) => f.endsWith(".template"));
const templates = templateNames.map((f) => read(`nginx/templates/${f}`));
const placeholders = new Set(templates.flatMap((t) => [...t.matchAll(/\$\{([A-Z][A-Z0-9_]*)\}/g)].map((m) => m[1]!)));

describe("docker/Dockerfile", () => {
  it("builds on a Debian (glibc) Node 22 image, which workerd needs", () => {
    // FROM ${NODE_IMAGE}, whose default is the official image (a build may name a
    // local stand-in: docker/standin-base.sh, used by test/container/).
    const from = all("FROM");
    expect(from).toHaveLength(1);
    expect(from[0]!.args).toBe("${NODE_IMAGE}");
    const arg = all("ARG").find((a) => a.args.startsWith("NODE_IMAGE="));
    expect(arg?.args.slice("NODE_IMAGE=".length)).toMatch(/^node:22(\.\d+)*-(bookworm|trixie)(-slim)?$/);
  });

  it("installs exactly the locked dependencies before copying the sources", () => {
    const copyLock = dockerfile.findIndex((i) => i.cmd === "COPY" && /package-lock\.json/.test(i.args));
    const ci = dockerfile.findIndex((i) => i.cmd === "RUN" && /\bnpm ci\b/.test(i.args));
    const copyAll = dockerfile.findIndex((i) => i.cmd === "COPY" && /^\.\s+\./.test(i.args));
    expect(copyLock).toBeGreaterThanOrEqual(0);
    expect(ci).toBeGreaterThan(copyLock);
    expect(copyAll).toBeGreaterThan(ci);
    // npm ci on a production NODE_ENV would leave out wrangler (a devDependency).
    expect(dockerEnv.NODE_ENV).toBeUndefined();
    const pkg = JSON.parse(read("package.json"));
    expect(pkg.devDependencies.wrangler ?? pkg.dependencies.wrangler).toBeDefined();
    for (const i of all("COPY")) {
      for (const source of i.args.split(/\s+/).slice(0, -1)) expect(existsSync(join(ROOT, source)), source).toBe(true);
    }
  });

  it("keeps secrets, state, host modules and certificates out of the build context", () => {
    const ignore = read("docker/Dockerfile.dockerignore").split("\n").map((l) => l.trim());
    for (const entry of [".dev.vars", "**/node_modules", ".wrangler", "nginx/certs", ".git"]) expect(ignore).toContain(entry);
  });

  it("runs as a non-root user, with only what it writes owned by that user", () => {
    const users = all("USER");
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!.args;
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    const lastUser = dockerfile.lastIndexOf(users.at(-1)!);
    expect(dockerfile.findIndex((i) => i.cmd === "CMD")).toBeGreaterThan(lastUser);
    const chown = all("RUN").find((i) => /chown/.test(i.args));
    expect(chown?.args).toContain(`${user}:${user}`);
    for (const dir of ["/app/.wrangler", "/data"]) expect(chown?.args).toContain(dir);
  });

  it("starts the endpoint on 0.0.0.0 with its state and secrets on the volume", () => {
    // TRUST_PROXY is compose's to set: the image alone may be reachable without nginx.
    expect(one("CMD").args).toBe('["node", "scripts/endpoint.mjs"]');
    expect(existsSync(join(ROOT, "scripts/endpoint.mjs"))).toBe(true);
    expect(dockerEnv.HOST).toBe("0.0.0.0");
    // Miniflare directly, as test/e2e/nginx.test.ts runs it behind nginx.
    expect(dockerEnv.DIRECT).toBe("1");
    expect(one("EXPOSE").args).toBe(dockerEnv.PORT);
    const volume = one("VOLUME").args;
    expect(dockerEnv.STATE_DIR!.startsWith(`${volume}/`)).toBe(true);
    expect(dockerEnv.DEV_VARS!.startsWith(`${volume}/`)).toBe(true);
    // Built into the image, so the start needs no build and no internet.
    expect(dockerEnv.SKIP_BUILD).toBe("1");
    expect(all("RUN").some((i) => /node dashboard\/build\.mjs/.test(i.args))).toBe(true);
    expect(dockerEnv.WRANGLER_SEND_METRICS).toBe("false");
    expect(dockerEnv.CLOUDFLARE_CF_FETCH_ENABLED).toBe("false");
  });

  it("has a HEALTHCHECK that asks 127.0.0.1, not localhost", () => {
    const check = one("HEALTHCHECK").args;
    const script = /CMD \["node", "([^"]+)"\]/.exec(check)?.[1];
    expect(script).toBe("docker/healthcheck.mjs");
    const code = read(script!)
      .split("\n")
      .filter((l) => !l.trim().startsWith("//"))
      .join("\n");
    expect(code).toContain("http://127.0.0.1:${process.env.PORT || \"8787\"}");
    expect(code).not.toContain("localhost");
    expect(dockerEnv.PORT).toBe("8787");
  });
});

describe("docker/compose.yaml", () => {
  it("builds the endpoint from the repository root with docker/Dockerfile", () => {
    const context = resolve(DOCKER, endpoint.build.context);
    expect(context).toBe(ROOT);
    expect(existsSync(join(context, endpoint.build.dockerfile))).toBe(true);
    expect(endpoint.profiles).toBeUndefined();
    expect(nginx.profiles).toBeUndefined();
  });

  it("mounts only files that exist", () => {
    for (const service of Object.values(services)) {
      for (const { source } of mounts(service).filter((m) => isBind(m.source))) {
        expect(existsSync(resolve(DOCKER, source)), source).toBe(true);
      }
    }
    // The certs folder exists on a fresh clone (else Docker would create it as root), its contents are ignored.
    expect(existsSync(join(ROOT, "nginx/certs/.gitkeep"))).toBe(true);
    const ignored = (path: string) => spawnSync("git", ["check-ignore", "-q", path], { cwd: ROOT }).status === 0;
    expect(ignored("nginx/certs/cert.pem")).toBe(true);
    expect(ignored("nginx/certs/key.pem")).toBe(true);
    expect(ignored("nginx/certs/.gitkeep")).toBe(false);
  });

  it("agrees with the Dockerfile and the endpoint on address, port and volume", () => {
    expect(endpoint.environment.HOST).toBe("0.0.0.0");
    expect(endpoint.environment.PORT).toBe(dockerEnv.PORT);
    expect(nginx.environment.UPSTREAM).toBe(`endpoint:${endpoint.environment.PORT}`);
    expect(endpoint.ports).toBeUndefined(); // reachable only through nginx
    expect(endpoint.expose).toEqual([endpoint.environment.PORT]);

    const volume = one("VOLUME").args;
    const data = mounts(endpoint).find((m) => m.target === volume);
    expect(data, `a volume on ${volume}`).toBeDefined();
    expect(isBind(data!.source)).toBe(false);
    expect(Object.keys(compose.volumes)).toContain(data!.source);
    for (const key of ["STATE_DIR", "DEV_VARS"]) {
      expect(endpoint.environment[key]).toBe(dockerEnv[key]);
      expect(endpoint.environment[key].startsWith(`${volume}/`)).toBe(true);
    }
  });

  it("uses the official nginx image's Debian variant, whose entrypoint renders the templates", () => {
    expect(nginx.image).toMatch(/^nginx:(stable|mainline|\d+\.\d+(\.\d+)?)(-(bookworm|trixie))?$/);
  });

  it("runs the endpoint with TRUST_PROXY on, as only nginx reaches it and nginx overwrites X-Real-IP", () => {
    expect(endpoint.command).toEqual(["node", "scripts/endpoint.mjs", "--var", "TRUST_PROXY:true"]);
    const proxyConf = read("nginx/templates/iot-proxy.inc.template");
    expect(proxyConf).toMatch(/^proxy_set_header X-Real-IP \$remote_addr;$/m);
    expect(proxyConf).toMatch(/^proxy_set_header X-Forwarded-For \$remote_addr;$/m);
    // The Worker's origin check needs the port the browser used (worker/auth.ts isOwnOrigin).
    expect(proxyConf).toMatch(/^proxy_set_header Host \$forward_host;$/m);
  });

  it("starts nginx once the endpoint's healthcheck passes", () => {
    expect(nginx.depends_on.endpoint.condition).toBe("service_healthy");
    expect(all("HEALTHCHECK")).toHaveLength(1);
  });

  it("publishes 80 and 443 to the ports the nginx servers listen on", () => {
    const published = (nginx.ports as string[]).map((p) => p.split(":").at(-1));
    expect(published).toEqual([nginx.environment.HTTP_LISTEN, nginx.environment.HTTPS_LISTEN]);
    expect(published).toEqual(["80", "443"]);
  });

  it("gives every template placeholder a value, the same set nginx/render.mjs knows", () => {
    expect([...placeholders].sort()).toEqual(Object.keys(DEFAULTS).sort());
    for (const name of [...placeholders, ...Object.keys(SWITCHES)]) expect(nginx.environment[name], name).toBeDefined();
    const templatesMount = mounts(nginx).find((m) => m.target === "/etc/nginx/templates");
    expect(resolve(DOCKER, templatesMount!.source)).toBe(join(ROOT, "nginx/templates"));
  });

  it("serves TLS by default: nginx reads the pair the endpoint makes on first start, and plain HTTP only redirects", () => {
    // One named volume: TLS_DIR on the endpoint (read-write), the certificate directory on nginx (read-only).
    const tlsDir = endpoint.environment.TLS_DIR;
    const mine = mounts(endpoint).find((m) => m.target === tlsDir);
    expect(mine, `a volume on ${tlsDir}`).toBeDefined();
    expect(isBind(mine!.source)).toBe(false);
    expect(Object.keys(compose.volumes)).toContain(mine!.source);
    const certs = mounts(nginx).find((m) => m.source === mine!.source);
    expect(certs?.mode).toBe("ro");
    expect(nginx.environment.TLS_CERT).toBe(`${certs!.target}/cert.pem`);
    expect(nginx.environment.TLS_KEY).toBe(`${certs!.target}/key.pem`);
    // scripts/lib/lan-tls.mjs writes cert.pem and key.pem; the image makes the directory the runtime user's.
    const lanTls = read("scripts/lib/lan-tls.mjs");
    expect(lanTls).toContain('join(dir, "cert.pem")');
    expect(lanTls).toContain('join(dir, "key.pem")');
    expect(all("RUN").some((i) => i.args.includes(tlsDir) && /chown -R node:node[^&]*\/tls/.test(i.args))).toBe(true);
    // The simulated device is named in the certificate and trusts it.
    expect(endpoint.environment.LAN_HOSTS.split(",")).toContain("nginx");
    expect(nginx.environment.PLAIN_HTTP).toBe("${LAN_PLAIN_HTTP:-0}");
    expect(nginx.environment.HTTPS_REDIRECT).toBe("https://$$host:${LAN_HTTPS_PORT:-443}");
    // nginx/gen-certs.sh still makes a pair for a host run (or to copy into the volume).
    const gen = read("nginx/gen-certs.sh");
    expect(gen).toContain('"$dir/cert.pem"');
    expect(gen).toContain('"$dir/key.pem"');
  });

  it("runs nginx/tls-if-certs.sh from the image's entrypoint, after the templates are rendered", () => {
    const hook = mounts(nginx).find((m) => m.target.startsWith("/docker-entrypoint.d/"));
    expect(resolve(DOCKER, hook!.source)).toBe(join(ROOT, "nginx/tls-if-certs.sh"));
    // The image runs executable *.sh files there in name order; 20-envsubst-on-templates.sh renders.
    expect(hook!.target).toMatch(/\/[3-9]\d-[\w-]+\.sh$/);
    expect(statSync(join(ROOT, "nginx/tls-if-certs.sh")).mode & 0o111).toBe(0o111);
  });

  it("ships a socket read timeout far above the heartbeat and nginx's 60 s default", () => {
    const timeout = seconds(nginx.environment.SOCKET_READ_TIMEOUT);
    expect(timeout).toBeGreaterThanOrEqual(600);
    expect(nginx.environment.SOCKET_READ_TIMEOUT).toBe(DEFAULTS.SOCKET_READ_TIMEOUT);
  });

  it("offers the simulated device under a profile, talking to the endpoint through nginx", () => {
    expect(device.profiles).toEqual(["device"]);
    const [npm, run, script, dashdash, ...args] = device.command as string[];
    expect([npm, run, script, dashdash]).toEqual(["npm", "run", "device", "--"]);
    expect(args).toContain("--simulate");
    expect(args[args.indexOf("--endpoint") + 1]).toBe("https://nginx");
    // It trusts the pair the endpoint made, from the same volume, as a Pi given cert.pem does.
    const tls = mounts(device).find((m) => m.source === mounts(endpoint).find((e) => e.target === endpoint.environment.TLS_DIR)!.source);
    expect(tls?.mode).toBe("ro");
    expect(device.environment.NODE_EXTRA_CA_CERTS).toBe(`${tls!.target}/cert.pem`);
    expect(args[args.indexOf("--id") + 1]).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*$/);
    // Its device token comes from the environment compose is started with (provisioned by the operator).
    expect(device.environment.IOT_TOKEN).toBe("${SIM_DEVICE_TOKEN:-}");
    expect(resolve(DOCKER, device.build.context)).toBe(ROOT);
    expect(device.build.dockerfile).toBe(endpoint.build.dockerfile);
  });
});

describe("the nginx config", () => {
  it("never logs a query string (socket tickets live there)", () => {
    const all = templates.join("\n");
    const formats = [...all.matchAll(/log_format\s+(\w+)\s+((?:'[^']*'\s*)+);/g)];
    expect(formats.map((f) => f[1])).toEqual(["iot_noquery"]);
    const format = formats[0]![2]!;
    expect(format).toContain("$uri");
    for (const leaky of ["$request ", '$request"', "$request_uri", "$args", "$query_string", "$is_args", "$arg_"]) {
      expect(format).not.toContain(leaky);
    }
    const accessLogs = [...all.matchAll(/^\s*access_log\s+([^;]+);/gm)].map((m) => m[1]!.trim().split(/\s+/));
    expect(accessLogs.length).toBeGreaterThan(0);
    for (const [, fmt] of accessLogs) expect(fmt).toBe("iot_noquery");
  });

  it("accepts bodies up to the endpoint's largest limit (LIMITS.maxBodyBytes)", () => {
    const all = templates.join("\n");
    const size = /client_max_body_size\s+(\d+)k;/.exec(all);
    expect(Number(size?.[1]) * 1024).toBe(LIMITS.maxBodyBytes);
    expect(all).toContain(`request body exceeds ${LIMITS.maxBodyBytes} bytes`);
  });

  it("passes the compose values through `nginx -t`, with and without a certificate", () => {
    const certs = makeCerts(tempDir("iot-certs-"));
    const logs = tempDir("iot-logs-");
    const composeVars = {
      ...nginx.environment,
      // Outside compose: the service name does not resolve, and /etc/nginx/certs does not exist.
      UPSTREAM: nginx.environment.UPSTREAM.replace(/^endpoint:/, "127.0.0.1:"),
      TLS_CERT: certs.cert,
      TLS_KEY: certs.key,
      ACCESS_LOG: join(logs, "access.log"),
      // As compose interpolates it ($$ is a literal $; LAN_HTTPS_PORT unset).
      HTTPS_REDIRECT: nginx.environment.HTTPS_REDIRECT.replace("$$", "$").replace("${LAN_HTTPS_PORT:-443}", "443"),
    };
    const withTls = renderInto({ ...composeVars, PLAIN_HTTP: "0" });
    temps.push(withTls.dir);
    expect(withTls.tls).toBe(true);
    // TLS on: the HTTP server only redirects.
    expect(existsSync(join(withTls.dir, "conf.d/http-redirect.conf"))).toBe(true);
    expect(existsSync(join(withTls.dir, "conf.d/http.conf"))).toBe(false);
    const tested = nginxTest(withTls.dir);
    expect(tested.output).toContain("syntax is ok");
    expect(tested.ok).toBe(true);

    const asked = renderInto({ ...composeVars, PLAIN_HTTP: "1" });
    temps.push(asked.dir);
    expect(existsSync(join(asked.dir, "conf.d/http.conf"))).toBe(true);
    expect(existsSync(join(asked.dir, "conf.d/http-redirect.conf"))).toBe(false);
    expect(nginxTest(asked.dir).ok).toBe(true);

    const plain = renderInto({ ...composeVars, TLS_CERT: join(logs, "missing.pem") });
    temps.push(plain.dir);
    expect(plain.tls).toBe(false);
    expect(existsSync(join(plain.dir, "conf.d/tls.conf"))).toBe(false);
    expect(existsSync(join(plain.dir, "conf.d/http.conf"))).toBe(true);
    expect(existsSync(join(plain.dir, "conf.d/http-redirect.conf"))).toBe(false);
    expect(nginxTest(plain.dir).ok).toBe(true);
  });

  it("nginx/tls-if-certs.sh keeps TLS with a certificate (plain HTTP redirecting unless PLAIN_HTTP=1) and drops it without", () => {
    const certs = makeCerts(tempDir("iot-certs-"));
    const confd = tempDir("iot-confd-");
    const rendered = ["tls.conf", "http.conf", "http-redirect.conf"];
    const run = (cert: string, plain?: string) => {
      for (const f of rendered) writeFileSync(join(confd, f), "server {}\n");
      const r = spawnSync("sh", [join(ROOT, "nginx/tls-if-certs.sh")], {
        env: { PATH: process.env.PATH, NGINX_ENVSUBST_OUTPUT_DIR: confd, TLS_CERT: cert, TLS_KEY: certs.key, ...(plain ? { PLAIN_HTTP: plain } : {}) },
        encoding: "utf8",
      });
      expect(r.status).toBe(0);
      return rendered.filter((f) => existsSync(join(confd, f)));
    };
    expect(run(certs.cert)).toEqual(["tls.conf", "http-redirect.conf"]);
    expect(run(certs.cert, "0")).toEqual(["tls.conf", "http-redirect.conf"]);
    expect(run(certs.cert, "1")).toEqual(["tls.conf", "http.conf"]);
    expect(run(join(confd, "no-such-cert.pem"))).toEqual(["http.conf"]);
  });

  it("nginx/gen-certs.sh makes a pair valid for the names and addresses given", () => {
    const dir = tempDir("iot-certs-");
    const r = spawnSync("sh", [join(ROOT, "nginx/gen-certs.sh"), "192.0.2.10", "iot.lan"], {
      env: { ...process.env, CERT_DIR: dir, NO_HOST_IPS: "1" },
      encoding: "utf8",
    });
    expect(r.status).toBe(0);
    const text = spawnSync("openssl", ["x509", "-in", join(dir, "cert.pem"), "-noout", "-ext", "subjectAltName"], { encoding: "utf8" }).stdout;
    for (const san of ["DNS:localhost", "IP Address:127.0.0.1", "IP Address:192.0.2.10", "DNS:iot.lan"]) expect(text).toContain(san);
    expect(statSync(join(dir, "key.pem")).mode & 0o077).toBe(0);
    // The key matches the certificate.
    const pub = (args: string[]) => spawnSync("openssl", args, { encoding: "utf8" }).stdout;
    expect(pub(["x509", "-in", join(dir, "cert.pem"), "-noout", "-pubkey"])).toBe(pub(["pkey", "-in", join(dir, "key.pem"), "-pubout"]));
  });
});
