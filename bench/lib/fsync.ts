/**
 * fsync and fdatasync calls of the endpoint's workerd process(es) during a
 * scenario, counted with `strace -c` (Debian's strace package). Attaching
 * strace stops workerd at every system call, so latency measured while it
 * counts is not the hub's own: the bench counts only where it is asked to
 * (`--strace`) or where no latency is measured (the unwatched scenario).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";

export type FsyncCount = { calls: number; seconds: number; processes: number } | { unavailable: string };

const STRACE = ["/usr/bin/strace", "/bin/strace"].find((p) => existsSync(p));

/** Installed when missing, as the bench installs Mosquitto (Debian's package; root only); undefined if it cannot be. */
export function straceBinary(): string | undefined {
  if (STRACE) return STRACE;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const r = spawnSync("apt-get", ["install", "-y", "--no-install-recommends", "strace"], { stdio: "ignore", env });
  return r.status === 0 && existsSync("/usr/bin/strace") ? "/usr/bin/strace" : undefined;
}

/** Every process below `root` whose command is workerd (wrangler dev runs two: its proxy and ours). */
export function workerdPids(root: number): number[] {
  const parent = new Map<number, number>();
  const comm = new Map<number, string>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // "pid (comm) state ppid …": comm may hold spaces, so split after its closing parenthesis.
      comm.set(pid, stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")));
      parent.set(pid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // The process exited while /proc was listed: not one of ours any more.
    }
  }
  const below = (pid: number): boolean => {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === root) return true;
    return false;
  };
  return [...comm].filter(([pid, name]) => name === "workerd" && below(pid)).map(([pid]) => pid);
}

export class FsyncCounter {
  #strace: ChildProcess;
  #stderr = "";
  #started = performance.now();
  readonly #processes: number;

  private constructor(strace: ChildProcess, processes: number) {
    this.#strace = strace;
    this.#processes = processes;
    strace.stderr!.on("data", (chunk: Buffer) => (this.#stderr += chunk.toString()));
  }

  /** Attach to every thread of the given processes (`-f` with `-p` takes all their threads). */
  static async start(pids: number[]): Promise<FsyncCounter | { unavailable: string }> {
    const bin = straceBinary();
    if (!bin) return { unavailable: "not measured (no strace, and apt-get could not install it)" };
    if (!pids.length) return { unavailable: "not measured (no workerd process found)" };
    const strace = spawn(bin, ["-f", "-c", "-e", "trace=fsync,fdatasync", ...pids.flatMap((p) => ["-p", String(p)])], { stdio: ["ignore", "ignore", "pipe"] });
    const counter = new FsyncCounter(strace, pids.length);
    // strace says "Process N attached" per thread once it is in.
    const deadline = Date.now() + 5_000;
    while (!counter.#stderr.includes("attached") && strace.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (strace.exitCode !== null) return { unavailable: `not measured (strace: ${counter.#stderr.trim().split("\n")[0]})` };
    counter.#started = performance.now();
    return counter;
  }

  /** Detach (SIGINT makes strace print its summary) and read the calls column of the two rows. */
  async stop(): Promise<FsyncCount> {
    const seconds = (performance.now() - this.#started) / 1000;
    const exited = new Promise((r) => this.#strace.once("exit", r));
    this.#strace.kill("SIGINT");
    const timer = setTimeout(() => this.#strace.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
    let calls = 0;
    let found = false;
    // "% time  seconds  usecs/call  calls  errors  syscall": the calls column is the fourth.
    for (const line of this.#stderr.split("\n")) {
      const cols = line.trim().split(/\s+/);
      if (cols.length >= 5 && (cols.at(-1) === "fsync" || cols.at(-1) === "fdatasync")) {
        calls += Number(cols[3]);
        found = true;
      }
    }
    // No row at all: neither was called (strace leaves out syscalls with no calls), if its summary is there.
    if (!found && !this.#stderr.includes("total")) return { unavailable: `not measured (strace printed no summary)` };
    return { calls, seconds, processes: this.#processes };
  }
}
