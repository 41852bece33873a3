/**
 * Test helpers that call the Worker as a client would: REST through
 * `exports.default.fetch`, sockets through a real WebSocket upgrade into the room.
 * Every wait has a time-out.
 */
import { exports } from "cloudflare:workers";
import type { Reading, ReportedState } from "../../party/protocol";

export const BASE = "http://iot.test";
/** The secrets vitest.config.ts gives the test Worker. */
export const ADMIN_TOKEN = "test-only-admin-token-0123456789abcdef";
export const VIEWER_TOKEN = "test-only-viewer-token-0123456789abcdef";
export const asAdmin = { authorization: `Bearer ${ADMIN_TOKEN}` };
export const asViewer = { authorization: `Bearer ${VIEWER_TOKEN}` };

let counter = 0;
/** A unique device id per test: rooms are not shared between tests. */
export function uniqueId(prefix = "dev"): string {
  return `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}`;
}

/**
 * Each test file calls from its own address, so the per-address rate limit
 * (1,200 a minute) measures one file, not the whole suite.
 */
const CLIENT_IP = `198.51.100.${Math.floor(Math.random() * 250) + 1}`;

export function call(path: string, init?: RequestInit): Promise<Response> {
  const request = new Request(`${BASE}${path}`, init);
  if (!request.headers.has("cf-connecting-ip")) request.headers.set("cf-connecting-ip", CLIENT_IP);
  return exports.default.fetch(request);
}

export async function json<T = any>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

export function postJson(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return call(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

export function get(path: string, headers: Record<string, string> = asAdmin): Promise<Response> {
  return call(path, { headers });
}

const tokens = new Map<string, string>();

/** Provision a device as the operator would; returns its token (`<id>.<secret>`). */
export async function provision(id: string): Promise<string> {
  const res = await postJson("/api/devices", { id }, asAdmin);
  if (res.status !== 201) throw new Error(`provision ${id}: ${res.status} ${await res.text()}`);
  const { token } = (await res.json()) as { token: string };
  tokens.set(id, token);
  return token;
}

/** The device's own credentials, as headers (provisioning it first if needed). */
export async function asDevice(id: string): Promise<Record<string, string>> {
  const token = tokens.get(id) ?? (await provision(id));
  return { authorization: `Bearer ${token}` };
}

/** Provision (once) and register the device with `GET /iot/config`, as the agent does at start. */
export async function register(id: string, ip = "192.168.1.19"): Promise<any> {
  const res = await call("/iot/config", { headers: { "x-iot-ip": ip, ...(await asDevice(id)) } });
  if (res.status !== 200) throw new Error(`register ${id}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** A socket ticket: the device's own for role device, the operator's (or `as`) for a dashboard. */
export async function ticket(id: string, role: "device" | "dashboard", as: Record<string, string> = asAdmin): Promise<string> {
  const headers = role === "device" ? await asDevice(id) : as;
  const res = await postJson("/api/tickets", { device: id, role }, headers);
  if (res.status !== 200) throw new Error(`ticket ${id}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { ticket: string }).ticket;
}

export type Client = {
  ws: WebSocket;
  messages: any[];
  closed: Promise<{ code: number; reason: string }>;
  send(msg: unknown): void;
  /** Wait for the first message (from index `from`) that matches. */
  next(match: (m: any) => boolean, timeoutMs?: number, from?: number): Promise<any>;
  close(): void;
};

export async function connect(path: string): Promise<Client> {
  const res = await call(path, { headers: { Upgrade: "websocket" } });
  const ws = res.webSocket;
  if (!ws) throw new Error(`no upgrade for ${path}: ${res.status} ${await res.text()}`);
  ws.accept();
  const messages: any[] = [];
  const waiters = new Set<() => void>();
  ws.addEventListener("message", (e) => {
    messages.push(JSON.parse(e.data as string));
    for (const w of waiters) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })),
  );
  return {
    ws,
    messages,
    closed,
    send: (msg) => ws.send(typeof msg === "string" ? msg : JSON.stringify(msg)),
    next(match, timeoutMs = 5_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = messages.slice(from).find(match);
          if (hit !== undefined) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms; got ${JSON.stringify(messages).slice(0, 800)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => {
      try {
        ws.close(1000, "test done");
      } catch {
        // already closed by the room: fine for a test tear-down
      }
    },
  };
}

export async function connectDashboard(id: string, as: Record<string, string> = asAdmin): Promise<Client> {
  const client = await connect(`/parties/device/${id}?ticket=${await ticket(id, "dashboard", as)}`);
  await client.next((m) => m.type === "snapshot");
  return client;
}

export const reportedState = (over: Partial<ReportedState> = {}): ReportedState => ({
  scale: "F",
  intervalMs: 1000,
  fw: "1.0.0",
  sensor: "simulated",
  ...over,
});

/** A device socket that has said hello (stream `stream`, outbox starting at `oldest`). */
export async function connectDevice(
  id: string,
  opts: { stream?: string; oldest?: number; state?: Partial<ReportedState> } = {},
): Promise<Client> {
  const client = await connect(`/parties/device/${id}?ticket=${await ticket(id, "device")}`);
  client.send({
    type: "hello",
    stream: opts.stream ?? "stream-test-1",
    oldest: opts.oldest ?? 1,
    state: reportedState(opts.state),
  });
  await client.next((m) => m.type === "desired");
  return client;
}

export function reading(seq: number, temperature = 70 + seq / 10, scale: "F" | "C" = "F"): Reading {
  return { seq, ts: 1_739_129_986_136 + seq * 1000, temperature, scale };
}
