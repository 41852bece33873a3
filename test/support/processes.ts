/**
 * Child processes for end-to-end tests (the endpoint, the agent, nginx): each
 * in its own process group, so a stop or a kill reaches everything it started
 * (wrangler's workerd, nginx's workers) and nothing outlives a test; its
 * output kept as lines to wait on; every wait bounded by a time-out.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A port nothing listens on right now (another process may still take it before we bind it). */
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

/**
 * Poll `check` until it returns a truthy value, and return that value; throw
 * with `what` after `timeoutMs`. A check that throws counts as "not yet" (a
 * server still starting refuses connections), and its last error is reported.
 */
export async function waitFor<T>(what: string, check: () => Promise<T> | T, timeoutMs = 30_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ""}`);
}

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

export type ProcOptions = {
  /** The whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** A file descriptor for stdout and stderr instead of pipes (nginx writes its error log to fd 2). */
  outputFd?: number;
};

export class Proc {
  readonly name: string;
  readonly child: ChildProcess;
  /** Every complete line it printed so far, stdout and stderr together. */
  readonly lines: string[] = [];
  readonly exited: Promise<Exit>;
  #exited = false;

  constructor(name: string, command: string, args: string[], opts: ProcOptions = {}) {
    this.name = name;
    const out = opts.outputFd ?? "pipe";
    this.child = spawn(command, args, {
      cwd: ROOT,
      env: opts.env ?? process.env,
      stdio: ["ignore", out, out],
      // Its own process group: kill(-pid) reaches its children too.
      detached: true,
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let partial = "";
      stream?.on("data", (chunk: Buffer) => {
        const parts = (partial + chunk.toString()).split("\n");
        partial = parts.pop()!;
        this.lines.push(...parts);
      });
    }
    this.exited = new Promise((resolveExit) =>
      this.child.on("exit", (code, signal) => {
        this.#exited = true;
        resolveExit({ code, signal });
      }),
    );
  }

  get running(): boolean {
    return !this.#exited;
  }

  output(): string {
    return this.lines.join("\n");
  }

  /** Index of the first line at or after `from` matching `pattern`, waiting up to `timeoutMs`. */
  async waitForLine(pattern: RegExp | string, from = 0, timeoutMs = 30_000): Promise<number> {
    const match = (l: string) => (typeof pattern === "string" ? l.includes(pattern) : pattern.test(l));
    const found = await waitFor(`${this.name} to print ${pattern}`, () => {
      const i = this.lines.findIndex((l, idx) => idx >= from && match(l));
      return i >= 0 ? i + 1 : 0; // +1 so index 0 is truthy
    }, timeoutMs);
    return found - 1;
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
  async stop(graceMs = 10_000): Promise<Exit> {
    this.signal("SIGTERM");
    const timer = setTimeout(() => this.signal("SIGKILL"), graceMs);
    const result = await this.exited;
    clearTimeout(timer);
    // Children (wrangler's workerd) may outlive the group's leader for a moment: make sure the group is gone.
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

/** A Node script with the project's Node (the one running the tests). */
export function nodeProc(name: string, args: string[], opts: ProcOptions = {}): Proc {
  return new Proc(name, process.execPath, args, opts);
}
