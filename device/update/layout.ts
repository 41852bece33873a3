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
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
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

/**
 * Once a release passed its trial: delete every releases/<v>/ but the versions in `keep` (the one
 * running and the one before it, a way back by hand) and whatever `current` names, and every
 * download and half-unpacked folder but those of `underWay` (an install in progress). A Pi's SD
 * card would otherwise fill with one release per update. Returns what it removed, relative to the
 * state dir.
 */
export function pruneReleases(l: Layout, keep: readonly string[], underWay: string | null = null): string[] {
  const kept = new Set(keep);
  const current = currentVersion(l);
  if (current) kept.add(current);
  const removed: string[] = [];
  for (const name of list(l.releases)) {
    // `.<v>.unpacking`: an install cut short (power, crash), unless it is the one under way.
    const unpacking = /^\.(.+)\.unpacking$/.exec(name)?.[1];
    if (unpacking ? unpacking === underWay : kept.has(name)) continue;
    rmSync(join(l.releases, name), { recursive: true, force: true });
    removed.push(join("releases", name));
  }
  for (const name of list(l.downloads)) {
    if (underWay !== null && name === `${underWay}.part`) continue;
    rmSync(join(l.downloads, name), { recursive: true, force: true });
    removed.push(join("update", "downloads", name));
  }
  return removed;
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    // No such folder yet: nothing was installed or downloaded, nothing to prune.
    return [];
  }
}

function syncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
