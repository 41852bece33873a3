import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { DesiredState, DeviceMessage, PING, PONG } from "../../../party/protocol.ts";
import { Agent } from "../../../device/agent.ts";
import type { AgentConfig } from "../../../device/config.ts";
import { Outbox } from "../../../device/outbox.ts";
import { chooseSensor, type Sensor } from "../../../device/sensors/index.ts";
import { errno, memoryLogger } from "./fakes.ts";
import { mountSmallDisk } from "./tmpfs.ts";

const dir = mkdtempSync(join(tmpdir(), "iot-agent-"));

/** A stand-in endpoint: /iot/config, /api/tickets, and a room that stores, acks and records frames. */
const frames: DeviceMessage[] = [];
const stored = new Set<number>();
let room: WebSocket | undefined;
/** While set, registration answers 503 (the endpoint not reachable yet, as at a Pi's boot without network). */
let configDown = false;
const http = createServer((req, res) => {
  res.setHeader("content-type", "application/json");
  if (req.url === "/iot/config" && configDown) {
    res.statusCode = 503;
    return res.end(JSON.stringify({ error: { code: "unavailable", message: "not yet" } }));
  }
  if (req.url === "/iot/config") {
    return res.end(JSON.stringify({
      message: "IoT Configuration", iotip: "192.168.1.19", ts: Date.now(), id: "agent-1",
      config: { scale: "F", intervalMs: 100, heartbeatMs: 1000, socketPath: "/parties/device/agent-1", fw: "1.0.0" },
    }));
  }
  if (req.url === "/api/tickets") return res.end(JSON.stringify({ ticket: "t", expiresAt: Date.now() + 60_000, path: "/parties/device/agent-1" }));
  res.statusCode = 404;
  res.end(JSON.stringify({ error: { code: "not_found", message: req.url } }));
});
const wss = new WebSocketServer({ server: http });
wss.on("connection", (ws) => {
  room = ws;
  ws.on("message", (data) => {
    const text = data.toString();
    if (text === PING) return ws.send(PONG);
    const msg = DeviceMessage.parse(JSON.parse(text)); // the agent only ever sends valid frames
    frames.push(msg);
    if (msg.type === "hello") ws.send(JSON.stringify({ type: "ack", seq: msg.oldest - 1 }));
    if (msg.type === "readings") {
      for (const r of msg.readings) stored.add(r.seq);
      let acked = 0;
      while (stored.has(acked + 1)) acked++;
      ws.send(JSON.stringify({ type: "ack", seq: acked }));
    }
  });
});
let endpoint = "";
beforeAll(async () => {
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
  endpoint = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
});
afterAll(async () => {
  for (const c of wss.clients) c.terminate();
  await new Promise((r) => http.close(r));
  rmSync(dir, { recursive: true, force: true });
});

class FlakySensor implements Sensor {
  readonly name = "tmp102";
  errors = 0;
  failing = true;
  async readCelsius() {
    if (!this.failing) return 21.5;
    this.errors++;
    throw errno("EREMOTEIO", "Remote I/O error");
  }
  async close() {}
}

describe("agent", () => {
  it("reports sensor errors, streams once the sensor recovers, applies and answers commands, persists the scale", async () => {
    const config: AgentConfig = {
      endpoint, id: "agent-1", ip: "192.168.1.19", sensor: "tmp102", simulate: false, i2cBus: 1, i2cAddress: 0x48, tmp102Rate: 4,
      tmp102Extended: false, led: false, ledGpio: 12, stateDir: join(dir, "state"), outboxMax: 1000, scale: "F",
      intervalMs: 100, backoffMaxMs: 1000, quiet: false,
    };
    const sensor = new FlakySensor();
    const log = memoryLogger();
    const agent = new Agent(config, { sensor, log });
    await agent.start();
    try {
      // A failing sensor: no readings, but the room hears the error count.
      await expect.poll(() => frames.some((f) => (f.type === "hello" || f.type === "report") && (f.state.sensorErrors ?? 0) > 0), { timeout: 5_000 }).toBe(true);
      expect(frames.some((f) => f.type === "readings")).toBe(false);

      sensor.failing = false;
      await expect.poll(() => stored.size, { timeout: 5_000 }).toBeGreaterThanOrEqual(5);
      expect(log.lines).toContain("Temperature: 70.70F"); // 21.5 °C
      await expect.poll(() => agent.outbox.size, { timeout: 5_000 }).toBeLessThanOrEqual(1);

      room!.send(JSON.stringify({ type: "command", id: "cmd-scale-0001", command: { cmd: "scale", scale: "C" } }));
      room!.send(JSON.stringify({ type: "command", id: "cmd-reboot-001", command: { cmd: "reboot" } }));
      room!.send("not json at all");
      await expect.poll(() => frames.filter((f) => f.type === "result").length, { timeout: 5_000 }).toBe(2);
      const results = frames.filter((f) => f.type === "result");
      expect(results[0]).toMatchObject({ id: "cmd-scale-0001", ok: true, state: { scale: "C", sensor: "tmp102", sensorErrors: sensor.errors } });
      expect(results[1]).toEqual({ type: "result", id: "cmd-reboot-001", ok: false, error: 'unknown command "reboot"' });
      // Its own lines say what it applied (the browser tests read them from the real agent's stdout).
      expect(log.lines).toContain('Command cmd-scale-0001: {"cmd":"scale","scale":"C"} applied');
      expect(log.lines).toContain("Scale set to °C");
      expect(log.lines.filter((l) => l.startsWith("Command "))).toHaveLength(1);
      await expect.poll(() => log.lines.includes("Temperature: 21.50C"), { timeout: 5_000 }).toBe(true);
      expect(log.warnings.some((w) => w.startsWith("Ignoring an invalid frame"))).toBe(true);
    } finally {
      await agent.stop();
    }
    // Seqs went up in order with no gap, and the chosen scale is on disk for the next start.
    expect([...stored].sort((a, b) => a - b)).toEqual(Array.from({ length: stored.size }, (_, i) => i + 1));
    const outbox = new Outbox(join(dir, "state", "outbox.sqlite"), { log });
    expect(outbox.getJson("desired", DesiredState)).toEqual({ scale: "C", intervalMs: 100 });
    outbox.close();
  });

  it("with no TMP102 to be had (no I2C bus) and no --simulate, stores no readings and tells the room why", async () => {
    const from = frames.length;
    const storedBefore = stored.size;
    const config: AgentConfig = {
      endpoint, id: "agent-1", ip: "192.168.1.19", sensor: "tmp102", simulate: false, i2cBus: 1, i2cAddress: 0x48, tmp102Rate: 4,
      tmp102Extended: false, led: false, ledGpio: 12, stateDir: join(dir, "state-missing"), outboxMax: 1000, scale: "F",
      intervalMs: 100, backoffMaxMs: 1000, quiet: false,
    };
    const log = memoryLogger();
    const choice = { simulate: false, i2cBus: 1, i2cAddress: 0x48, tmp102RateHz: 4 as const, tmp102Extended: false };
    const sensor = await chooseSensor(choice, log, { busExists: () => false });
    const agent = new Agent(config, { sensor, log });
    await agent.start();
    try {
      await expect.poll(() => frames.slice(from).some((f) => f.type === "hello"), { timeout: 5_000 }).toBe(true);
      const hello = frames.slice(from).find((f) => f.type === "hello")!;
      expect(hello.type === "hello" && hello.state).toMatchObject({ sensor: "unavailable", sensorProblem: expect.stringMatching(/no I2C bus/) });
      // Ten sample intervals later: the link is up, and not one reading was made up.
      await new Promise((r) => setTimeout(r, 1_000));
      expect(frames.slice(from).some((f) => f.type === "readings")).toBe(false);
      expect(agent.outbox.size).toBe(0);
      expect(stored.size).toBe(storedBefore);
      expect(log.lines.some((l) => l.startsWith("Temperature: "))).toBe(false);
    } finally {
      await agent.stop();
    }
  });

  it("says which endpoint it cannot reach and why, once per reason: refused, an HTML page, no token", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", () => r()));
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r)); // nothing listens there now
    const html = createServer((_req, res) => {
      res.setHeader("content-type", "text/html");
      res.end("<!doctype html>\n<html><body><h1>Welcome to nginx!</h1>\n</body></html>");
    });
    await new Promise<void>((r) => html.listen(0, "127.0.0.1", () => r()));
    const htmlPort = (html.address() as { port: number }).port;
    const base: AgentConfig = {
      endpoint: "", id: "agent-1", ip: "192.168.1.19", sensor: "simulated", simulate: true, i2cBus: 1, i2cAddress: 0x48, tmp102Rate: 4,
      tmp102Extended: false, led: false, ledGpio: 12, stateDir: "", outboxMax: 1000, scale: "F",
      intervalMs: 1000, backoffMaxMs: 100, quiet: true,
    };
    const cases = [
      { endpoint: `http://127.0.0.1:${closedPort}`, token: "agent-1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", expect: new RegExp(`at http://127.0.0.1:${closedPort}: cannot reach http://127.0.0.1:${closedPort}: ECONNREFUSED`) },
      { endpoint: `http://127.0.0.1:${htmlPort}`, token: "agent-1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", expect: /answered an HTML page: not an IoT endpoint \(check --endpoint/ },
      { endpoint: `http://127.0.0.1:${closedPort}`, token: undefined, expect: /No device token: set IOT_TOKEN \(or --token\)[^\n]*npm run device -- provision/ },
    ];
    try {
      for (const [i, c] of cases.entries()) {
        const log = memoryLogger();
        const agent = new Agent({ ...base, endpoint: c.endpoint, token: c.token, stateDir: join(dir, `state-unreachable-${i}`) }, { log });
        await agent.start();
        try {
          await expect.poll(() => log.warnings.join("\n"), { timeout: 5_000 }).toMatch(c.expect);
          // Retried every ~100 ms here, but the same reason is said once.
          await new Promise((r) => setTimeout(r, 500));
          const reasons = log.warnings.filter((w) => w.includes("(retrying)"));
          expect(new Set(reasons).size).toBe(reasons.length);
          expect(log.warnings.join("\n")).not.toMatch(/<h1>|<html/);
        } finally {
          await agent.stop();
        }
      }
    } finally {
      await new Promise((r) => html.close(r));
    }
  });

  it("one stream per source: hello names it, and a state directory run simulated, then with the TMP102, keeps them in two outboxes", async () => {
    const stateDir = join(dir, "state-sources");
    const base: AgentConfig = {
      endpoint, id: "agent-1", ip: "192.168.1.19", sensor: "simulated", simulate: true, i2cBus: 1, i2cAddress: 0x48, tmp102Rate: 4,
      tmp102Extended: false, led: false, ledGpio: 12, stateDir, outboxMax: 1000, scale: "F", intervalMs: 100, backoffMaxMs: 1000, quiet: true,
    };
    const hellos = async (config: AgentConfig, sensor?: Sensor) => {
      const from = frames.length;
      const agent = new Agent(config, { log: memoryLogger(), sensor });
      await agent.start();
      try {
        await expect.poll(() => frames.slice(from).some((f) => f.type === "hello"), { timeout: 5_000 }).toBe(true);
        return { hello: frames.slice(from).find((f) => f.type === "hello")!, path: agent.outbox.path };
      } finally {
        await agent.stop();
      }
    };
    const simulated = await hellos(base);
    expect(simulated.hello).toMatchObject({ source: "simulated", state: { sensor: "simulated" } });
    expect(simulated.path).toBe(join(stateDir, "outbox.sqlite"));
    // The same directory with the real sensor (here one that fails every read): its own outbox, its own stream.
    const sensor = new FlakySensor();
    const real = await hellos({ ...base, sensor: "tmp102", simulate: false }, sensor);
    expect(real.hello).toMatchObject({ source: "tmp102", state: { sensor: "tmp102" } });
    expect(real.path).toBe(join(stateDir, "outbox-tmp102.sqlite"));
    expect(real.hello.type === "hello" && simulated.hello.type === "hello" && real.hello.stream !== simulated.hello.stream).toBe(true);
    // And back: the simulated stream continues where it was.
    const again = await hellos(base);
    expect(again.hello.type === "hello" && simulated.hello.type === "hello" && again.hello.stream === simulated.hello.stream).toBe(true);
  });

  it("a clock 400 days behind (issue 13, item 6): skew measured at connect and reported, every reading stored at the endpoint's time, those taken before the connect too", async () => {
    const from = frames.length;
    stored.clear(); // a new stream
    const DAY = 86_400_000;
    const clock = { now: () => Date.now() - 400 * DAY, mono: () => performance.now() };
    const config: AgentConfig = {
      endpoint, id: "agent-1", ip: "192.168.1.19", sensor: "simulated", simulate: true, i2cBus: 1, i2cAddress: 0x48, tmp102Rate: 4,
      tmp102Extended: false, led: false, ledGpio: 12, stateDir: join(dir, "state-clock"), outboxMax: 1000, scale: "F",
      intervalMs: 100, backoffMaxMs: 1000, quiet: true,
    };
    const log = memoryLogger();
    const startedAt = Date.now();
    configDown = true;
    const agent = new Agent(config, { log, clock });
    await agent.start();
    try {
      // Readings taken while the endpoint cannot be reached: their time is the wrong clock's for now.
      await expect.poll(() => agent.outbox.size, { timeout: 5_000 }).toBeGreaterThanOrEqual(5);
      configDown = false;
      await expect.poll(() => frames.slice(from).filter((f) => f.type === "readings").flatMap((f) => (f.type === "readings" ? f.readings : [])).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(15);
      const readings = frames.slice(from).flatMap((f) => (f.type === "readings" ? f.readings : []));
      expect(readings.some((r) => r.seq <= 5)).toBe(true); // the early ones are among them
      for (const r of readings) {
        expect(r.ts).toBeGreaterThanOrEqual(startedAt - 2_000);
        expect(r.ts).toBeLessThanOrEqual(Date.now() + 2_000);
      }
      const hello = frames.slice(from).find((f) => f.type === "hello");
      expect(hello?.type === "hello" && hello.state.clockSkewMs).toBeGreaterThan(-400 * DAY - 5_000);
      expect(hello?.type === "hello" && hello.state.clockSkewMs).toBeLessThan(-400 * DAY + 5_000);
      expect(log.warnings.join("\n")).toMatch(/Clock: this device is 400 days behind the endpoint; reading times are taken from the endpoint's clock \(\d+ readings taken before now corrected/);
      // A command's apply time, for the dashboard's trace, is on the endpoint's clock too (issue 14), not 400 days ago.
      const sentAt = Date.now();
      room!.send(JSON.stringify({ type: "command", id: "cmd-skewed-001", command: { cmd: "scale", scale: "C" } }));
      await expect.poll(() => frames.slice(from).some((f) => f.type === "result" && f.id === "cmd-skewed-001"), { timeout: 5_000 }).toBe(true);
      const result = frames.slice(from).find((f) => f.type === "result" && f.id === "cmd-skewed-001");
      expect(result?.type === "result" && result.appliedAt).toBeGreaterThanOrEqual(sentAt - 2_000);
      expect(result?.type === "result" && result.appliedAt).toBeLessThanOrEqual(Date.now() + 2_000);
    } finally {
      configDown = false;
      await agent.stop();
    }
  });

  it("on a full disk (a real 256 KB tmpfs): starts, streams from memory, tells the room why, and says when the disk is back", async (ctx) => {
    const disk = mountSmallDisk(256);
    if (!disk) return ctx.skip();
    const from = frames.length;
    stored.clear(); // a new stream: the stand-in room keeps one seq set for all of them
    const config: AgentConfig = {
      endpoint, id: "agent-1", ip: "192.168.1.19", sensor: "simulated", simulate: true, i2cBus: 1, i2cAddress: 0x48, tmp102Rate: 4,
      tmp102Extended: false, led: false, ledGpio: 12, stateDir: join(disk.dir, "state"), outboxMax: 1000, scale: "F",
      intervalMs: 100, backoffMaxMs: 1000, quiet: true,
    };
    try {
      // An outbox from an earlier run, then the SD card fills up (journals, logs) and the unit restarts.
      new Outbox(join(config.stateDir, "outbox.sqlite"), { log: memoryLogger() }).close();
      disk.fill();
      const log = memoryLogger();
      const agent = new Agent(config, { log, storageRetryMs: 0 });
      await agent.start(); // before: "disk I/O error" here, and a systemd restart loop
      try {
        const storageProblem = /^no space left on device \(SQLITE_FULL\) in .+: readings held in memory/;
        await expect.poll(() => frames.slice(from).some((f) => (f.type === "hello" || f.type === "report") && storageProblem.test(f.state.storageProblem ?? "")), { timeout: 5_000 }).toBe(true);
        // Readings still reach the room, and its acks free the memory that held them.
        await expect.poll(() => frames.slice(from).filter((f) => f.type === "readings").length, { timeout: 5_000 }).toBeGreaterThanOrEqual(5);
        await expect.poll(() => agent.outbox.inMemory, { timeout: 5_000 }).toBeLessThanOrEqual(2);
        expect(log.warnings.some((w) => /Outbox write failed|rollback/.test(w))).toBe(false);
        disk.free();
        await expect.poll(() => frames.slice(from).some((f) => f.type === "report" && f.state.storageProblem === undefined), { timeout: 5_000 }).toBe(true);
        expect(agent.outbox.problem).toBeUndefined();
        const last = agent.outbox.next - 1;
        await expect.poll(() => stored.size, { timeout: 5_000 }).toBeGreaterThanOrEqual(last);
        // Every seq, all taken on the full disk, reached the room: none lost.
        expect([...stored].sort((a, b) => a - b).slice(0, last)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
      } finally {
        await agent.stop();
      }
    } finally {
      disk.unmount();
    }
  });

  it("memory first (the default): the room acking at once, no reading reaches the outbox file; strict writes every one; a stop offline writes what memory holds", async () => {
    const onDisk = (stateDir: string) => {
      const db = new DatabaseSync(join(stateDir, "outbox.sqlite"), { readOnly: true });
      try {
        const inserted = (db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'readings'").get() as { seq: number } | undefined)?.seq ?? 0;
        const rows = (db.prepare("SELECT seq FROM readings ORDER BY seq").all() as { seq: number }[]).map((r) => r.seq);
        const issued = (db.prepare("SELECT value FROM meta WHERE key = 'issued'").get() as { value: string } | undefined)?.value;
        return { inserted, rows, issued };
      } finally {
        db.close();
      }
    };
    const run = async (name: string, extra: Partial<AgentConfig>) => {
      stored.clear(); // a new stream: the stand-in room keeps one seq set for all of them
      const config: AgentConfig = {
        endpoint, id: "agent-1", ip: "192.168.1.19", sensor: "simulated", simulate: true, i2cBus: 1, i2cAddress: 0x48, tmp102Rate: 4,
        tmp102Extended: false, led: false, ledGpio: 12, stateDir: join(dir, `state-outbox-${name}`), outboxMax: 1000, scale: "F",
        intervalMs: 100, backoffMaxMs: 1000, quiet: true, ...extra,
      };
      const agent = new Agent(config, { log: memoryLogger() });
      await agent.start();
      try {
        await expect.poll(() => agent.outbox.next, { timeout: 5_000 }).toBeGreaterThan(15);
      } finally {
        await agent.stop();
      }
      return { last: agent.outbox.next - 1, file: onDisk(config.stateDir) };
    };

    const memory = await run("memory", {});
    // Before: every reading inserted (and deleted at its ack); now none, and the file knows how far numbering went.
    expect(memory.file).toEqual({ inserted: 0, rows: [], issued: String(memory.last) });
    const strict = await run("strict", { outbox: "strict" });
    expect(strict.file.inserted).toBe(strict.last);
    expect(strict.file.rows).toEqual([]); // all acked and pruned

    configDown = true; // no endpoint: nothing acked, nothing sent
    try {
      const offline = await run("offline", {});
      expect(offline.file.rows).toEqual(Array.from({ length: offline.last }, (_, i) => i + 1));
    } finally {
      configDown = false;
    }
  });

  it("quiet (as under systemd): no line per reading, a status line per period instead", async () => {
    const config: AgentConfig = {
      endpoint, id: "agent-1", ip: "192.168.1.19", sensor: "simulated", simulate: true, i2cBus: 1, i2cAddress: 0x48, tmp102Rate: 4,
      tmp102Extended: false, led: false, ledGpio: 12, stateDir: join(dir, "state-quiet"), outboxMax: 1000, scale: "F",
      intervalMs: 100, backoffMaxMs: 1000, quiet: true, summaryMs: 1_000,
    };
    const log = memoryLogger();
    const agent = new Agent(config, { log });
    await agent.start();
    try {
      await expect.poll(() => log.lines.some((l) => l.startsWith("Status: ")), { timeout: 5_000 }).toBe(true);
      const status = log.lines.find((l) => l.startsWith("Status: "))!;
      expect(status).toMatch(/^Status: \d+ readings in the last 1 min, last -?\d+\.\d\dF; \d+ waiting for the endpoint; link (up|down)$/);
      expect(Number(/^Status: (\d+)/.exec(status)![1])).toBeGreaterThan(3);
      expect(log.lines.some((l) => l.startsWith("Temperature: "))).toBe(false);
    } finally {
      await agent.stop();
    }
  });
});
