// The endpoint in Miniflare directly: the same Worker, the same wrangler.toml
// (read by wrangler's own unstable_getMiniflareWorkerOptions: bindings, rooms,
// rate limits, static assets), the same workerd, without wrangler dev's proxy
// Worker (a second workerd every request and frame passes through), its file
// watcher and its re-printing of the runtime's output. For the LAN/container
// path, `npm start` and the benchmark; `DIRECT=0` (and `npm run dev`) run wrangler dev instead.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";

/**
 * @param {{ root: string, host: string, port: string, stateDir: string, secrets: Record<string, string>, vars: Record<string, string> }} o
 */
export async function startDirect(o) {
  const requireFromWrangler = createRequire(createRequire(import.meta.url).resolve("wrangler/package.json"));
  const { unstable_getMiniflareWorkerOptions } = await import("wrangler");
  // wrangler's own Miniflare (and so its workerd), wherever npm put it.
  const { Miniflare, Log, LogLevel, convertV4MiniflareOptions } = await import(pathToFileURL(requireFromWrangler.resolve("miniflare")).href);

  // modulesRules (how wrangler would load .txt/.wasm imports) has no v5 equivalent and the bundle needs none.
  const { workerOptions: { modulesRules: _rules, ...workerOptions }, define } = unstable_getMiniflareWorkerOptions(join(o.root, "wrangler.toml"));
  const outDir = join(o.root, ".wrangler/direct");
  mkdirSync(outDir, { recursive: true });
  const script = join(outDir, "index.js");
  // Bundled as wrangler bundles a Worker: ESM, workerd's export conditions, its built-ins external.
  await build({
    entryPoints: [join(o.root, "worker/index.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2024",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    external: ["cloudflare:*", "node:*"],
    define,
    outfile: script,
    logLevel: "warning",
  });

  // Miniflare 5 takes a new options shape; wrangler itself hands it the v4 shape through this converter.
  const mf = new Miniflare(convertV4MiniflareOptions({
    host: o.host,
    port: Number(o.port),
    // The layout wrangler dev writes under --persist-to, so either can open the other's state.
    resourcePersistencePath: join(o.stateDir, "v3"),
    // No request.cf download (no internet on many LANs).
    cf: false,
    log: new Log(LogLevel.INFO),
    // INSPECTOR_PORT=9229: the DevTools inspector on the Worker's isolate (rooms included), for CPU profiles.
    ...(process.env.INSPECTOR_PORT ? { inspectorPort: Number(process.env.INSPECTOR_PORT) } : {}),
    // The Worker's console output, as it printed it: no per-request lines, no
    // reformatting (the legacy reading lines are what an operator tails).
    logRequests: false,
    handleStructuredLogs: ({ level, message }) => {
      (level === "error" || level === "warn" ? process.stderr : process.stdout).write(`${message}\n`);
    },
    workers: [
      {
        ...workerOptions,
        name: "iot-edge",
        modules: true,
        scriptPath: script,
        bindings: { ...workerOptions.bindings, ...o.secrets, ...o.vars },
      },
    ],
  }));
  const url = await mf.ready;
  console.log(`endpoint: Miniflare (direct) ready on ${url}`);
  return mf;
}
