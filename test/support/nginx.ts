/**
 * Debian's nginx running the project's proxy config (nginx/templates, rendered
 * by nginx/render.mjs exactly as the compose setup renders them) on free
 * ports, in front of any upstream, for end-to-end tests. Its access log and
 * its stderr (the error log) stay in its prefix directory for assertions.
 * Stopped by process group so nothing outlives the test.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
// A plain .mjs script (no types): users run it too, to run nginx outside a container.
import { renderConfig } from "../../nginx/render.mjs";
import { freePort, Proc, ROOT, waitFor } from "./processes";

/** Debian installs nginx in /usr/sbin, which is not on a non-root user's PATH. */
export const NGINX_BIN = existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx";

export type Certs = { dir: string; cert: string; key: string; ca: Buffer };

/** A fresh self-signed pair from nginx/gen-certs.sh (localhost, 127.0.0.1, ::1 only). */
export function makeCerts(dir = mkdtempSync(join(tmpdir(), "iot-certs-"))): Certs {
  const run = spawnSync("sh", [join(ROOT, "nginx/gen-certs.sh")], {
    env: { ...process.env, CERT_DIR: dir, NO_HOST_IPS: "1" },
    encoding: "utf8",
    timeout: 30_000,
  });
  if (run.status !== 0) throw new Error(`gen-certs.sh failed (${run.status}): ${run.stderr}${run.stdout}`);
  const cert = join(dir, "cert.pem");
  return { dir, cert, key: join(dir, "key.pem"), ca: readFileSync(cert) };
}

/**
 * Render the config into a fresh prefix directory. Root (these machines, CI)
 * makes nginx's workers run as `nobody`, so the prefix must be world-
 * traversable for their temp files; mkdtemp makes it 0700.
 */
export function renderInto(vars: Record<string, string>): { dir: string; tls: boolean } {
  const dir = mkdtempSync(join(tmpdir(), "iot-nginx-"));
  chmodSync(dir, 0o755);
  const { tls } = renderConfig(dir, vars) as { tls: boolean };
  return { dir, tls };
}

/** `nginx -t` on a rendered prefix: the output, and whether it passed. */
export function nginxTest(dir: string): { ok: boolean; output: string } {
  const run = spawnSync(NGINX_BIN, ["-t", "-p", dir, "-c", join(dir, "nginx.conf"), "-e", "stderr"], {
    encoding: "utf8",
    timeout: 30_000,
  });
  return { ok: run.status === 0, output: `${run.stdout}${run.stderr}` };
}

export type Nginx = {
  /** http://127.0.0.1:<port> */
  http: string;
  /** https://127.0.0.1:<port>, or undefined without certificates. */
  https?: string;
  dir: string;
  /** The access log so far (<dir>/access.log). */
  accessLog(): string;
  /** The error log so far (nginx's stderr, in <dir>/stderr.log). */
  errorLog(): string;
  stop(): Promise<void>;
};

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.setTimeout(1_000);
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => (socket.destroy(), resolve(false)));
  });
}

type NginxOptions = {
  upstream: string;
  certs?: Certs;
  socketReadTimeout?: string;
  /** With certificates, whether plain HTTP proxies too (PLAIN_HTTP=1, these tests' default) or only redirects (compose's default). */
  plainHttp?: boolean;
};

export async function startNginx(opts: NginxOptions): Promise<Nginx> {
  // A free port can be taken by another process before nginx binds it: try again on fresh ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNginxOnce(opts);
    } catch (e) {
      if (attempt >= 3 || !/Address already in use/.test(String(e))) throw e;
    }
  }
}

async function startNginxOnce(opts: NginxOptions): Promise<Nginx> {
  const httpPort = await freePort();
  let httpsPort = await freePort();
  while (httpsPort === httpPort) httpsPort = await freePort();
  const { dir, tls } = renderInto({
    UPSTREAM: opts.upstream,
    HTTP_LISTEN: `127.0.0.1:${httpPort}`,
    HTTPS_LISTEN: `127.0.0.1:${httpsPort}`,
    // Without certificates point at files that do not exist: the TLS server is left out.
    TLS_CERT: opts.certs?.cert ?? join(ROOT, "nginx/certs/none.pem"),
    TLS_KEY: opts.certs?.key ?? join(ROOT, "nginx/certs/none.pem"),
    ...(opts.socketReadTimeout ? { SOCKET_READ_TIMEOUT: opts.socketReadTimeout } : {}),
    PLAIN_HTTP: opts.plainHttp === false ? "0" : "1",
    HTTPS_REDIRECT: `https://$host:${httpsPort}`,
  });
  if (opts.certs && !tls) throw new Error("render left the TLS server out although certificates were given");

  // stderr to a file, as a real fd: nginx writes its error log to it.
  const errFile = join(dir, "stderr.log");
  const errFd = openSync(errFile, "a");
  const proc = new Proc("nginx", NGINX_BIN, ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", "stderr"], { outputFd: errFd });
  closeSync(errFd);
  const read = (file: string) => (existsSync(file) ? readFileSync(file, "utf8") : "");
  const err = () => read(errFile);
  const stop = async () => void (await proc.stop(5_000));

  try {
    const outcome = await waitFor(
      `nginx on :${httpPort}`,
      async () => {
        if (!proc.running) return "exited";
        return (await portOpen(httpPort)) && (!tls || (await portOpen(httpsPort))) ? "up" : null;
      },
      15_000,
    );
    if (outcome === "exited") throw new Error(`nginx exited with ${proc.child.exitCode}:\n${err()}`);
  } catch (e) {
    await stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    http: `http://127.0.0.1:${httpPort}`,
    https: tls ? `https://127.0.0.1:${httpsPort}` : undefined,
    dir,
    accessLog: () => read(join(dir, "access.log")),
    errorLog: err,
    stop,
  };
}
