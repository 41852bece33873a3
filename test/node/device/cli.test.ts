import { execFile } from "node:child_process";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../../..");
const dir = mkdtempSync(join(tmpdir(), "iot-cli-"));
const bundle = join(dir, "iot-agent.mjs");
const seen: { method: string; url: string; headers: IncomingHttpHeaders; body: string }[] = [];

/** A stand-in endpoint for the one-shot commands. */
const server = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
    res.setHeader("content-type", "application/json");
    if (req.url === "/iot/config") {
      res.end(JSON.stringify({
        message: "IoT Configuration", iotip: req.headers["x-iot-ip"], ts: 1, id: req.headers["x-iot-id"],
        config: { scale: "F", intervalMs: 1000, heartbeatMs: 5000, socketPath: "/parties/device/pi-1", fw: "1.0.0" },
      }));
    } else if (req.url?.startsWith("/iot/update")) {
      res.end(JSON.stringify({ message: "IoT Update", current: "1.0.0", update: null }));
    } else if (req.url === "/iot/data") {
      res.end(JSON.stringify({ message: `POST loopback ${JSON.parse(body).iot}` }));
    } else {
      res.statusCode = 404;
      res.end(JSON.stringify({ error: { code: "not_found", message: "no route" } }));
    }
  });
});
let endpoint = "";

beforeAll(async () => {
  // The folder the Pi gets, built by the real `npm run device:build` script.
  await new Promise<void>((resolveBuild, reject) =>
    execFile(process.execPath, [join(ROOT, "scripts/build-device.mjs")], { env: { ...process.env, OUT_DIR: dir }, timeout: 60_000 }, (err) =>
      err ? reject(err) : resolveBuild(),
    ),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function run(script: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    execFile(process.execPath, ["--disable-warning=ExperimentalWarning", script, ...args], { timeout: 15_000 }, (err, stdout, stderr) =>
      resolveRun({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("command line", () => {
  it("device:build leaves the bundle, a package.json with only the native addons, and the systemd files", async () => {
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    expect(Object.keys(pkg.optionalDependencies)).toEqual(["i2c-bus", "onoff"]);
    expect(pkg.dependencies).toBeUndefined();
    expect(readFileSync(join(dir, "iot-agent.service"), "utf8")).toContain("ExecStart=/opt/iot-agent/node ");
    expect(readFileSync(join(dir, "iot-agent.env.example"), "utf8")).toContain("IOT_ENDPOINT=");
  });

  it("the bundle prints --help and exits 0", async () => {
    const { code, stdout } = await run(bundle, ["--help"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Usage: /);
    expect(stdout).toContain("--endpoint");
    expect(stdout).toContain("IOT_TOKEN");
  });

  it("config, update and post each make one call and print the JSON answer", async () => {
    const common = ["--endpoint", endpoint, "--id", "pi-1", "--ip", "192.168.1.19", "--token", "pi-1.abcdefghijklmnop"];
    const config = await run(bundle, ["config", ...common]);
    expect(config.code).toBe(0);
    expect(JSON.parse(config.stdout)).toMatchObject({ message: "IoT Configuration", iotip: "192.168.1.19", id: "pi-1" });
    const update = await run(join(ROOT, "device/cli.ts"), ["update", ...common]);
    expect(JSON.parse(update.stdout)).toEqual({ message: "IoT Update", current: "1.0.0", update: null });
    const post = await run(bundle, ["post", ...common]);
    expect(JSON.parse(post.stdout).message).toMatch(/^POST loopback \d+$/);
    expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual(["GET /iot/config", "GET /iot/update?version=1.0.0", "POST /iot/data"]);
    for (const r of seen) {
      expect(r.headers).toMatchObject({ "x-iot-ip": "192.168.1.19", "x-iot-id": "pi-1", authorization: "Bearer pi-1.abcdefghijklmnop" });
    }
  });

  it("says what is wrong and exits non-zero on a bad option or an unreachable endpoint", async () => {
    const bad = await run(bundle, ["--interval-ms", "nope"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid configuration: intervalMs/);
    const down = await run(bundle, ["config", "--endpoint", "http://127.0.0.1:9", "--id", "pi-1"]);
    expect(down.code).toBe(1);
    // Which endpoint, and why: not a bare "fetch failed".
    expect(down.stderr).toMatch(/iot-agent config .*cannot reach http:\/\/127.0.0.1:9: \S+/);
  });
});
