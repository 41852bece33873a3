// The container's HEALTHCHECK: healthy when the Worker itself answers on
// 127.0.0.1 (not localhost, which may resolve to ::1 where workerd does not
// listen). GET /iot/update runs Worker code without touching a room, so it
// checks wrangler, workerd and the bundle without side effects. Any status
// below 500 counts: a route that later demands credentials (401) still proves
// the Worker is up.
//
//   node docker/healthcheck.mjs   (PORT, default 8787)   exit 0 healthy, 1 not
const url = `http://127.0.0.1:${process.env.PORT || "8787"}/iot/update`;
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(4000) });
  if (res.status >= 500) throw new Error(`status ${res.status}`);
  process.exit(0);
} catch (err) {
  console.error(`healthcheck: ${url}: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
