import { execFile } from "node:child_process";
import { createServer } from "node:http";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentConfig } from "../../../device/config.ts";
import { formatChecks, runDoctor, type Check, type DoctorDeps } from "../../../device/doctor.ts";
import { errno, FakeTmp102Bus } from "./fakes.ts";

const ROOT = resolve(import.meta.dirname, "../../..");
const dir = mkdtempSync(join(tmpdir(), "iot-doctor-"));
const TOKEN = "pi-1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/** A fake /dev with i2c-1, and a fake /sys/class/gpio with a Zero 2W's chip at base 512. */
const devRoot = join(dir, "dev");
mkdirSync(devRoot);
writeFileSync(join(devRoot, "i2c-1"), "");
const gpioRoot = join(dir, "gpio");
mkdirSync(join(gpioRoot, "gpiochip512"), { recursive: true });
writeFileSync(join(gpioRoot, "export"), "");
writeFileSync(join(gpioRoot, "gpiochip512", "label"), "pinctrl-bcm2835\n");
writeFileSync(join(gpioRoot, "gpiochip512", "base"), "512\n");

/** A stand-in endpoint: /iot/config for the right token; `dateOffsetMs` moves its Date header; `/html` is a web server that is not one. */
let dateOffsetMs = 0;
const server = createServer((req, res) => {
  res.setHeader("date", new Date(Date.now() + dateOffsetMs).toUTCString());
  if (req.url?.startsWith("/html/")) {
    res.setHeader("content-type", "text/html");
    return res.end("<!doctype html><h1>Welcome to nginx!</h1>");
  }
  res.setHeader("content-type", "application/json");
  if (req.headers.authorization !== `Bearer ${TOKEN}`) {
    res.statusCode = 401;
    return res.end(JSON.stringify({ error: { code: "unauthorized", message: "unknown device token" } }));
  }
  res.end(JSON.stringify({
    message: "IoT Configuration", iotip: "192.168.1.19", ts: Date.now(), id: "pi-1",
    config: { scale: "F", intervalMs: 1000, heartbeatMs: 5000, socketPath: "/parties/device/pi-1", fw: "1.0.0" },
  }));
});
let endpoint = "";
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const config = (over: Partial<AgentConfig> = {}): AgentConfig => ({
  endpoint, id: "pi-1", token: TOKEN, ip: "192.168.1.19", sensor: "tmp102", simulate: false, i2cBus: 1, i2cAddress: 0x48, tmp102Rate: 4,
  tmp102Extended: false, led: true, ledGpio: 12, stateDir: join(dir, "state"), outboxMax: 1000, scale: "F", intervalMs: 1000,
  backoffMaxMs: 1000, quiet: false, ...over,
});
const bus = new FakeTmp102Bus(0x48);
/** A Zero 2W on 64-bit Raspberry Pi OS, NTP-synchronised, not under systemd; the GPIO export as the kernel takes it. */
const zero2w = { platform: "linux", arch: "arm64", kernel: "6.6.51+rpt-rpi-v8", os: "Debian GNU/Linux 12 (bookworm)", model: "Raspberry Pi Zero 2 W Rev 1.0" };
const deps = (over: DoctorDeps = {}): DoctorDeps => ({
  devRoot, gpioRoot, loadI2c: async () => async () => bus, freeBytes: () => 512 * 1024 * 1024,
  system: zero2w, ntpSynchronized: async () => true, exportGpio: async () => "exported", unitState: async () => null, ...over,
});
const check = (checks: Check[], name: string) => checks.find((c) => c.name === name)!;

describe("doctor", () => {
  it("a ready device: every check ok, in order, and 'Ready.'", async () => {
    bus.celsius = 21.5;
    const checks = await runDoctor(config(), deps());
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ["System", "ok"], ["Node", "ok"], ["I2C", "ok"], ["TMP102", "ok"], ["GPIO", "ok"], ["State dir", "ok"], ["Clock", "ok"], ["TCP", "ok"], ["Endpoint", "ok"], ["Token", "ok"],
    ]);
    expect(check(checks, "System").detail).toBe("Debian GNU/Linux 12 (bookworm), kernel 6.6.51+rpt-rpi-v8, arm64 (Raspberry Pi Zero 2 W Rev 1.0)");
    expect(check(checks, "TMP102").detail).toBe("answers at 0x48 on i2c-1: 21.50 °C");
    expect(check(checks, "GPIO").detail).toMatch(/^GPIO12 is sysfs 524 \(gpiochip512, pinctrl-bcm2835, base 512\); exported and released again$/);
    expect(check(checks, "TCP").detail).toMatch(/^127\.0\.0\.1 port \d+ open in \d+ ms$/);
    expect(bus.transactions.every((t) => t.startsWith("read "))).toBe(true); // doctor never writes to the chip
    expect(formatChecks(checks).split("\n").at(-1)).toBe("Ready.");
  });

  it("an old Node fails, with what to install", async () => {
    const c = check(await runDoctor(config(), deps({ nodeVersion: "20.18.0" })), "Node");
    expect(c).toMatchObject({ status: "fail", detail: expect.stringMatching(/needs 22\.13 or newer/), advice: expect.stringMatching(/install Node 22/) });
  });

  it("no I2C bus fails, with the raspi-config line; the TMP102 is then not checked", async () => {
    const checks = await runDoctor(config({ i2cBus: 3 }), deps());
    expect(check(checks, "I2C")).toMatchObject({ status: "fail", advice: expect.stringMatching(/raspi-config nonint do_i2c 0/) });
    expect(check(checks, "TMP102")).toMatchObject({ status: "fail", detail: expect.stringMatching(/^not checked: no I2C bus 3/) });
  });

  it("an ADS1115 at 0x48 is refused by the identity check, its configuration never written", async () => {
    const ads = new FakeTmp102Bus(0x48);
    ads.config = [0x85, 0x83]; // ADS1115 power-up configuration
    const c = check(await runDoctor(config(), deps({ loadI2c: async () => async () => ads })), "TMP102");
    expect(c).toMatchObject({ status: "fail", detail: "the chip at 0x48 on i2c-1 is not a TMP102 (configuration reads 85 83)", advice: expect.stringMatching(/--i2c-address/) });
    expect(ads.transactions.some((t) => t.startsWith("write"))).toBe(false);
  });

  it("nothing at the address fails with the wiring advice; an unloadable i2c-bus with the rebuild line", async () => {
    const empty = check(await runDoctor(config({ i2cAddress: 0x49 }), deps()), "TMP102");
    expect(empty).toMatchObject({ status: "fail", detail: expect.stringMatching(/nothing answers at 0x49 on i2c-1 \(EREMOTEIO/), advice: expect.stringMatching(/i2cdetect -y 1/) });
    const denied = new FakeTmp102Bus(0x48);
    denied.failNext.push(errno("EACCES", "Permission denied"));
    expect(check(await runDoctor(config(), deps({ loadI2c: async () => async () => denied })), "TMP102").advice).toMatch(/usermod -aG i2c/);
    const abi = check(await runDoctor(config(), deps({ loadI2c: async () => { throw new Error("was compiled against a different Node.js version"); } })), "TMP102");
    expect(abi).toMatchObject({ status: "fail", advice: expect.stringMatching(/npm rebuild i2c-bus/) });
  });

  it("the simulated sensor needs no I2C; no GPIO chip is a warning (the LED is optional)", async () => {
    const checks = await runDoctor(config({ sensor: "simulated", simulate: true }), deps({ devRoot: join(dir, "no-dev"), gpioRoot: join(dir, "no-gpio") }));
    expect(check(checks, "I2C")).toMatchObject({ status: "ok", detail: "not used (--sensor simulated)" });
    expect(check(checks, "TMP102").status).toBe("ok");
    expect(check(checks, "GPIO")).toMatchObject({ status: "warn", advice: expect.stringMatching(/--no-led/) });
  });

  it("a state dir that cannot be written fails; one with little space left warns or fails by how little", async () => {
    const file = join(dir, "a-file");
    writeFileSync(file, "");
    expect(check(await runDoctor(config({ stateDir: join(file, "state") }), deps()), "State dir")).toMatchObject({ status: "fail", detail: expect.stringMatching(/not writable: .*ENOTDIR/) });
    expect(check(await runDoctor(config(), deps({ freeBytes: () => 20 * 1024 * 1024 })), "State dir").status).toBe("warn");
    expect(check(await runDoctor(config(), deps({ freeBytes: () => 200 * 1024 })), "State dir")).toMatchObject({ status: "fail", advice: expect.stringMatching(/journalctl --vacuum-size/) });
  });

  it("a clock that never synchronised fails; one minutes off the endpoint's Date warns", async () => {
    const stale = check(await runDoctor(config(), deps({ now: () => Date.UTC(2023, 0, 1) })), "Clock");
    expect(stale).toMatchObject({ status: "fail", advice: expect.stringMatching(/timedatectl set-ntp true/) });
    dateOffsetMs = -120_000; // the endpoint is two minutes behind us: we are two minutes ahead
    try {
      const skew = check(await runDoctor(config(), deps()), "Clock");
      expect(skew).toMatchObject({ status: "warn", detail: expect.stringMatching(/^\+1(19|20|21) s against the endpoint's clock$/) });
    } finally {
      dateOffsetMs = 0;
    }
  });

  it("the endpoint: nothing listening, a name that does not resolve, and a web server that is not one each fail with a cause", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", () => r()));
    const port = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const refused = await runDoctor(config({ endpoint: `http://127.0.0.1:${port}` }), deps());
    // TCP is its own step, before HTTP: "nothing listens" is said there, once.
    expect(check(refused, "TCP")).toMatchObject({ status: "fail", detail: `127.0.0.1 port ${port}: ECONNREFUSED`, advice: expect.stringMatching(/nothing listens on 127\.0\.0\.1:\d+/) });
    expect(check(refused, "Endpoint")).toMatchObject({ status: "warn", detail: "not checked: no TCP connection (see TCP)" });
    expect(check(refused, "Token")).toMatchObject({ status: "warn", detail: "not checked: endpoint unreachable" });
    const dns = await runDoctor(config({ endpoint: "http://iot.invalid:8787" }), deps({ resolve: async () => { throw errno("ENOTFOUND", "getaddrinfo ENOTFOUND iot.invalid"); } }));
    expect(check(dns, "Endpoint")).toMatchObject({ status: "fail", detail: "http://iot.invalid:8787: DNS cannot resolve iot.invalid (ENOTFOUND)" });
    expect(check(dns, "TCP")).toMatchObject({ status: "warn", detail: "not tried: iot.invalid does not resolve (see Endpoint)" });
    const filtered = await runDoctor(config(), deps({ connectTcp: async () => { throw errno("ETIMEDOUT", "connect timed out"); } }));
    expect(check(filtered, "TCP")).toMatchObject({ status: "fail", detail: expect.stringMatching(/port \d+: no answer \(timed out\)$/), advice: expect.stringMatching(/firewall/) });
    const html = await runDoctor(config({ endpoint: `${endpoint}/html` }), deps());
    expect(check(html, "Endpoint")).toMatchObject({ status: "fail", detail: expect.stringMatching(/answered 200 an HTML page: not an IoT endpoint/) });
  });

  it("the OS and architecture lead; not Linux warns that only the simulated sensor runs there", async () => {
    expect((await runDoctor(config(), deps()))[0]).toMatchObject({ name: "System", status: "ok" });
    const mac = check(await runDoctor(config(), deps({ system: { platform: "darwin", arch: "arm64", kernel: "24.1.0", os: null, model: null } })), "System");
    expect(mac).toMatchObject({ status: "warn", detail: "darwin, kernel 24.1.0, arm64", advice: expect.stringMatching(/only --sensor simulated/) });
  });

  it("a clock that is not NTP-synchronised warns with the set-ntp line; where timedatectl cannot say, only the year and skew count", async () => {
    const drifting = check(await runDoctor(config(), deps({ ntpSynchronized: async () => false })), "Clock");
    expect(drifting).toMatchObject({ status: "warn", detail: expect.stringMatching(/^not NTP-synchronised \(timedatectl: NTPSynchronized=no\); [+-]?\d+ s against the endpoint's clock$/), advice: expect.stringMatching(/timedatectl set-ntp true/) });
    expect(check(await runDoctor(config(), deps({ ntpSynchronized: async () => null })), "Clock").status).toBe("ok");
  });

  it("GPIO12 that cannot really be exported warns: held by an overlay (EBUSY), or the line never appears; one already exported is fine", async () => {
    const busy = check(await runDoctor(config(), deps({ exportGpio: async () => { throw errno("EBUSY", "Device or resource busy"); } })), "GPIO");
    expect(busy).toMatchObject({ status: "warn", detail: expect.stringMatching(/cannot be exported: the kernel says it is in use/), advice: expect.stringMatching(/config\.txt.*--led-gpio/) });
    // The real export on fake sysfs trees: a plain file takes the write but no gpio524 appears, as when a driver refuses quietly.
    const silent = check(await runDoctor(config(), deps({ exportGpio: undefined })), "GPIO");
    expect(silent).toMatchObject({ status: "warn", detail: expect.stringMatching(/export of 524 was accepted but .*gpio524 did not appear/) });
    const exported = join(dir, "gpio-exported");
    mkdirSync(join(exported, "gpiochip512"), { recursive: true });
    mkdirSync(join(exported, "gpio524"));
    writeFileSync(join(exported, "export"), "");
    writeFileSync(join(exported, "gpiochip512", "label"), "pinctrl-bcm2835\n");
    writeFileSync(join(exported, "gpiochip512", "base"), "512\n");
    const already = check(await runDoctor(config(), deps({ gpioRoot: exported, exportGpio: undefined })), "GPIO");
    expect(already).toMatchObject({ status: "ok", detail: expect.stringMatching(/already exported \(the running agent\?\)$/) });
  });

  it("on a systemd host the unit's state is the last line: active ok, failed fails with the journalctl line, inactive warns with enable --now", async () => {
    const unit = async (state: string) => (await runDoctor(config(), deps({ unitState: async () => state }))).at(-1)!;
    expect(await unit("active")).toMatchObject({ name: "Unit", status: "ok", detail: "iot-agent.service is active" });
    expect(await unit("failed")).toMatchObject({ name: "Unit", status: "fail", advice: expect.stringMatching(/journalctl -u iot-agent/) });
    expect(await unit("inactive")).toMatchObject({ name: "Unit", status: "warn", advice: expect.stringMatching(/systemctl enable --now iot-agent/) });
    expect((await runDoctor(config(), deps())).some((c) => c.name === "Unit")).toBe(false); // not a systemd host: no line
  });

  it("the token: missing fails with the provision line, refused fails with the rotate line", async () => {
    const missing = check(await runDoctor(config({ token: undefined }), deps()), "Token");
    expect(missing).toMatchObject({ status: "fail", detail: "no device token (IOT_TOKEN)", advice: expect.stringMatching(/provision --endpoint .* --id pi-1/) });
    const wrong = check(await runDoctor(config({ token: "pi-1.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB" }), deps()), "Token");
    expect(wrong).toMatchObject({ status: "fail", detail: "refused (HTTP 401 unauthorized: unknown device token)", advice: expect.stringMatching(/rotate --id pi-1/) });
  });

  it("npm run device -- doctor: exit 0 when ready, 1 on any failure", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number; stdout: string }>((done) =>
        execFile(process.execPath, ["--disable-warning=ExperimentalWarning", join(ROOT, "device/cli.ts"), "doctor", ...args], { timeout: 15_000 }, (err, stdout) =>
          done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout }),
        ),
      );
    const common = ["--endpoint", endpoint, "--sensor", "simulated", "--no-led", "--state-dir", join(dir, "cli-state")];
    const ready = await run([...common, "--token", TOKEN]);
    expect(ready.stdout.trim().split("\n").at(-1)).toBe("Ready.");
    expect(ready.code).toBe(0);
    const refused = await run([...common, "--token", "pi-1.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"]);
    expect(refused.stdout).toMatch(/^FAIL  Token +refused \(HTTP 401/m);
    expect(refused.code).toBe(1);
  });
});
