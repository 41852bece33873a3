// The container's HEALTHCHECK: healthy when the Worker itself answers on
// 127.0.0.1 (not localhost, which may resolve to ::1 where workerd does not
// listen). GET /api/session without credentials runs Worker code (a JSON 401)
// without touching a room, so it checks wrangler, workerd and the bundle with
// no side effects; a 500 (say, missing secrets) is unhealthy.
//
//   node docker/healthcheck.mjs   (PORT, default 8787)   exit 0 healthy, 1 not
const url = `http://127.0.0.1:${process.env.PORT || "8787"}/api/session`;
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(4000) });
  if (res.status >= 500) throw new Error(`status ${res.status}`);
  process.exit(0);
} catch (err) {
  console.error(`healthcheck: ${url}: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
