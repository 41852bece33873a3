/**
 * Versions as releases and agents name them (MAJOR.MINOR.PATCH), compared one way
 * wherever it matters: the legacy GET /iot/update (worker/routes/iot.ts) and the agent's
 * minimum-version check before it installs a release (device/update/updater.ts).
 */

/** > 0 when `a` is newer than `b`, < 0 when older, 0 when the same. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
