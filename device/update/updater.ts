/**
 * Over-the-air updates, on the device (docs/updates.md). Read in the order an update travels:
 *  1. onFirmware(): the room names the release meant for this device (after every hello, and
 *     when a rollout changes). A release this agent already runs, has refused, or that failed
 *     its trial here before, is left alone;
 *  2. its manifest's Ed25519 signature is checked against the key pinned on this device
 *     (IOT_RELEASE_KEY) before a byte is downloaded: the endpoint cannot vouch for code;
 *  3. downloading: into update/downloads/<v>.part, resumed with HTTP Range (download.ts);
 *  4. verifying: size and SHA-256 against the signed manifest; a mismatch is deleted, never unpacked;
 *  5. installing: unpacked beside the running release (releases/<v>/), then `current` switched
 *     in one rename and the trial written (layout.ts);
 *  6. restarting: the agent stops cleanly (the outbox drained as far as the room acks it, the
 *     rest kept on disk) and exits 75; the launcher starts the new release on trial;
 *  7. trial → applied: the new release's first hello acknowledged tells the launcher (IPC) and
 *     the room; a release that crashes or cannot connect is rolled back by the launcher, and the
 *     agent it returns to reports `rolled-back` with the launcher's reason (update/result.json).
 * Every step is reported to the room as an `update` frame.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import type { KeyObject } from "node:crypto";
import { toPrintable, type SignedRelease, type UpdateState } from "../../party/protocol.ts";
import { errorText, sleep, type Logger } from "../log.ts";
import { downloadResumable } from "./download.ts";
import { currentVersion, layout, pruneReleases, readJson, switchTo, writeJsonAtomic, type Layout, type Result, type Trial } from "./layout.ts";
import { unpackTarGz } from "./tar.ts";
import { artifactMismatch, compareVersions, releaseKey, signatureValid } from "./verify.ts";

/** Download attempts per look at a release (the next hello or rollout check tries again, resuming). */
const DOWNLOAD_ATTEMPTS = 5;
/** Progress is reported at most this often. */
const PROGRESS_MS = 1_000;

export type UpdateReport = { type: "update"; version: string; state: UpdateState; progress?: number; reason?: string };

export type UpdaterOptions = {
  endpoint: string;
  token?: string;
  stateDir: string;
  /** IOT_RELEASE_KEY: without it nothing is installed. */
  releaseKey?: string;
  /** The version this agent is (FW_VERSION). */
  running: string;
  /** The launcher's folder (IOT_LAUNCHER, set by device/launcher.mjs); null when not started by it. */
  launcherDir: string | null;
  /** The version on trial in this run (IOT_TRIAL), or null. */
  trial: string | null;
  send: (msg: UpdateReport) => boolean;
  log: Logger;
  /** Stop the agent cleanly and exit with `code` (75: start the release `current` points to). */
  exit: (code: number) => Promise<void>;
  /** Tell the launcher (IPC); absent when there is none. */
  tellLauncher?: (msg: { type: "trial-passed"; version: string }) => void;
  fetch?: typeof fetch;
};

export class Updater {
  readonly #o: UpdaterOptions;
  readonly #l: Layout;
  #key: KeyObject | null = null;
  /** Why this device cannot check a signature; `unsupported` says it is off by setup, not broken. */
  #keyProblem: { state: "failed" | "unsupported"; reason: string } | null = null;
  /** The version being installed now. */
  #busy: string | null = null;
  /** Versions refused in this run (bad signature, bad hash, not installable here): not tried again until a restart. */
  #refused = new Set<string>();
  #trialPassed = false;
  /** The launcher's verdict on the last release, reported once the link is up. */
  #result: Result | null;

  constructor(o: UpdaterOptions) {
    this.#o = o;
    this.#l = layout(o.stateDir);
    if (o.releaseKey) {
      try {
        this.#key = releaseKey(o.releaseKey);
      } catch (err) {
        this.#keyProblem = { state: "failed", reason: errorText(err) };
      }
    } else {
      // A fleet that has not made its release key yet (or a device set up without one) is not
      // failing an update: the rollout must not pause itself over it (docs/updates.md).
      this.#keyProblem = { state: "unsupported", reason: "no IOT_RELEASE_KEY pinned: updates are off on this device" };
    }
    this.#result = readJson<Result>(this.#l.result);
    if (this.#result) o.log.warn(`Update: ${this.#result.version} was rolled back to ${this.#result.to ?? "the installed agent"}: ${this.#result.reason}`);
  }

  /** The link is up and hello sent: a release on trial says so. */
  onLinkOpen(): void {
    if (this.#o.trial && !this.#trialPassed) this.#report(this.#o.trial, "trial");
  }

  /** The room acknowledged our hello (or readings): a trial is passed; a pending verdict is delivered. */
  onAck(): void {
    const trial = this.#o.trial;
    if (trial && !this.#trialPassed) {
      this.#trialPassed = true;
      // Before the launcher hears of it: it deletes update/trial.json, which names the previous release.
      this.#prune(trial);
      this.#o.tellLauncher?.({ type: "trial-passed", version: trial });
      this.#o.log.info(`Update: ${trial} passed its trial (hello acknowledged); applied`);
      this.#report(trial, "applied");
    }
    const result = this.#result;
    if (result && this.#report(result.version, "rolled-back", undefined, result.reason)) {
      this.#result = null;
      rmSync(this.#l.result, { force: true });
    }
  }

  /** The release the room means for this device. */
  onFirmware(release: SignedRelease | null, path: string | null): void {
    if (!release || !path) return;
    const v = release.version;
    if (v === this.#o.running || this.#busy !== null || this.#refused.has(v)) return;
    const failed = readJson<string[]>(this.#l.failed) ?? [];
    if (failed.includes(v)) {
      // Reported as rolled-back when it happened; an operator publishes a fixed version instead.
      this.#refused.add(v);
      this.#o.log.warn(`Update: ${v} failed its trial on this device before; not installing it again`);
      return;
    }
    this.#busy = v;
    void this.#install(release, path).finally(() => {
      this.#busy = null;
    });
  }

  async #install(release: SignedRelease, path: string): Promise<void> {
    const v = release.version;
    const refuse = (reason: string, state: "failed" | "unsupported" = "failed") => {
      this.#refused.add(v);
      this.#o.log.warn(`Update: ${v} ${state === "failed" ? "refused" : "not installed"}: ${reason}`);
      this.#report(v, state, undefined, reason);
    };
    // 1-2. Installable here, and signed by this fleet's key: before a byte is downloaded.
    if (!this.#key) return refuse(this.#keyProblem!.reason, this.#keyProblem!.state);
    if (!this.#o.launcherDir) return refuse("not started by the launcher (launcher.mjs), which alone can switch and roll back releases", "unsupported");
    if (release.minAgent && compareVersions(this.#o.running, release.minAgent) < 0) {
      return refuse(`needs agent ${release.minAgent} or newer to install it; this is ${this.#o.running}`);
    }
    if (!signatureValid(this.#key, release)) {
      return refuse("signature does not verify against the pinned IOT_RELEASE_KEY: not signed with this fleet's release key");
    }
    this.#o.log.info(`Update: ${v} (${release.size} bytes) is meant for this device; downloading`);

    // 3. Download, resumed across attempts and restarts.
    const part = this.#l.part(v);
    let lastProgress = 0;
    let downloaded = false;
    for (let attempt = 1; attempt <= DOWNLOAD_ATTEMPTS && !downloaded; attempt++) {
      this.#report(v, "downloading", 0);
      try {
        const { resumedFrom } = await downloadResumable({
          url: new URL(path, this.#o.endpoint),
          token: this.#o.token,
          path: part,
          size: release.size,
          fetch: this.#o.fetch,
          onProgress: (bytes) => {
            const now = Date.now();
            if (now - lastProgress < PROGRESS_MS && bytes < release.size) return;
            lastProgress = now;
            this.#report(v, "downloading", Math.round((bytes / release.size) * 1000) / 1000);
          },
        });
        if (resumedFrom > 0) this.#o.log.info(`Update: ${v} download resumed from byte ${resumedFrom}`);
        downloaded = true;
      } catch (err) {
        this.#o.log.warn(`Update: ${v} download attempt ${attempt} failed: ${errorText(err)}`);
        if (attempt === DOWNLOAD_ATTEMPTS) {
          // Not refused: the .part stays, and the next look at this release resumes it.
          this.#report(v, "failed", undefined, toPrintable(`download failed: ${errorText(err)}`, 300));
          return;
        }
        await sleep(Math.min(1_000 * 2 ** (attempt - 1), 15_000));
      }
    }

    // 4. The bytes are the signed ones, or they are deleted unopened.
    this.#report(v, "verifying");
    const mismatch = await artifactMismatch(part, release);
    if (mismatch) {
      rmSync(part, { force: true });
      return refuse(`artifact refused before unpacking: ${mismatch}`);
    }

    // 5. Unpacked beside what runs, then switched in one rename, the trial written first.
    this.#report(v, "installing");
    try {
      this.#unpack(v, part);
    } catch (err) {
      return refuse(toPrintable(`could not install: ${errorText(err)}`, 300));
    }
    rmSync(part, { force: true });
    const trial: Trial = { version: v, previous: currentVersion(this.#l), boots: 0, since: Date.now() };
    writeJsonAtomic(this.#l.trial, trial);
    switchTo(this.#l, v);

    // 6. Restart into it.
    this.#o.log.info(`Update: ${v} installed in ${this.#l.release(v)}; restarting into it (on trial)`);
    this.#report(v, "restarting");
    await this.#o.exit(75);
  }

  /** releases/<v>/ from the verified archive, made in a temporary folder and renamed into place. */
  #unpack(v: string, part: string): void {
    const files = unpackTarGz(readFileSync(part));
    if (!files.some((f) => f.name === "iot-agent.mjs")) throw new Error("the archive has no iot-agent.mjs");
    mkdirSync(this.#l.releases, { recursive: true });
    const tmp = join(this.#l.releases, `.${v}.unpacking`);
    rmSync(tmp, { recursive: true, force: true });
    for (const f of files) {
      const target = join(tmp, f.name);
      mkdirSync(join(target, ".."), { recursive: true });
      writeFileSync(target, f.data, { mode: 0o644 });
    }
    // The native addons (i2c-bus, onoff) were built on this Pi for the installed agent: shared.
    const modules = join(this.#o.launcherDir!, "node_modules");
    if (existsSync(modules)) symlinkSync(modules, join(tmp, "node_modules"));
    const dest = this.#l.release(v);
    rmSync(dest, { recursive: true, force: true });
    renameSync(tmp, dest);
  }

  /** Keep the release that passed its trial and the one before it (for a roll-back by hand); delete older ones. */
  #prune(version: string): void {
    const record = readJson<Trial>(this.#l.trial);
    if (record?.version !== version) {
      // Which release came before is unknown: keeping everything is the safe side.
      this.#o.log.warn(`Update: no trial record for ${version}; old releases are kept`);
      return;
    }
    const keep = [version, ...(record.previous ? [record.previous] : [])];
    try {
      // The room may already have named a newer release: its download is not touched.
      const removed = pruneReleases(this.#l, keep, this.#busy);
      if (removed.length) this.#o.log.info(`Update: removed ${removed.join(", ")} (kept ${keep.join(", ")})`);
    } catch (err) {
      // Disk space, not correctness: the release runs either way; the next applied update tries again.
      this.#o.log.warn(`Update: could not remove old releases: ${errorText(err)}`);
    }
  }

  #report(version: string, state: UpdateState, progress?: number, reason?: string): boolean {
    const msg: UpdateReport = { type: "update", version, state };
    if (progress !== undefined) msg.progress = Math.min(1, Math.max(0, progress));
    if (reason !== undefined) msg.reason = toPrintable(reason, 300);
    return this.#o.send(msg);
  }
}
