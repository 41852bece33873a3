/**
 * A Docker engine for the container test (test/container/), and the images it
 * runs: docker/Dockerfile built on node:22-bookworm-slim when the engine has it
 * or can pull it, else on the local stand-in docker/standin-base.sh makes
 * (machines that cannot reach Docker Hub, such as CI's).
 *
 * Everything goes through the `docker` command, as a user would type it.
 */
import { spawn, spawnSync, type SpawnSyncOptions } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, sleep } from "./processes";

export const REAL_BASE = "node:22-bookworm-slim";
export const STANDIN_BASE = "iot-edge/node:22-bookworm-standin";

export type Run = { status: number | null; stdout: string; stderr: string };

/** `docker …args`, waited for; never throws. */
export function docker(args: string[], opts: SpawnSyncOptions & { input?: string | Buffer } = {}): Run {
  const run = spawnSync("docker", args, { encoding: "utf8", timeout: 600_000, maxBuffer: 64 << 20, ...opts });
  return {
    status: run.error ? null : run.status,
    stdout: String(run.stdout ?? ""),
    stderr: run.error ? String(run.error.message) : String(run.stderr ?? ""),
  };
}

/** `docker …args`, its stdout trimmed; throws with docker's own words when it fails. */
export function dockerOk(args: string[], opts: SpawnSyncOptions & { input?: string | Buffer } = {}): string {
  const run = docker(args, opts);
  if (run.status !== 0) throw new Error(`docker ${args.join(" ")}: exit ${run.status}\n${run.stderr.trim()}`);
  return run.stdout.trim();
}

export type Engine =
  | { ok: true; version: string; startedHere: boolean; stop(): Promise<void> }
  | { ok: false; why: string };

const engineVersion = (): string | null => {
  const run = docker(["version", "--format", "{{.Server.Version}}"], { timeout: 15_000 });
  return run.status === 0 ? run.stdout.trim() : null;
};

const hasCommand = (name: string, paths: string[]) =>
  paths.some((p) => existsSync(p)) || spawnSync("sh", ["-c", `command -v ${name}`]).status === 0;

/**
 * A running engine: the one already there, or, as root with Debian's docker.io
 * installed (.ci/run installs it), a dockerd started here and stopped by stop().
 */
export async function ensureEngine(): Promise<Engine> {
  if (!hasCommand("docker", ["/usr/bin/docker", "/usr/local/bin/docker"])) return { ok: false, why: "no docker command (Debian: apt-get install docker.io)" };
  let version = engineVersion();
  if (version) return { ok: true, version, startedHere: false, stop: async () => {} };
  if (process.getuid?.() !== 0) return { ok: false, why: "no Docker engine answers, and only root can start one here" };
  if (!hasCommand("dockerd", ["/usr/sbin/dockerd", "/usr/bin/dockerd"])) return { ok: false, why: "no Docker engine answers and dockerd is not installed (Debian: apt-get install docker.io)" };

  const log = join(tmpdir(), `iot-dockerd-${process.pid}.log`);
  const fd = openSync(log, "a");
  const daemon = spawn("dockerd", [], { detached: true, stdio: ["ignore", fd, fd], env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  closeSync(fd);
  daemon.unref();
  const exited = new Promise<void>((resolve) => daemon.once("exit", () => resolve()));
  for (let waited = 0; waited < 60_000; waited += 500) {
    version = engineVersion();
    if (version) {
      return {
        ok: true,
        version,
        startedHere: true,
        stop: async () => {
          daemon.kill("SIGTERM");
          await Promise.race([exited, sleep(20_000)]);
        },
      };
    }
    if (daemon.exitCode !== null) break;
    await sleep(500);
  }
  daemon.kill("SIGTERM");
  const tail = existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").slice(-8).join("\n") : "";
  return { ok: false, why: `dockerd did not come up within 60 s (log ${log}):\n${tail}` };
}

const imageExists = (tag: string) => docker(["image", "inspect", tag], { timeout: 30_000 }).status === 0;

/**
 * The base image to build on: the real one if the engine has it; else the
 * stand-in if it was made before, or can be made here (root and debootstrap);
 * else the real one pulled. Returns its tag and where it came from.
 */
export function baseImage(): { tag: string; how: string } {
  if (process.env.IOT_CONTAINER_BASE) return { tag: process.env.IOT_CONTAINER_BASE, how: "IOT_CONTAINER_BASE" };
  if (imageExists(REAL_BASE)) return { tag: REAL_BASE, how: "the real image, already on this engine" };
  if (imageExists(STANDIN_BASE)) return { tag: STANDIN_BASE, how: "the local stand-in (docker/standin-base.sh), made before" };
  const canStandIn = process.getuid?.() === 0 && hasCommand("debootstrap", ["/usr/sbin/debootstrap"]);
  if (canStandIn) {
    const made = spawnSync("sh", [join(ROOT, "docker/standin-base.sh"), STANDIN_BASE], { encoding: "utf8", timeout: 600_000 });
    if (made.status !== 0) throw new Error(`docker/standin-base.sh failed:\n${made.stdout}\n${made.stderr}`);
    return { tag: STANDIN_BASE, how: "the local stand-in, made now by docker/standin-base.sh" };
  }
  const pulled = docker(["pull", REAL_BASE], { timeout: 600_000 });
  if (pulled.status === 0) return { tag: REAL_BASE, how: "the real image, pulled now" };
  throw new Error(
    `no base image: ${REAL_BASE} cannot be pulled (${pulled.stderr.trim().split("\n").at(-1)}), ` +
      `and the stand-in needs root and debootstrap (sudo sh docker/standin-base.sh)`,
  );
}

/**
 * `docker build -f docker/Dockerfile` on a context of the files git knows
 * (tracked, and new ones it does not ignore), as a fresh clone would have them:
 * the same thing docker/Dockerfile.dockerignore keeps out, whichever builder runs.
 * The classic builder where buildx is missing (Debian's docker.io).
 */
export function buildImage(tag: string, nodeImage: string): { seconds: number; log: string } {
  const files = spawnSync("git", ["ls-files", "-co", "--exclude-standard", "-z"], { cwd: ROOT, encoding: "buffer" });
  if (files.status !== 0) throw new Error(`git ls-files: ${files.stderr}`);
  const context = spawnSync("tar", ["--null", "-T", "-", "--ignore-failed-read", "-c"], {
    cwd: ROOT,
    input: files.stdout,
    maxBuffer: 256 << 20,
  });
  if (context.status !== 0) throw new Error(`tar of the build context: ${context.stderr}`);
  const buildx = docker(["buildx", "version"], { timeout: 15_000 }).status === 0;
  const t0 = Date.now();
  const run = docker(["build", "-f", "docker/Dockerfile", "--build-arg", `NODE_IMAGE=${nodeImage}`, "-t", tag, "-"], {
    input: context.stdout,
    env: { ...process.env, ...(buildx ? {} : { DOCKER_BUILDKIT: "0" }) },
  });
  const log = run.stdout + run.stderr;
  if (run.status !== 0) throw new Error(`docker build failed (${run.status}):\n${log.split("\n").slice(-30).join("\n")}`);
  return { seconds: (Date.now() - t0) / 1000, log };
}

/** The container's health as its HEALTHCHECK reports it: starting, healthy, unhealthy ("" if none). */
export function health(container: string): string {
  return docker(["inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", container], { timeout: 15_000 }).stdout.trim();
}
