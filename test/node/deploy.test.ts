/**
 * `wrangler deploy --dry-run`: the bundle Cloudflare would get, built offline
 * from wrangler.toml exactly as `npm run deploy` would, minus the upload. A
 * new account needs nothing pasted into wrangler.toml (docs/endpoint.md,
 * "Deploy to Cloudflare"), which this also holds it to.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "../support/processes";

const outdir = mkdtempSync(join(tmpdir(), "iot-deploy-"));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

describe("wrangler deploy --dry-run", () => {
  it("bundles the Worker, both Durable Object classes and the dashboard offline", () => {
    // The assets directory must exist; `npm test` builds it first, a lone run builds it here.
    if (!existsSync(join(ROOT, "dashboard/dist/index.html"))) {
      const built = spawnSync(process.execPath, [join(ROOT, "dashboard/build.mjs")], { encoding: "utf8", timeout: 60_000 });
      expect(built.status, built.stderr).toBe(0);
    }
    // No credentials and no network: a dry run must need neither.
    const env: NodeJS.ProcessEnv = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" };
    for (const key of ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_KEY", "CLOUDFLARE_EMAIL"]) delete env[key];
    const run = spawnSync(
      process.execPath,
      [join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", outdir],
      { cwd: ROOT, env, encoding: "utf8", timeout: 90_000 },
    );
    const output = `${run.stdout}${run.stderr}`;
    expect(run.status, output).toBe(0);
    expect(output).toContain("--dry-run: exiting now");
    expect(output).toMatch(/env\.DEVICE_ROOM \(DeviceRoom\)\s+Durable Object/);
    expect(output).toMatch(/env\.FLEET \(FleetRegistry\)\s+Durable Object/);
    expect(output).toMatch(/env\.ASSETS\s+Assets/);
    expect(output).toMatch(/Read \d+ files? from the assets directory/);

    const bundle = readFileSync(join(outdir, "index.js"), "utf8");
    // esbuild writes `var DeviceRoom = class extends Server` and one export list at the end.
    expect(bundle).toMatch(/\bDeviceRoom = class\b/);
    expect(bundle).toMatch(/\bFleetRegistry = class\b/);
    const exported = /export\s*\{([^}]*)\}\s*;?\s*(\/\/#.*)?\s*$/s.exec(bundle)?.[1] ?? "";
    expect(exported).toMatch(/\bDeviceRoom\b/);
    expect(exported).toMatch(/\bFleetRegistry\b/);
  });

  it("needs no account, zone or resource ids in wrangler.toml", () => {
    const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
    expect(toml).not.toMatch(/^\s*(account_id|zone_id|zone_name|id|preview_id|database_id)\s*=/m);
    // Secrets come from `wrangler secret put`, never from the file.
    expect(toml).not.toMatch(/^\s*SESSION_SECRET\s*=/m);
  });

  it("is what `npm run check` ends with, and `npm run deploy` builds before it deploys", () => {
    const { scripts } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    expect(scripts.check).toMatch(/wrangler deploy --dry-run/);
    expect(scripts.deploy).toMatch(/^npm run build && wrangler deploy$/);
  });
});
