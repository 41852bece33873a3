/**
 * The real endpoint (`npm run endpoint`: scripts/endpoint.mjs, wrangler dev +
 * workerd) on a free port for end-to-end and browser tests, with test vars,
 * its state and its generated secrets in a temp dir of its own. It can stop
 * and start again on the same port and state (an outage), and a start that
 * fails stops what it started, so no wrangler or workerd outlives a test.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
// The parser scripts/endpoint.mjs reads the file with (a plain .mjs script: users run it too).
import { parseDevVars } from "../../scripts/lib/dev-vars.mjs";
import { freePort, nodeProc, ROOT, waitFor, type Proc } from "./processes";

/** wrangler dev takes a few seconds to start, much longer on a busy two-core machine. */
const START_TIMEOUT_MS = 90_000;

export type EndpointOptions = {
  /** Worker vars over wrangler.toml's (`--var NAME:VALUE`, as compose passes TRUST_PROXY). */
  vars?: Record<string, string>;
  port?: number;
  /** More wrangler dev flags (the benchmark's `--inspector-port`). */
  args?: string[];
  /** Run it in Miniflare directly (`DIRECT=1 npm run endpoint`), as the container does. */
  direct?: boolean;
};

export class Endpoint {
  readonly url: string;
  readonly port: number;
  /** The temp dir holding the state and the secrets; close() removes it. */
  readonly dir: string;
  readonly stateDir: string;
  readonly devVars: string;
  readonly vars: Record<string, string>;
  readonly args: string[];
  readonly direct: boolean;
  /** The running (or last) endpoint process. */
  proc: Proc | undefined;

  constructor(port: number, vars: Record<string, string>, args: string[] = [], direct = false) {
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.vars = vars;
    this.args = args;
    this.direct = direct;
    this.dir = mkdtempSync(join(tmpdir(), "iot-endpoint-"));
    this.stateDir = join(this.dir, "state");
    this.devVars = join(this.dir, ".dev.vars");
  }

  /** Start (again, on the same port and state) and wait until the Worker answers. */
  async start(): Promise<void> {
    const args = [join(ROOT, "scripts/endpoint.mjs"), ...Object.entries(this.vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]), ...this.args];
    const proc = nodeProc("endpoint", args, {
      env: {
        ...process.env,
        PORT: String(this.port),
        HOST: "127.0.0.1",
        STATE_DIR: this.stateDir,
        DEV_VARS: this.devVars,
        DIRECT: this.direct ? "1" : "0",
        // The dashboard is built only if missing (`npm test` and the browser tests build it first).
        SKIP_BUILD: existsSync(join(ROOT, "dashboard/dist/index.html")) ? "1" : "0",
      },
    });
    this.proc = proc;
    try {
      const outcome = await waitFor(
        `the endpoint at ${this.url}`,
        async () => {
          if (!proc.running) return "exited";
          // Any answer from the Worker means it is up (unauthenticated, this one is a JSON 401).
          const res = await fetch(`${this.url}/api/session`, { signal: AbortSignal.timeout(2_000) });
          return res.status === 401 ? "up" : null;
        },
        START_TIMEOUT_MS,
        250,
      );
      if (outcome === "exited") throw new Error(`the endpoint exited (${proc.child.exitCode ?? proc.child.signalCode}) before it answered`);
    } catch (err) {
      // Never leave a half-started wrangler/workerd behind a failed test.
      await proc.stop(5_000);
      // What it printed says why (a port in use, a bad var, a build error).
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${proc.tail()}`, { cause: err });
    }
  }

  async stop(): Promise<void> {
    await this.proc?.stop(5_000);
  }

  /** Stop, and remove the state and secrets. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Everything the current process printed so far. */
  output(): string {
    return this.proc?.output() ?? "";
  }

  /** The secrets the endpoint generated into its .dev.vars on first start. */
  secrets(): Record<string, string> {
    // A plain .mjs function: TypeScript infers `{}` for the object it fills.
    return parseDevVars(readFileSync(this.devVars, "utf8")) as Record<string, string>;
  }

  /** The operator's token (ADMIN_TOKEN). */
  get adminToken(): string {
    const token = this.secrets().ADMIN_TOKEN;
    if (!token) throw new Error(`no ADMIN_TOKEN in ${this.devVars}`);
    return token;
  }
}

/** A started endpoint; if it does not come up, the error says why and nothing is left running or on disk. */
export async function startEndpoint(opts: EndpointOptions = {}): Promise<Endpoint> {
  const endpoint = new Endpoint(opts.port ?? (await freePort()), opts.vars ?? {}, opts.args, opts.direct);
  try {
    await endpoint.start();
  } catch (err) {
    await endpoint.close();
    throw err;
  }
  return endpoint;
}
