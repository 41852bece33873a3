/**
 * A Node client for the endpoint, as a device or a dashboard would be:
 * REST with fetch, sockets with the `ws` package, every wait with a time-out.
 */
import WebSocket from "ws";

export type SocketClient = {
  ws: WebSocket;
  messages: any[];
  closed: Promise<{ code: number; reason: string }>;
  send(msg: unknown): void;
  next(match: (m: any) => boolean, timeoutMs?: number, from?: number): Promise<any>;
  close(): void;
};

export async function api(base: string, path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(init.json);
  }
  return fetch(`${base}${path}`, { ...init, headers, body });
}

/** Talks to one endpoint as its operator, and as each device it provisions. */
export class EndpointClient {
  readonly tokens = new Map<string, string>();
  constructor(
    readonly base: string,
    readonly adminToken: string,
  ) {}

  admin(path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
    return api(this.base, path, { ...init, headers: { authorization: `Bearer ${this.adminToken}`, ...init.headers } });
  }

  async device(id: string, path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
    return api(this.base, path, { ...init, headers: { authorization: `Bearer ${await this.token(id)}`, ...init.headers } });
  }

  /** The device's token, provisioning it on first use. */
  async token(id: string): Promise<string> {
    const known = this.tokens.get(id);
    if (known) return known;
    const res = await this.admin("/api/devices", { method: "POST", json: { id } });
    if (res.status !== 201) throw new Error(`provision ${id}: ${res.status} ${await res.text()}`);
    const { token } = (await res.json()) as { token: string };
    this.tokens.set(id, token);
    return token;
  }

  async register(id: string, ip = "192.168.1.19"): Promise<any> {
    const res = await this.device(id, "/iot/config", { headers: { "x-iot-ip": ip } });
    if (res.status !== 200) throw new Error(`register ${id}: ${res.status} ${await res.text()}`);
    return res.json();
  }

  async openRoom(id: string, role: "device" | "dashboard"): Promise<SocketClient> {
    const res =
      role === "device"
        ? await this.device(id, "/api/tickets", { method: "POST", json: { device: id, role } })
        : await this.admin("/api/tickets", { method: "POST", json: { device: id, role } });
    if (res.status !== 200) throw new Error(`ticket: ${res.status} ${await res.text()}`);
    const { ticket, path } = (await res.json()) as { ticket: string; path: string };
    return openSocket(`${this.base.replace(/^http/, "ws")}${path}?ticket=${encodeURIComponent(ticket)}`);
  }
}

export function openSocket(url: string, options: WebSocket.ClientOptions = {}): Promise<SocketClient> {
  const ws = new WebSocket(url, options);
  const messages: any[] = [];
  const waiters = new Set<() => void>();
  ws.on("message", (data) => {
    messages.push(JSON.parse(data.toString()));
    for (const w of waiters) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  const client: SocketClient = {
    ws,
    messages,
    closed,
    send: (msg) => ws.send(typeof msg === "string" ? msg : JSON.stringify(msg)),
    next(match, timeoutMs = 10_000, from = 0) {
      return new Promise((resolve, reject) => {
        let scanned = from;
        const check = () => {
          for (; scanned < messages.length; scanned++) {
            if (match(messages[scanned])) {
              waiters.delete(check);
              clearTimeout(timer);
              return resolve(messages[scanned]);
            }
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms; last: ${JSON.stringify(messages.slice(-5)).slice(0, 600)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => ws.close(1000, "done"),
  };
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(client));
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
  });
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
