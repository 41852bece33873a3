/**
 * Real processes for the device end-to-end test: the endpoint (`npm run
 * endpoint`'s script, wrangler dev) and the agent (`device/cli.ts`), each in its
 * own process group so a stop or a kill -9 takes its whole tree, and every wait
 * bounded by a time-out.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `check` until it returns a truthy value; throw with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T> | T, timeoutMs = 30_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ""}`);
}

export class Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #exitedFlag = false;

  constructor(name: string, args: string[], env: Record<string, string>) {
    this.name = name;
    this.child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: kill(-pid) reaches wrangler's and workerd's children too.
      detached: true,
    });
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      let partial = "";
      stream.on("data", (chunk: Buffer) => {
        const parts = (partial + chunk.toString()).split("\n");
        partial = parts.pop()!;
        this.lines.push(...parts);
      });
    }
    this.exited = new Promise((resolveExit) =>
      this.child.on("exit", (code, signal) => {
        this.#exitedFlag = true;
        resolveExit({ code, signal });
      }),
    );
  }

  get running(): boolean {
    return !this.#exitedFlag;
  }

  /** Index of the first line at or after `from` matching `pattern`, waiting up to `timeoutMs`. */
  async waitForLine(pattern: RegExp | string, from = 0, timeoutMs = 30_000): Promise<number> {
    const match = (l: string) => (typeof pattern === "string" ? l.includes(pattern) : pattern.test(l));
    return (await waitFor(`${this.name} to print ${pattern}`, () => {
      const i = this.lines.findIndex((l, idx) => idx >= from && match(l));
      return i >= 0 ? i + 1 : 0; // +1 so index 0 is truthy
    }, timeoutMs)) - 1;
  }

  /** Signal the whole process group. */
  signal(signal: NodeJS.Signals): void {
    if (!this.running || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // The group is already gone (it exited between the check and the kill): nothing left to signal.
    }
  }

  /** SIGTERM the group, then SIGKILL it if it has not exited within `graceMs`. */
  async stop(graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.signal("SIGTERM");
    const timer = setTimeout(() => this.signal("SIGKILL"), graceMs);
    const result = await this.exited;
    clearTimeout(timer);
    // wrangler's grandchildren (workerd) may outlive their parent for a moment: make sure the group is gone.
    this.killGroup();
    return result;
  }

  killGroup(): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, "SIGKILL");
    } catch {
      // No such process group: everything in it has already exited.
    }
  }

  tail(n = 40): string {
    return `--- ${this.name} (last ${n} lines) ---\n${this.lines.slice(-n).join("\n")}`;
  }
}

export type EndpointOptions = { port: number; stateDir: string; devVars: string; vars: Record<string, string> };

/** `npm run endpoint` (scripts/endpoint.mjs) with test vars; the dashboard is built only if missing. */
export function startEndpoint(opts: EndpointOptions): Proc {
  const args = [join(ROOT, "scripts/endpoint.mjs"), ...Object.entries(opts.vars).flatMap(([k, v]) => ["--var", `${k}:${v}`])];
  return new Proc("endpoint", args, {
    PORT: String(opts.port),
    HOST: "127.0.0.1",
    STATE_DIR: opts.stateDir,
    DEV_VARS: opts.devVars,
    SKIP_BUILD: existsSync(join(ROOT, "dashboard/dist/index.html")) ? "1" : "0",
  });
}

export function startAgent(args: string[]): Proc {
  return new Proc("agent", ["--disable-warning=ExperimentalWarning", join(ROOT, "device/cli.ts"), ...args], {});
}

export async function getJson<T = any>(url: string, token?: string): Promise<T> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Wait until the endpoint answers HTTP at all (unauthenticated, /api/session is a JSON 401). */
export function endpointReady(base: string, timeoutMs = 90_000): Promise<unknown> {
  return waitFor(`the endpoint at ${base}`, async () => (await fetch(`${base}/api/session`, { signal: AbortSignal.timeout(2_000) })).status === 401, timeoutMs, 250);
}

/** The operator token the endpoint wrote into its secrets file on first start. */
export function adminToken(devVars: string): string {
  const m = /^ADMIN_TOKEN="(.+)"$/m.exec(readFileSync(devVars, "utf8"));
  if (!m) throw new Error(`no ADMIN_TOKEN in ${devVars}`);
  return m[1]!;
}

/** Provision a device as the operator; returns its token. */
export async function provision(base: string, admin: string, id: string): Promise<string> {
  const res = await fetch(`${base}/api/devices`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ id }),
  });
  if (res.status !== 201) throw new Error(`provision ${id}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}
