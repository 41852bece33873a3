/**
 * A small device that speaks the real protocol, for browser and end-to-end
 * tests: with a provisioned token it registers (`GET /iot/config`), takes a device ticket, says
 * `hello`, streams `readings` at a fixed rate, heartbeats, applies the room's
 * `desired` state and answers every `command` with a `result`.
 *
 * Tests only see the `SimulatedDevice` interface, so the real agent
 * (`npm run device -- --simulate`) can take its place behind the same shape.
 */
import { randomBytes } from "node:crypto";
import WebSocket from "ws";
import {
  convert,
  IotConfigResponse,
  parseFrame,
  PING,
  PONG,
  ToDeviceMessage,
  type CommandBody,
  type DeviceMessage,
  type Reading,
  type ReportedState,
  type Scale,
} from "../../party/protocol";

export interface SimulatedDevice {
  readonly id: string;
  /** The scale it reads in now (what the dashboard's switch should change). */
  readonly scale: Scale;
  /** Every command it received, in order. */
  readonly commands: readonly CommandBody[];
  /** The newest reading it sent. */
  readonly lastReading: Reading | undefined;
  /** Readings sent so far. */
  readonly sent: number;
  /** Close its socket cleanly, as a device that is switched off would not, but a stopped agent does. */
  stop(): Promise<void>;
}

export type DeviceOptions = {
  endpoint: string;
  id: string;
  /** Its credentials, `<id>.<secret>`, from `POST /api/devices` (provisioning). */
  token: string;
  /** Sample interval (ms); an `interval` command changes it. Default 1000. */
  intervalMs?: number;
  fw?: string;
};

const CONNECT_TIMEOUT_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function startTestDevice(opts: DeviceOptions): Promise<SimulatedDevice> {
  const { endpoint, id } = opts;
  const auth = { authorization: `Bearer ${opts.token}` };
  // An address from the documentation range (RFC 5737): it is only a header, nothing connects to it.
  const ip = "192.0.2.10";
  const configRes = await fetch(`${endpoint}/iot/config`, {
    headers: { "x-iot-ip": ip, "x-iot-id": id, ...auth },
    signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
  });
  if (!configRes.ok) throw new Error(`test device ${id}: GET /iot/config answered ${configRes.status}: ${await configRes.text()}`);
  const config = IotConfigResponse.parse(await configRes.json());

  const ticketRes = await fetch(`${endpoint}/api/tickets`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ device: id, role: "device" }),
    signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
  });
  if (!ticketRes.ok) throw new Error(`test device ${id}: POST /api/tickets answered ${ticketRes.status}: ${await ticketRes.text()}`);
  const { ticket, path } = (await ticketRes.json()) as { ticket: string; path: string };

  let state: ReportedState = {
    scale: config.config.scale,
    intervalMs: opts.intervalMs ?? 1000,
    fw: opts.fw ?? config.config.fw,
    ip,
    sensor: "test-device",
  };
  let seq = 0;
  let lastReading: Reading | undefined;
  const commands: CommandBody[] = [];
  const started = Date.now();

  const ws = new WebSocket(`${endpoint.replace(/^http/, "ws")}${path}?ticket=${encodeURIComponent(ticket)}`);
  const closed = new Promise<void>((r) => ws.once("close", () => r()));
  const send = (msg: DeviceMessage | string) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(typeof msg === "string" ? msg : JSON.stringify(msg));
  };

  let sampler: ReturnType<typeof setInterval> | undefined;
  const startSampling = () => {
    clearInterval(sampler);
    sampler = setInterval(() => {
      seq += 1;
      // A slow wave around 72 °F, so a chart shows movement and a scale switch shows a jump.
      const f = 72 + 2 * Math.sin((Date.now() - started) / 20_000) + (seq % 7) / 20;
      lastReading = { seq, ts: Date.now(), temperature: Math.round(convert(f, "F", state.scale) * 100) / 100, scale: state.scale };
      send({ type: "readings", readings: [lastReading] });
    }, state.intervalMs);
  };
  const heartbeat = setInterval(() => send(PING), Math.min(config.config.heartbeatMs, 5_000));

  const desired = new Promise<void>((resolveDesired, reject) => {
    const timer = setTimeout(() => reject(new Error(`test device ${id}: no desired state within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
    ws.on("error", (err) => reject(err));
    ws.on("open", () =>
      send({ type: "hello", stream: `test${randomBytes(8).toString("hex")}`, oldest: 1, state }),
    );
    ws.on("message", (data) => {
      const text = data.toString();
      // The runtime's answer to our heartbeat (protocol.PONG); not a room message.
      if (text === PONG) return;
      const parsed = parseFrame(ToDeviceMessage, text);
      if (!parsed.ok) throw new Error(`test device ${id}: bad frame from room: ${parsed.error.message}`);
      const msg = parsed.value;
      switch (msg.type) {
        case "desired":
          // The room's desired state wins on (re)connect, as the real agent's does.
          if (msg.state.scale !== state.scale) {
            state = { ...state, scale: msg.state.scale };
            send({ type: "report", state });
          }
          clearTimeout(timer);
          resolveDesired();
          return;
        case "command":
          commands.push(msg.command);
          if (msg.command.cmd === "scale") state = { ...state, scale: msg.command.scale };
          else {
            state = { ...state, intervalMs: msg.command.intervalMs };
            startSampling();
          }
          send({ type: "result", id: msg.id, ok: true, state });
          return;
        case "ack":
          return;
        case "error":
          // The room refused a frame of ours: a bug in this test device, so make it loud.
          throw new Error(`test device ${id}: room said ${msg.code}: ${msg.message}`);
      }
    });
  });
  try {
    await desired;
  } catch (err) {
    clearInterval(heartbeat);
    ws.terminate();
    throw err;
  }
  startSampling();

  return {
    id,
    get scale() {
      return state.scale;
    },
    get commands() {
      return commands;
    },
    get lastReading() {
      return lastReading;
    },
    get sent() {
      return seq;
    },
    async stop() {
      clearInterval(sampler);
      clearInterval(heartbeat);
      if (ws.readyState === WebSocket.CLOSED) return;
      ws.close(1000, "test device stopped");
      // A clean close needs the room's answer; if it does not come, cut the TCP connection.
      const timer = setTimeout(() => ws.terminate(), 5_000);
      const gaveUp = await Promise.race([closed.then(() => false), sleep(10_000).then(() => true)]);
      clearTimeout(timer);
      if (gaveUp) throw new Error(`test device ${id}: socket did not close within 10 s (state ${ws.readyState})`);
    },
  };
}
