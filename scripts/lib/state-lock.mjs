// One endpoint per state directory. Two workerd processes on the same SQLite files
// (say `PORT=8788 npm start` beside a running `npm start`) would corrupt each
// other's rooms; the second refuses at once instead, naming the first.
//
// The lock is a file, `<stateDir>/.endpoint.lock`, holding the owner's pid and
// port, made with O_EXCL. A lock whose process is gone (a SIGKILL, a power cut),
// or is this very process (a container restarted as pid 1 again), or, where
// /proc tells, is not an endpoint at all (the pid was reused) is stale and taken over.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM"; // exists, owned by someone else
  }
};

/** Linux: is `pid` running scripts/endpoint.mjs? Elsewhere (no /proc) assume it is. */
const isEndpoint = (pid) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("endpoint.mjs");
  } catch (err) {
    return err.code !== "ENOENT" || !existsProc();
  }
};
const existsProc = () => {
  try {
    readFileSync("/proc/self/stat");
    return true;
  } catch {
    return false;
  }
};

/**
 * Take the lock on `stateDir` for this process, released when it exits.
 * @param {string} stateDir
 * @param {string | number} port
 * @returns {{ ok: true } | { ok: false, pid: number, port: string }}
 */
export function lockStateDir(stateDir, port) {
  mkdirSync(stateDir, { recursive: true });
  const file = join(stateDir, ".endpoint.lock");
  const mine = JSON.stringify({ pid: process.pid, port: String(port) });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(file, mine, { flag: "wx", mode: 0o600 });
      process.on("exit", () => {
        try {
          if (readFileSync(file, "utf8") === mine) rmSync(file);
        } catch {
          // Already gone: nothing to release.
        }
      });
      return { ok: true };
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
    }
    let holder = { pid: 0, port: "?" };
    try {
      holder = JSON.parse(readFileSync(file, "utf8"));
    } catch {
      // Unreadable or half-written: treated as stale below.
    }
    const pid = Number(holder.pid);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid) && isEndpoint(pid)) {
      return { ok: false, pid, port: String(holder.port) };
    }
    rmSync(file, { force: true }); // stale: its owner is gone
  }
  throw new Error(`could not take ${file}`);
}
