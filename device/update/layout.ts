/**
 * Where updates live in the agent's state directory (IOT_STATE_DIR, /var/lib/iot-agent under
 * systemd: the one place the unit may write), shared with device/launcher.mjs, which keeps its
 * own copy of these names because an update never replaces it:
 *
 *   releases/<version>/        unpacked releases, beside each other
 *   current -> releases/<v>    the release the launcher starts (absent: the installed agent)
 *   update/trial.json          {version, previous, boots, since}: a release on trial
 *   update/result.json         {version, state: "rolled-back", reason, to, at}: the launcher's verdict, for the agent to report
 *   update/failed.json         [versions] that failed their trial: never installed again
 *   update/downloads/<v>.part  a download in progress (resumed with HTTP Range)
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";

export const SWITCH_EXIT_CODE = 75;

export function layout(stateDir: string) {
  const update = join(stateDir, "update");
  return {
    releases: join(stateDir, "releases"),
    release: (version: string) => join(stateDir, "releases", version),
    current: join(stateDir, "current"),
    update,
    trial: join(update, "trial.json"),
    result: join(update, "result.json"),
    failed: join(update, "failed.json"),
    downloads: join(update, "downloads"),
    part: (version: string) => join(update, "downloads", `${version}.part`),
  };
}
export type Layout = ReturnType<typeof layout>;

export type Trial = { version: string; previous: string | null; boots: number; since: number };
export type Result = { version: string; state: "rolled-back"; reason: string; to: string | null; at: number };

export function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    // Missing (the usual case) or torn by a power cut mid-write of an older version: treated as absent.
    return null;
  }
}

/** Write, fsync, rename, fsync the folder: after a power cut the file is the old one or the new one. */
export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp`;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(tmp, `${JSON.stringify(value)}\n`, { mode: 0o600 });
  syncPath(tmp);
  renameSync(tmp, path);
  syncPath(dirname(path));
}

/** The version `current` points to, or null (the installed agent). */
export function currentVersion(l: Layout): string | null {
  try {
    return basename(readlinkSync(l.current));
  } catch {
    return null;
  }
}

/** Point `current` at releases/<version> in one rename: there is no moment without a `current`. */
export function switchTo(l: Layout, version: string): void {
  const tmp = `${l.current}.tmp`;
  rmSync(tmp, { force: true });
  symlinkSync(join("releases", version), tmp);
  renameSync(tmp, l.current);
  syncPath(dirname(l.current));
}

function syncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
