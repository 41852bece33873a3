/**
 * Start the real endpoint (`npm run endpoint`: wrangler dev + workerd) on a
 * free port for end-to-end tests, and stop it by process group so nothing
 * outlives the test. State and secrets live in a temp dir unless given.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

export type Endpoint = {
  url: string;
  port: number;
  stateDir: string;
  devVars: string;
  /** Everything the endpoint printed so far. */
  output(): string;
  stop(): Promise<void>;
  /** Start again on the same port with the same state. */
  start(): Promise<void>;
};

export async function startEndpoint(opts: { port?: number; stateDir?: string; env?: Record<string, string> } = {}): Promise<Endpoint> {
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "iot-endpoint-"));
  const stateDir = opts.stateDir ?? join(dir, "state");
  const devVars = join(dir, ".dev.vars");
  let child: ChildProcess | undefined;
  let log = "";

  const endpoint: Endpoint = {
    url: `http://127.0.0.1:${port}`,
    port,
    stateDir,
    devVars,
    output: () => log,
    async start() {
      child = spawn(process.execPath, [join(ROOT, "scripts/endpoint.mjs")], {
        cwd: ROOT,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", STATE_DIR: stateDir, DEV_VARS: devVars, SKIP_BUILD: "1", ...opts.env },
      });
      child.stdout!.on("data", (d) => (log += d));
      child.stderr!.on("data", (d) => (log += d));
      try {
        await waitFor(async () => {
          if (child!.exitCode !== null) throw new Error(`endpoint exited with ${child!.exitCode}:\n${log}`);
          // Any answer from the Worker means it is up (unauthenticated, this one is a JSON 401).
          const res = await fetch(`${endpoint.url}/api/session`).catch(() => null);
          return res !== null && res.status === 401;
        }, 60_000, `endpoint on :${port}`);
      } catch (err) {
        // Never leave a half-started wrangler/workerd behind a failed test.
        await endpoint.stop();
        throw err;
      }
    },
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((r) => c.once("exit", r));
      try {
        process.kill(-c.pid!, "SIGTERM");
      } catch {
        // The group is already gone: nothing to stop.
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-c.pid!, "SIGKILL");
        } catch {
          // Exited between the check and the kill: fine.
        }
      }, 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
  await endpoint.start();
  return endpoint;
}

/** The secrets the endpoint generated into its .dev.vars on first start. */
export function devVars(endpoint: Endpoint): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(endpoint.devVars, "utf8").split("\n")) {
    const m = /^([A-Z0-9_]+)="?(.*?)"?$/.exec(line.trim());
    if (m) vars[m[1]!] = m[2]!;
  }
  return vars;
}

export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
