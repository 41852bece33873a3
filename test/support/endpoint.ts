/**
 * The real endpoint (`node scripts/endpoint.mjs`, i.e. wrangler dev + workerd)
 * for tests that need one: on a free port, with its state and secrets in a
 * fresh temp folder, in its own process group so stopping it stops workerd too.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export type Endpoint = {
  url: string;
  /** The temp folder: STATE_DIR and DEV_VARS live in it. */
  dir: string;
  devVarsFile: string;
  /** Everything the endpoint printed so far (for a failing test's message). */
  output(): string;
  stop(): Promise<void>;
};

/** A port nobody is listening on right now (the OS picks; we release it for the endpoint). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolvePort(address.port) : reject(new Error("no port"))));
    });
  });
}

export async function startEndpoint(opts: { env?: Record<string, string>; readyTimeoutMs?: number } = {}): Promise<Endpoint> {
  const dir = mkdtempSync(join(tmpdir(), "iot-endpoint-"));
  const port = await freePort();
  // wrangler dev also opens an inspector (default 9229): several endpoints on one machine would fight over it.
  const inspectorPort = await freePort();
  const devVarsFile = join(dir, ".dev.vars");
  let output = "";
  const child: ChildProcess = spawn(
    process.execPath,
    [join(ROOT, "scripts/endpoint.mjs"), "--inspector-port", String(inspectorPort)],
    {
      cwd: ROOT,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        PORT: String(port),
        HOST: "127.0.0.1",
        STATE_DIR: join(dir, "state"),
        DEV_VARS: devVarsFile,
        // No SKIP_BUILD: the script rebuilds the dashboard (≈1 s), so a test never runs against a stale bundle.
        ...opts.env,
      },
    },
  );
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    // Bounded: a long test logs a JSON line per reading.
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));

  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      killGroup(child, "SIGTERM");
      const timedOut = await Promise.race([exited.then(() => false), sleep(10_000).then(() => true)]);
      if (timedOut) killGroup(child, "SIGKILL");
    }
    // workerd may outlive wrangler by a moment; the group kill above reached it too.
    killGroup(child, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 120_000);
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`endpoint exited with ${child.exitCode} before it was ready:\n${output.slice(-4000)}`);
    }
    // /iot/update answers without any auth, so it tells "up" whatever the auth settings.
    const up = await fetch(`${url}/iot/update`, { signal: AbortSignal.timeout(2_000) })
      .then((r) => r.ok)
      .catch(() => false);
    if (up) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`endpoint not ready after ${opts.readyTimeoutMs ?? 120_000} ms:\n${output.slice(-4000)}`);
    }
    await sleep(500);
  }
  return { url, dir, devVarsFile, output: () => output, stop };
}

/** The local secrets the endpoint wrote (scripts/lib/dev-vars.mjs): for tests that must sign in. */
export function readDevVars(file: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split(/\r?\n/)) {
    const m = /^\s*([A-Z0-9_]+)\s*=\s*"?(.*?)"?\s*$/.exec(line);
    if (m && !line.trimStart().startsWith("#")) vars[m[1]!] = m[2]!;
  }
  return vars;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    // Negative pid: the whole group (wrangler and its workerd), which `detached` made for us.
    process.kill(-child.pid!, signal);
  } catch {
    // ESRCH: the group is already gone, which is what we wanted.
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
