import { describe, expect, it } from "vitest";
import { ConfigError, helpText, loadConfig, OPTIONS } from "../../../device/config.ts";
import { EndpointClient, EndpointError } from "../../../device/http.ts";
import { backoffDelay } from "../../../device/backoff.ts";

const base = { hostname: () => "raspberrypi", detectIp: () => "192.168.1.19" };
const load = (argv: string[], env: Record<string, string> = {}, file?: Record<string, unknown>) =>
  loadConfig({
    ...base,
    argv,
    env,
    readFile: () => {
      if (!file) throw new Error("no file");
      return JSON.stringify(file);
    },
  });

describe("configuration loader", () => {
  it("defaults: the hostname as id, the LAN address, F, 1 s, simulated off, LED on, TMP102 at 0x48 on bus 1", () => {
    const { command, config } = load([]);
    expect(command).toBe("run");
    expect(config).toMatchObject({
      endpoint: "http://localhost:8787",
      id: "raspberrypi",
      ip: "192.168.1.19",
      scale: "F",
      intervalMs: 1000,
      simulate: false,
      led: true,
      ledGpio: 12,
      i2cBus: 1,
      i2cAddress: 0x48,
      tmp102Rate: 4,
      outboxMax: 1_000_000,
    });
    expect(config.stateDir).toMatch(/device\/\.state\/raspberrypi$/);
  });

  it("the outbox: memory first by default (30 s, 300 readings), strict by flag or IOT_OUTBOX, the spill bound by IOT_SPILL_MS; nonsense refused", () => {
    expect(load([]).config).toMatchObject({ outbox: "memory", spillMs: 30_000, spillMax: 300 });
    expect(load(["--outbox", "strict"]).config.outbox).toBe("strict");
    expect(load([], { IOT_OUTBOX: "strict", IOT_SPILL_MS: "10000", IOT_SPILL_MAX: "50" }).config).toMatchObject({ outbox: "strict", spillMs: 10_000, spillMax: 50 });
    expect(() => load(["--outbox", "sometimes"])).toThrow(/outbox: memory or strict/);
    expect(() => load(["--spill-ms", "-1"])).toThrow(ConfigError);
  });

  it("under systemd (INVOCATION_ID set) leaves out the per-reading line unless asked; interactive runs keep it", () => {
    expect(load([]).config.quiet).toBe(false);
    expect(load([], { INVOCATION_ID: "0b1c2d3e" }).config.quiet).toBe(true);
    expect(load([], { INVOCATION_ID: "0b1c2d3e", IOT_QUIET: "false" }).config.quiet).toBe(false);
    expect(load(["--summary-ms", "60000"]).config.summaryMs).toBe(60_000);
  });

  it("flags win over the environment, which wins over the file, which wins over defaults", () => {
    const file = { endpoint: "http://file:1", id: "from-file", intervalMs: 3000, scale: "C", i2cAddress: 0x49 };
    const env = { IOT_CONFIG: "/etc/iot.json", IOT_ID: "from-env", IOT_INTERVAL_MS: "2000" };
    const { config } = load(["--id", "from-flag", "--no-led", "--simulate"], env, file);
    expect(config).toMatchObject({
      id: "from-flag",
      intervalMs: 2000,
      endpoint: "http://file:1",
      scale: "C",
      i2cAddress: 0x49,
      led: false,
      simulate: true,
    });
  });

  it("reads booleans and hex from the environment", () => {
    const { config } = load([], { IOT_SIMULATE: "yes", IOT_LED: "0", IOT_I2C_ADDRESS: "0x4a", IOT_TMP102_RATE: "0.25" });
    expect(config).toMatchObject({ simulate: true, led: false, i2cAddress: 0x4a, tmp102Rate: 0.25 });
  });

  it("--sensor chooses the source: tmp102 by default, simulated with --simulate or --sensor simulated; a contradiction is refused", () => {
    expect(load([]).config).toMatchObject({ sensor: "tmp102", simulate: false });
    expect(load(["--simulate"]).config).toMatchObject({ sensor: "simulated", simulate: true });
    expect(load(["--sensor", "simulated"]).config).toMatchObject({ sensor: "simulated", simulate: true });
    expect(load([], { IOT_SENSOR: "simulated" }).config.sensor).toBe("simulated");
    expect(load([], {}, { sensor: "tmp102" }).config).toMatchObject({ sensor: "tmp102", simulate: false });
    expect(() => load(["--sensor", "tmp102", "--simulate"])).toThrow(/--simulate \(IOT_SIMULATE\) asks for the simulated sensor but --sensor \(IOT_SENSOR\) says "tmp102"/);
    expect(() => load(["--sensor", "tmp102"], { IOT_SIMULATE: "true" })).toThrow(ConfigError);
    expect(() => load(["--sensor", "ds18b20"])).toThrow(/sensor/);
  });

  it("derives the id from the token, and refuses a token for another device", () => {
    const token = "pi-kitchen.abcdefghijklmnop0123";
    expect(load(["--token", token]).config).toMatchObject({ id: "pi-kitchen", token });
    expect(() => load(["--token", token, "--id", "pi-garage"])).toThrow(/token is for device "pi-kitchen"/);
  });

  it("refuses what it cannot use, saying what and why", () => {
    expect(() => load(["--interval-ms", "5"])).toThrow(ConfigError);
    expect(() => load(["--interval-ms", "5"])).toThrow(/intervalMs/);
    expect(() => load(["--scale", "K"])).toThrow(/scale/);
    expect(() => load(["--endpoint", "ftp://x"])).toThrow(/endpoint/);
    expect(() => load(["--id", "../etc"])).toThrow(/id/);
    expect(() => load(["--tmp102-rate", "2"])).toThrow(/tmp102Rate/);
    expect(() => load(["--bogus"])).toThrow(/bogus/);
    expect(() => load(["reboot"])).toThrow(/unknown command "reboot"/);
    expect(() => load([], { IOT_CONFIG: "/x.json" }, { intervalMs: 1000, colour: "red" })).toThrow(/unknown setting "colour"/);
  });

  it("knows the one-shot commands and prints every option in --help", () => {
    expect(load(["config"]).command).toBe("config");
    expect(load(["post", "--endpoint", "http://h:1"]).command).toBe("post");
    expect(load(["--help"]).help).toBe(true);
    const help = helpText();
    for (const o of OPTIONS) {
      expect(help).toContain(o.flag);
      expect(help).toContain(o.env);
    }
  });
});

describe("REST client", () => {
  function client(token: string | undefined, answer: (url: URL, init: RequestInit) => Response) {
    const calls: { url: URL; init: RequestInit }[] = [];
    const c = new EndpointClient({
      endpoint: new URL("http://iot.test:8787/"),
      id: "dev-1",
      ip: "192.168.1.19",
      token,
      fetch: (async (url: URL, init: RequestInit) => {
        calls.push({ url, init });
        return answer(url, init);
      }) as typeof fetch,
    });
    return { c, calls };
  }
  const configAnswer = {
    message: "IoT Configuration",
    iotip: "192.168.1.19",
    ts: 1,
    id: "dev-1",
    config: { scale: "C", intervalMs: 1000, heartbeatMs: 5000, socketPath: "/parties/device/dev-1", fw: "1.0.0" },
  };

  it("sends x-iot-ip and x-iot-id, and Authorization: Bearer only when a token is configured", async () => {
    const without = client(undefined, () => Response.json(configAnswer));
    expect((await without.c.config()).config.scale).toBe("C");
    const headers = without.calls[0]!.init.headers as Record<string, string>;
    expect(headers).toMatchObject({ "x-iot-ip": "192.168.1.19", "x-iot-id": "dev-1" });
    expect(headers.authorization).toBeUndefined();
    expect(String(without.calls[0]!.url)).toBe("http://iot.test:8787/iot/config");

    const withToken = client("dev-1.abcdefghijklmnop", () => Response.json({ ticket: "t.s", expiresAt: 5, path: "/parties/device/dev-1" }));
    expect(await withToken.c.ticket()).toEqual({ ticket: "t.s", expiresAt: 5, path: "/parties/device/dev-1" });
    const init = withToken.calls[0]!.init;
    expect((init.headers as Record<string, string>).authorization).toBe("Bearer dev-1.abcdefghijklmnop");
    expect(JSON.parse(String(init.body))).toEqual({ device: "dev-1", role: "device" });
  });

  it("turns error answers and answers that break the protocol into EndpointError", async () => {
    const refused = client(undefined, () => Response.json({ error: { code: "bad_token", message: "no such token" } }, { status: 401 }));
    await expect(refused.c.config()).rejects.toMatchObject({ status: 401, code: "bad_token" });
    const wrong = client(undefined, () => Response.json({ message: "IoT Configuration" }));
    await expect(wrong.c.config()).rejects.toBeInstanceOf(EndpointError);
    const html = client(undefined, () => new Response("<html>502</html>", { status: 502 }));
    await expect(html.c.config()).rejects.toMatchObject({ status: 502, code: "not_json" });
  });

  it("builds the socket URL from the endpoint's scheme and path", () => {
    const c = new EndpointClient({ endpoint: new URL("https://example.com/edge/"), id: "d", ip: "10.0.0.2" });
    expect(String(c.socketUrl("/parties/device/d"))).toBe("wss://example.com/edge/parties/device/d");
  });
});

describe("backoff", () => {
  it("grows exponentially, is capped, and is jittered within [ceiling/2, ceiling]", () => {
    const b = { baseMs: 1000, maxMs: 15_000, factor: 2 };
    expect(backoffDelay(0, b)).toBe(0);
    expect([1, 2, 3, 4, 5, 10].map((a) => backoffDelay(a, b, () => 1))).toEqual([1000, 2000, 4000, 8000, 15_000, 15_000]);
    expect([1, 2, 3, 4, 5, 10].map((a) => backoffDelay(a, b, () => 0))).toEqual([500, 1000, 2000, 4000, 7500, 7500]);
  });
});
