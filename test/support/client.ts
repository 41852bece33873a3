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

export async function register(base: string, id: string, ip = "192.168.1.19"): Promise<any> {
  const res = await api(base, "/iot/config", { headers: { "x-iot-ip": ip, "x-iot-id": id } });
  if (res.status !== 200) throw new Error(`register ${id}: ${res.status} ${await res.text()}`);
  return res.json();
}

export async function openRoom(base: string, id: string, role: "device" | "dashboard"): Promise<SocketClient> {
  const res = await api(base, "/api/tickets", { method: "POST", json: { device: id, role } });
  if (res.status !== 200) throw new Error(`ticket: ${res.status} ${await res.text()}`);
  const { ticket, path } = (await res.json()) as { ticket: string; path: string };
  return openSocket(`${base.replace(/^http/, "ws")}${path}?ticket=${encodeURIComponent(ticket)}`);
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
