/**
 * A real, small file system for the full-disk tests: a tmpfs mounted for the test
 * file (the tests run as root on Debian). SQLite meets the same ENOSPC there as on
 * a full SD card; nothing about the disk is faked. Where mount is not permitted the
 * tests that need it are skipped, loudly — never run by filling the host's disk.
 */
import { execFileSync } from "node:child_process";
import { closeSync, fstatSync, ftruncateSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type SmallDisk = {
  dir: string;
  /** Write a filler file until the file system is full (ENOSPC), then give back `leaveBytes`. */
  fill(leaveBytes?: number): void;
  /** Delete the filler: the space comes back. */
  free(): void;
  unmount(): void;
};

/** Mount a tmpfs of `sizeKb`; null (and a loud line) when this machine does not allow it. */
export function mountSmallDisk(sizeKb = 256): SmallDisk | null {
  const dir = mkdtempSync(join(tmpdir(), "iot-small-disk-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeKb}k`, "tmpfs", dir], { stdio: "pipe" });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    console.warn(
      `\n!!! FULL-DISK TESTS SKIPPED: cannot mount a ${sizeKb} KB tmpfs here (${String((err as Error).message).split("\n")[0]}).` +
        `\n!!! They need root (mount -t tmpfs); they are not run against the host's disk.\n`,
    );
    return null;
  }
  const filler = join(dir, "filler");
  return {
    dir,
    fill(leaveBytes = 0) {
      const fd = openSync(filler, "a");
      const block = Buffer.alloc(4096, 0x5a);
      try {
        for (;;) writeSync(fd, block);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
      }
      if (leaveBytes > 0) ftruncateSync(fd, Math.max(0, fstatSync(fd).size - leaveBytes));
      closeSync(fd);
    },
    free() {
      try {
        unlinkSync(filler);
      } catch {
        // Not filled (or freed already): nothing to give back.
      }
    },
    unmount() {
      execFileSync("umount", ["-l", dir], { stdio: "pipe" });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
