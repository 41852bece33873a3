/**
 * `doctor`: is this Pi ready to run the agent? Each check is one line, ok / warn /
 * fail, and every warn or fail says what to do about it in one line. Exit status 1
 * when anything failed (`npm run device -- doctor`, or `node iot-agent.mjs doctor`).
 *
 * Checks, in order: the OS and architecture, Node, the I2C bus (present, permitted),
 * a TMP102 at the address (the same identity check the driver makes; nothing is
 * written to the chip), the GPIO chip for the LED and whether the LED's line can
 * really be exported, the state directory (writable, free space), the clock (NTP
 * synchronised, not years off, its skew against the endpoint's Date header), a TCP
 * connection to the endpoint (after DNS), the endpoint itself (TLS, HTTP), the device
 * token (a GET /iot/config that needs it) and, on a systemd host, the unit's state.
 *
 * Everything that touches hardware or the network comes through DoctorDeps, so the
 * tests drive it with fake /dev and /sys trees, the byte-exact fake bus and a small
 * local HTTP server.
 */
import { execFile } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { lookup } from "node:dns/promises";
import { connect, isIP } from "node:net";
import { release } from "node:os";
import { join } from "node:path";
import { ApiError, IotConfigResponse } from "../party/protocol.ts";
import type { AgentConfig } from "./config.ts";
import { findHeaderChip, SYSFS_GPIO_ROOT } from "./gpio.ts";
import { EndpointClient } from "./http.ts";
import { errorText, sleep } from "./log.ts";
import { freeBytes } from "./outbox.ts";
import { loadI2cBus } from "./sensors/index.ts";
import { CONFIG_REG, TEMP_REG, decodeTemperature, looksLikeTmp102, type OpenBus } from "./sensors/tmp102.ts";

export type Status = "ok" | "warn" | "fail";
export type Check = { name: string; status: Status; detail: string; advice?: string };

export type DoctorDeps = {
  /** Where the I2C device nodes are (default /dev). */
  devRoot?: string;
  gpioRoot?: string;
  loadI2c?: () => Promise<OpenBus>;
  now?: () => number;
  nodeVersion?: string;
  fetch?: typeof fetch;
  resolve?: (host: string) => Promise<string>;
  freeBytes?: (dir: string) => number | null;
  timeoutMs?: number;
  /** The OS as this process sees it (default: process.platform/arch, os.release(), /etc/os-release, the Pi's model). */
  system?: SystemInfo;
  /** timedatectl's NTPSynchronized: true, false, or null when it cannot say (no systemd-timedated). */
  ntpSynchronized?: () => Promise<boolean | null>;
  /** Export GPIO line `line` under `root` and release it again; throws (with the kernel's errno) when it cannot. */
  exportGpio?: (root: string, line: number) => Promise<"exported" | "already exported">;
  /** Open a TCP connection to host:port and close it; throws when it cannot. */
  connectTcp?: (host: string, port: number, timeoutMs: number) => Promise<void>;
  /** `systemctl is-active iot-agent` (active, inactive, failed, …), or null on a host without systemd. */
  unitState?: () => Promise<string | null>;
};

export type SystemInfo = { platform: string; arch: string; kernel: string; os: string | null; model: string | null };

/** Oldest Node the agent runs on: node:sqlite without a flag. */
const MIN_NODE: [number, number] = [22, 13];
/** A clock before this is one that never synchronised (a Pi Zero has no RTC). */
const MIN_YEAR = 2025;
/** Clock skew past this is worth a warning (the Date header has 1 s resolution). */
const SKEW_WARN_MS = 10_000;
/** Free space below which the outbox cannot grow for long (it may take ~26 MB at its default bound). */
const FREE_WARN = 64 * 1024 * 1024;
const FREE_FAIL = 1024 * 1024;

export async function runDoctor(config: AgentConfig, deps: DoctorDeps = {}): Promise<Check[]> {
  const now = deps.now ?? Date.now;
  const endpoint = await probeEndpoint(config, deps, now);
  const unit = await checkUnit(deps.unitState ?? systemctlIsActive);
  return [
    checkSystem(deps.system ?? systemInfo()),
    checkNode(deps.nodeVersion ?? process.versions.node),
    checkI2cBus(config, deps.devRoot ?? "/dev"),
    await checkTmp102(config, deps, deps.devRoot ?? "/dev"),
    await checkGpio(config, deps.gpioRoot ?? SYSFS_GPIO_ROOT, deps.exportGpio ?? exportGpio),
    checkStateDir(config.stateDir, deps.freeBytes ?? freeBytes),
    checkClock(now(), endpoint.skewMs, await (deps.ntpSynchronized ?? ntpSynchronized)()),
    endpoint.tcp,
    endpoint.reach,
    endpoint.token,
    // Only on a systemd host: elsewhere there is no unit to ask about.
    ...(unit ? [unit] : []),
  ];
}

function systemInfo(): SystemInfo {
  const read = (path: string) => {
    try {
      return readFileSync(path, "utf8");
    } catch {
      // Not Linux, or not a Pi: the line says less, nothing fails.
      return null;
    }
  };
  const os = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(read("/etc/os-release") ?? "")?.[1] ?? null;
  // The device tree's model string is NUL-terminated ("Raspberry Pi Zero 2 W Rev 1.0\0").
  const model = read("/proc/device-tree/model")?.replace(/\0+$/, "").trim() || null;
  return { platform: process.platform, arch: process.arch, kernel: release(), os, model };
}

function checkSystem(s: SystemInfo): Check {
  const detail = `${s.os ?? s.platform}, kernel ${s.kernel}, ${s.arch}${s.model ? ` (${s.model})` : ""}`;
  if (s.platform !== "linux") {
    return { name: "System", status: "warn", detail, advice: "I2C, GPIO and the systemd unit need Linux: here only --sensor simulated runs (a Pi: 64-bit Raspberry Pi OS Lite)" };
  }
  if (s.arch !== "arm64" && s.arch !== "arm" && s.arch !== "x64") {
    return { name: "System", status: "warn", detail: `${detail}: not an architecture the bundle is tested on`, advice: "use 64-bit Raspberry Pi OS Lite (arm64) on the Pi" };
  }
  return { name: "System", status: "ok", detail };
}

/** `  ok    Node        22.23.3` lines, each warn/fail followed by its advice. */
export function formatChecks(checks: readonly Check[]): string {
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${c.status.toUpperCase().padEnd(5)} ${c.name.padEnd(10)} ${c.detail}`);
    if (c.status !== "ok" && c.advice) lines.push(`${"".padEnd(16)}→ ${c.advice}`);
  }
  const failed = checks.filter((c) => c.status === "fail").length;
  const warned = checks.filter((c) => c.status === "warn").length;
  lines.push(failed ? `Not ready: ${failed} failed, ${warned} warnings.` : warned ? `Ready, with ${warned} warnings.` : "Ready.");
  return lines.join("\n");
}

function checkNode(version: string): Check {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  const ok = major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
  return ok
    ? { name: "Node", status: "ok", detail: version }
    : { name: "Node", status: "fail", detail: `${version}: the agent needs ${MIN_NODE.join(".")} or newer (node:sqlite)`, advice: "install Node 22 (see docs/device.md, 'Set up the Pi') and link it: sudo ln -sf \"$(command -v node)\" /opt/iot-agent/node" };
}

function checkI2cBus(config: AgentConfig, devRoot: string): Check {
  if (config.sensor === "simulated") return { name: "I2C", status: "ok", detail: "not used (--sensor simulated)" };
  const node = join(devRoot, `i2c-${config.i2cBus}`);
  if (!existsSync(node)) {
    return { name: "I2C", status: "fail", detail: `no ${node}: I2C is not enabled`, advice: "sudo raspi-config nonint do_i2c 0 && sudo reboot (or dtparam=i2c_arm=on in /boot/firmware/config.txt)" };
  }
  try {
    accessSync(node, constants.R_OK | constants.W_OK);
  } catch {
    return { name: "I2C", status: "fail", detail: `${node} exists but this user may not use it`, advice: "add the user to the i2c group: sudo usermod -aG i2c $USER (the unit's iot user has it via SupplementaryGroups)" };
  }
  return { name: "I2C", status: "ok", detail: `${node} present and permitted` };
}

async function checkTmp102(config: AgentConfig, deps: DoctorDeps, devRoot: string): Promise<Check> {
  const name = "TMP102";
  if (config.sensor === "simulated") return { name, status: "ok", detail: "not used (--sensor simulated)" };
  const where = `0x${config.i2cAddress.toString(16)} on i2c-${config.i2cBus}`;
  let openBus: OpenBus;
  try {
    openBus = await (deps.loadI2c ?? loadI2cBus)();
  } catch (err) {
    return { name, status: "fail", detail: `i2c-bus cannot load under Node ${process.versions.node}: ${errorText(err).split("\n")[0]}`, advice: "cd /opt/iot-agent && sudo npm rebuild i2c-bus (after every Node major upgrade)" };
  }
  if (!existsSync(join(devRoot, `i2c-${config.i2cBus}`))) {
    return { name, status: "fail", detail: `not checked: no I2C bus ${config.i2cBus} (i2c-bus loads)`, advice: "enable I2C first (see the I2C line)" };
  }
  let bus: Awaited<ReturnType<OpenBus>> | undefined;
  try {
    bus = await openBus(config.i2cBus);
    // Read only: the identity check comes before anything could be written to a chip that is not a TMP102.
    const cfg = await readRegister(bus, config.i2cAddress, CONFIG_REG);
    if (!looksLikeTmp102(cfg)) {
      return { name, status: "fail", detail: `the chip at ${where} is not a TMP102 (configuration reads ${hex(cfg)})`, advice: "check the part and its address pin (ADD0 → 0x48-0x4B), and set --i2c-address" };
    }
    const [msb, lsb] = await readRegister(bus, config.i2cAddress, TEMP_REG);
    return { name, status: "ok", detail: `answers at ${where}: ${decodeTemperature(msb, lsb).toFixed(2)} °C` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      name,
      status: "fail",
      detail: `nothing answers at ${where} (${errorText(err)})`,
      advice: code === "EACCES" ? "add the user to the i2c group: sudo usermod -aG i2c $USER" : `check the wiring (3.3 V, GND, SDA pin 3, SCL pin 5) and the address: i2cdetect -y ${config.i2cBus}`,
    };
  } finally {
    await bus?.close().catch(() => {
      // Closing a bus that failed can fail too; doctor only read from it.
    });
  }
}

async function checkGpio(config: AgentConfig, root: string, tryExport: NonNullable<DoctorDeps["exportGpio"]>): Promise<Check> {
  if (!config.led) return { name: "GPIO", status: "ok", detail: "LED off (--no-led)" };
  const chip = await findHeaderChip(root);
  if (!chip) return { name: "GPIO", status: "warn", detail: `no header gpiochip under ${root}: the heartbeat LED stays off`, advice: "on a Pi, a kernel with sysfs GPIO is needed; elsewhere run with --no-led" };
  const line = `GPIO${config.ledGpio} is sysfs ${chip.base + config.ledGpio} (${chip.chip}, ${chip.label}, base ${chip.base})`;
  try {
    accessSync(join(root, "export"), constants.W_OK);
  } catch {
    return { name: "GPIO", status: "warn", detail: `${line}, but this user may not export it: no LED`, advice: "add the user to the gpio group: sudo usermod -aG gpio $USER" };
  }
  // Permission to write `export` is not the line being free: a dtoverlay or another program may hold it.
  const sysfs = chip.base + config.ledGpio;
  try {
    const how = await tryExport(root, sysfs);
    return { name: "GPIO", status: "ok", detail: `${line}; ${how === "exported" ? "exported and released again" : "already exported (the running agent?)"}` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "EBUSY"
        ? "the kernel says it is in use (a dtoverlay, or another program, holds the line)"
        : code === "EINVAL"
          ? "the kernel refuses the number (not a line of this chip)"
          : code === "EACCES" || code === "EPERM"
            ? "permission denied"
            : errorText(err);
    return {
      name: "GPIO",
      status: "warn",
      detail: `${line}, but it cannot be exported: ${why}: no LED`,
      advice:
        code === "EBUSY"
          ? `free GPIO${config.ledGpio} (check /boot/firmware/config.txt for an overlay on it), or wire the LED elsewhere and set --led-gpio`
          : code === "EACCES" || code === "EPERM"
            ? "add the user to the gpio group: sudo usermod -aG gpio $USER"
            : "run with --no-led, or check --led-gpio",
    };
  }
}

/** Write the line to `export`, wait for its directory (udev gives the gpio group access a moment later), then `unexport` it. */
async function exportGpio(root: string, line: number): Promise<"exported" | "already exported"> {
  const dir = join(root, `gpio${line}`);
  if (existsSync(dir)) return "already exported";
  writeFileSync(join(root, "export"), String(line));
  for (let i = 0; i < 20 && !existsSync(dir); i++) await sleep(50);
  if (!existsSync(dir)) throw new Error(`export of ${line} was accepted but ${dir} did not appear`);
  writeFileSync(join(root, "unexport"), String(line));
  return "exported";
}

function checkStateDir(dir: string, free: (dir: string) => number | null): Check {
  const name = "State dir";
  try {
    mkdirSync(dir, { recursive: true });
    const probe = join(dir, `.doctor-${process.pid}`);
    writeFileSync(probe, "ok");
    rmSync(probe);
  } catch (err) {
    const full = (err as NodeJS.ErrnoException).code === "ENOSPC";
    return {
      name,
      status: "fail",
      detail: `${dir} is not writable: ${errorText(err)}`,
      advice: full ? "free space on that file system (journalctl --vacuum-size=50M, old logs)" : "the unit makes /var/lib/iot-agent itself (StateDirectory=); elsewhere: --state-dir a directory this user owns",
    };
  }
  const bytes = free(dir);
  if (bytes === null) return { name, status: "ok", detail: `${dir} writable (free space unknown)` };
  const mb = `${(bytes / 1024 / 1024).toFixed(1)} MB free`;
  if (bytes < FREE_FAIL) return { name, status: "fail", detail: `${dir}: ${mb}; readings would be held in memory only`, advice: "free space: journalctl --vacuum-size=50M, remove old logs and packages (sudo apt clean)" };
  if (bytes < FREE_WARN) return { name, status: "warn", detail: `${dir}: ${mb}; a long outage's outbox (up to ~26 MB) may not fit`, advice: "free space (journalctl --vacuum-size=50M, sudo apt clean), or lower --outbox-max" };
  return { name, status: "ok", detail: `${dir} writable, ${mb}` };
}

function checkClock(now: number, skewMs: number | null, ntp: boolean | null): Check {
  const year = new Date(now).getUTCFullYear();
  if (year < MIN_YEAR) {
    return { name: "Clock", status: "fail", detail: `says ${new Date(now).toISOString()}: never synchronised (a Pi has no battery clock)`, advice: "let it reach an NTP server: sudo timedatectl set-ntp true; timedatectl status" };
  }
  // Right now but not synchronised drifts, and after a reboot without network starts from the last saved time.
  if (ntp === false) {
    const against = skewMs === null ? "" : `; ${skewMs > 0 ? "+" : ""}${(skewMs / 1000).toFixed(0)} s against the endpoint's clock`;
    return { name: "Clock", status: "warn", detail: `not NTP-synchronised (timedatectl: NTPSynchronized=no)${against}`, advice: "sudo timedatectl set-ntp true, and let the Pi reach an NTP server (UDP 123); timedatectl status should say 'System clock synchronized: yes'" };
  }
  if (skewMs === null) return { name: "Clock", status: "ok", detail: `${new Date(now).toISOString()} (not compared: the endpoint sent no Date)` };
  const s = (skewMs / 1000).toFixed(0);
  if (Math.abs(skewMs) > SKEW_WARN_MS) {
    return { name: "Clock", status: "warn", detail: `${skewMs > 0 ? "+" : ""}${s} s against the endpoint's clock`, advice: "sudo timedatectl set-ntp true; timedatectl status should say 'System clock synchronized: yes'" };
  }
  return { name: "Clock", status: "ok", detail: `within ${Math.max(1, Math.abs(Number(s)))} s of the endpoint's clock` };
}

type EndpointProbe = { tcp: Check; reach: Check; token: Check; skewMs: number | null };

/** DNS, then one GET /iot/config with the token: reachability, TLS, the Date header, and the token's fate. */
async function probeEndpoint(config: AgentConfig, deps: DoctorDeps, now: () => number): Promise<EndpointProbe> {
  // Under the endpoint's path prefix, as the agent's own calls are (http.ts).
  const base = new URL(config.endpoint);
  const url = new URL(`${base.pathname.replace(/\/+$/, "")}/iot/config`, base);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const tokenMissing: Check = { name: "Token", status: "fail", detail: "no device token (IOT_TOKEN)", advice: `an operator runs: npm run device -- provision --endpoint ${config.endpoint} --id ${config.id} --admin-token <operator token>; then set IOT_TOKEN in /etc/iot-agent.env` };
  const untested = (why: string): Check => (config.token ? { name: "Token", status: "warn", detail: `not checked: ${why}` } : tokenMissing);
  if (!isIP(host)) {
    try {
      await (deps.resolve ?? (async (h: string) => (await lookup(h)).address))(host);
    } catch (err) {
      const reach: Check = { name: "Endpoint", status: "fail", detail: `${config.endpoint}: DNS cannot resolve ${host} (${(err as NodeJS.ErrnoException).code ?? errorText(err)})`, advice: "check --endpoint (IOT_ENDPOINT) for typos, and the Pi's network: ping -c1 1.1.1.1; cat /etc/resolv.conf" };
      return { tcp: { name: "TCP", status: "warn", detail: `not tried: ${host} does not resolve (see Endpoint)` }, reach, token: untested("endpoint unreachable"), skewMs: null };
    }
  }
  // TCP on its own first: "nothing listens" or a firewall is told apart from TLS and HTTP trouble.
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const tcpStarted = now();
  try {
    await (deps.connectTcp ?? connectTcp)(host, port, deps.timeoutMs ?? 10_000);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const tcp: Check = {
      name: "TCP",
      status: "fail",
      detail: `${host} port ${port}: ${code === "ETIMEDOUT" ? "no answer (timed out)" : (code ?? errorText(err))}`,
      advice: code === "ECONNREFUSED" ? `nothing listens on ${url.host}: is the endpoint running, and is the port right?` : "a firewall, or the wrong host or port: nc -vz <host> <port> from the Pi",
    };
    return { tcp, reach: { name: "Endpoint", status: "warn", detail: "not checked: no TCP connection (see TCP)" }, token: untested("endpoint unreachable"), skewMs: null };
  }
  const tcp: Check = { name: "TCP", status: "ok", detail: `${host} port ${port} open in ${now() - tcpStarted} ms` };
  const client = new EndpointClient({ endpoint: new URL(config.endpoint), id: config.id, ip: config.ip, token: config.token });
  const sent = now();
  let res: Response;
  let text: string;
  try {
    res = await (deps.fetch ?? fetch)(url, { headers: client.headers(), signal: AbortSignal.timeout(deps.timeoutMs ?? 10_000) });
    text = await res.text();
  } catch (err) {
    const reach: Check = { name: "Endpoint", status: "fail", detail: `${config.endpoint}: ${unreachable(err)}`, advice: reachAdvice(err, url) };
    return { tcp, reach, token: untested("endpoint unreachable"), skewMs: null };
  }
  const received = now();
  const date = Date.parse(res.headers.get("date") ?? "");
  // The Date header is whole seconds, stamped somewhere in the round trip: its middle is our best guess.
  const skewMs = Number.isNaN(date) ? null : Math.round((sent + received) / 2 - (date + 500));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    const reach: Check = { name: "Endpoint", status: "fail", detail: `${url.href} answered ${res.status} ${/^\s*</.test(text) ? "an HTML page" : "something not JSON"}: not an IoT endpoint`, advice: "check --endpoint (IOT_ENDPOINT): scheme, host, port and path prefix" };
    return { tcp, reach, token: untested("not an IoT endpoint"), skewMs };
  }
  const reach: Check = { name: "Endpoint", status: "ok", detail: `${url.origin} answered HTTP ${res.status} in ${received - sent} ms` };
  if (!config.token) return { tcp, reach, token: tokenMissing, skewMs };
  if (res.ok && IotConfigResponse.safeParse(json).success) return { tcp, reach, token: { name: "Token", status: "ok", detail: `accepted for device ${config.id}` }, skewMs };
  const error = ApiError.safeParse(json);
  const why = error.success ? `${error.data.error.code}: ${error.data.error.message}` : text.slice(0, 120);
  const token: Check =
    res.status === 401 || res.status === 403
      ? { name: "Token", status: "fail", detail: `refused (HTTP ${res.status} ${why})`, advice: `the token is wrong, rotated or revoked: an operator runs npm run device -- rotate --id ${config.id} --admin-token <operator token>, then update IOT_TOKEN` }
      : { name: "Token", status: "fail", detail: `not confirmed: GET /iot/config answered HTTP ${res.status} (${why})`, advice: "the endpoint is up but unwell: look at its logs" };
  return { tcp, reach, token, skewMs };
}

function connectTcp(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.setTimeout(timeoutMs, () => socket.destroy(Object.assign(new Error(`connect ${host}:${port} timed out`), { code: "ETIMEDOUT" })));
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", reject);
  });
}

/** Output of a command, or null when it cannot run or says nothing. */
function run(command: string, args: string[]): Promise<string | null> {
  return new Promise((resolve) =>
    // A non-zero exit still has an answer on stdout (`systemctl is-active` exits 3 for "inactive").
    execFile(command, args, { timeout: 5_000 }, (_err, stdout) => resolve(typeof stdout === "string" && stdout.trim() ? stdout.trim() : null)),
  );
}

async function ntpSynchronized(): Promise<boolean | null> {
  const answer = await run("timedatectl", ["show", "-p", "NTPSynchronized", "--value"]);
  return answer === "yes" ? true : answer === "no" ? false : null;
}

/** The unit's state where systemd is PID 1 (it makes /run/systemd/system); null elsewhere. */
async function systemctlIsActive(): Promise<string | null> {
  if (!existsSync("/run/systemd/system")) return null;
  return (await run("systemctl", ["is-active", "iot-agent"])) ?? "unknown";
}

async function checkUnit(state: () => Promise<string | null>): Promise<Check | null> {
  const s = await state();
  if (s === null) return null;
  if (s === "active") return { name: "Unit", status: "ok", detail: "iot-agent.service is active" };
  if (s === "failed") return { name: "Unit", status: "fail", detail: "iot-agent.service has failed", advice: "journalctl -u iot-agent -n 50 says why; then sudo systemctl restart iot-agent" };
  if (s === "activating" || s === "reloading") return { name: "Unit", status: "warn", detail: `iot-agent.service is ${s} (restarting after a crash?)`, advice: "journalctl -u iot-agent -f, and run doctor again in a minute" };
  return { name: "Unit", status: "warn", detail: `iot-agent.service is ${s}`, advice: "sudo systemctl enable --now iot-agent (install it first: docs/device.md, 'Set up the Pi')" };
}

function unreachable(err: unknown): string {
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) return "no answer (timed out)";
  const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
  return cause?.code ? `${cause.code}${cause.message && !cause.message.includes(cause.code) ? ` (${cause.message})` : ""}` : errorText(err);
}

function reachAdvice(err: unknown, url: URL): string {
  const code = (err as { cause?: NodeJS.ErrnoException }).cause?.code ?? "";
  if (code === "ECONNREFUSED") return `nothing listens on ${url.host}: is the endpoint running, and is the port right?`;
  if (/SSL|TLS|CERT|self.signed/i.test(code)) {
    return url.protocol === "https:"
      ? "TLS failed: http:// for an endpoint without TLS, or give Node the CA (NODE_EXTRA_CA_CERTS=/path/ca.pem in /etc/iot-agent.env)"
      : "TLS error on http://: check the scheme and port";
  }
  if (err instanceof Error && err.name === "TimeoutError") return "a firewall, or the wrong host: curl -v the URL from the Pi";
  return "check --endpoint (IOT_ENDPOINT) and the network";
}

async function readRegister(bus: Awaited<ReturnType<OpenBus>>, address: number, register: number): Promise<[number, number]> {
  const buffer = Buffer.alloc(2);
  const { bytesRead } = await bus.readI2cBlock(address, register, 2, buffer);
  if (bytesRead !== 2) throw new Error(`short read of register ${register} (${bytesRead} of 2 bytes)`);
  return [buffer[0]!, buffer[1]!];
}

function hex(bytes: readonly number[]): string {
  return bytes.map((b) => b.toString(16).padStart(2, "0").toUpperCase()).join(" ");
}
