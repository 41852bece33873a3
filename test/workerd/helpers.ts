/**
 * Test helpers that call the Worker as a client would: REST through
 * `exports.default.fetch`, sockets through a real WebSocket upgrade into the room.
 * Every wait has a time-out.
 */
import { exports } from "cloudflare:workers";
import type { Reading, ReportedState } from "../../party/protocol";

export const BASE = "http://iot.test";

let counter = 0;
/** A unique device id per test: rooms are not shared between tests. */
export function uniqueId(prefix = "dev"): string {
  return `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}`;
}

export function call(path: string, init?: RequestInit): Promise<Response> {
  return exports.default.fetch(new Request(`${BASE}${path}`, init));
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

export async function register(id: string, ip = "192.168.1.19"): Promise<any> {
  const res = await call("/iot/config", { headers: { "x-iot-ip": ip, "x-iot-id": id } });
  if (res.status !== 200) throw new Error(`register ${id}: ${res.status} ${await res.text()}`);
  return res.json();
}

export async function ticket(id: string, role: "device" | "dashboard"): Promise<string> {
  const res = await postJson("/api/tickets", { device: id, role });
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

export async function connectDashboard(id: string): Promise<Client> {
  const client = await connect(`/parties/device/${id}?ticket=${await ticket(id, "dashboard")}`);
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
