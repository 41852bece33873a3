/**
 * A Node client for the endpoint, straight or through nginx, over http or
 * https: REST with node:http/https rather than fetch, so a request can trust a
 * test's self-signed certificate (`ca`) and send any header (Origin, a forged
 * X-Real-IP); sockets with the `ws` package over ws:// or wss://. It acts as
 * the operator (ADMIN_TOKEN) and as each device it provisions. Every call and
 * every wait has a time-out.
 */
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import WebSocket from "ws";
import type { Reading } from "../../party/protocol";

export type SocketClient = {
  ws: WebSocket;
  messages: any[];
  closed: Promise<{ code: number; reason: string }>;
  send(msg: unknown): void;
  next(match: (m: any) => boolean, timeoutMs?: number, from?: number): Promise<any>;
  close(): void;
};

export type Reply = { status: number; headers: IncomingHttpHeaders; text: string; json<T = any>(): T };

export type RequestOptions = {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  json?: unknown;
  ca?: Buffer;
  timeoutMs?: number;
};

export function request(url: string, opts: RequestOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  let body = opts.body;
  if (opts.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(opts.json);
  }
  if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const send = url.startsWith("https:") ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { method: opts.method ?? "GET", headers, ca: opts.ca, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${opts.method ?? "GET"} ${url}: no answer in ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** Every ticket and token handed out in this process, so a test can look for them in logs. */
export const issuedSecrets: string[] = [];

export class EndpointClient {
  /** http(s)://host:port, through nginx or straight to the endpoint. */
  readonly base: string;
  readonly adminToken: string;
  /** The certificate to trust for https. */
  readonly ca: Buffer | undefined;
  /** Device tokens by id, shared with clients made by `via`. */
  readonly tokens: Map<string, string>;

  constructor(base: string, adminToken: string, ca?: Buffer, tokens = new Map<string, string>()) {
    this.base = base;
    this.adminToken = adminToken;
    this.ca = ca;
    this.tokens = tokens;
    if (!issuedSecrets.includes(adminToken)) issuedSecrets.push(adminToken);
  }

  /** The same operator and devices through another base URL. */
  via(base: string, ca?: Buffer): EndpointClient {
    return new EndpointClient(base, this.adminToken, ca, this.tokens);
  }

  /** A request with no credentials. */
  anonymous(path: string, opts: RequestOptions = {}): Promise<Reply> {
    return request(`${this.base}${path}`, { ca: this.ca, ...opts });
  }

  admin(path: string, opts: RequestOptions = {}): Promise<Reply> {
    return this.anonymous(path, { ...opts, headers: { authorization: `Bearer ${this.adminToken}`, ...opts.headers } });
  }

  /** GET as the operator: the JSON answer, or an error naming the status. */
  async json<T = any>(path: string): Promise<T> {
    const res = await this.admin(path);
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.text}`);
    return res.json<T>();
  }

  /** Every reading the device's room keeps, in seq order, paged 1,000 at a time. */
  async allReadings(id: string): Promise<Reading[]> {
    const out: Reading[] = [];
    for (;;) {
      const after = out.at(-1)?.seq ?? 0;
      const { readings } = await this.json<{ readings: Reading[] }>(`/api/devices/${id}/readings?after=${after}&limit=1000`);
      out.push(...readings);
      if (readings.length < 1000) return out;
    }
  }

  async device(id: string, path: string, opts: RequestOptions = {}): Promise<Reply> {
    return this.anonymous(path, { ...opts, headers: { authorization: `Bearer ${await this.token(id)}`, ...opts.headers } });
  }

  /** The device's token, provisioning it on first use. */
  async token(id: string): Promise<string> {
    const known = this.tokens.get(id);
    if (known) return known;
    const res = await this.admin("/api/devices", { method: "POST", json: { id } });
    if (res.status !== 201) throw new Error(`provision ${id}: ${res.status} ${res.text}`);
    const { token } = res.json<{ token: string }>();
    this.tokens.set(id, token);
    issuedSecrets.push(token);
    return token;
  }

  /** GET /iot/config as a device registers: its LAN address in a header. */
  async register(id: string, ip = "192.168.1.19"): Promise<any> {
    const res = await this.device(id, "/iot/config", { headers: { "x-iot-ip": ip } });
    if (res.status !== 200) throw new Error(`register ${id}: ${res.status} ${res.text}`);
    return res.json();
  }

  /** POST /api/tickets: a single-use ticket and the socket path it opens (as the device, or the operator). */
  async ticket(body: { device: string; role: "device" | "dashboard" }): Promise<{ ticket: string; path: string }> {
    const res =
      "device" in body && body.role === "device"
        ? await this.device(body.device, "/api/tickets", { method: "POST", json: body })
        : await this.admin("/api/tickets", { method: "POST", json: body });
    if (res.status !== 200) throw new Error(`ticket ${JSON.stringify(body)}: ${res.status} ${res.text}`);
    const { ticket, path } = res.json<{ ticket: string; path: string }>();
    issuedSecrets.push(ticket);
    return { ticket, path };
  }

  /** A socket into a device's room as `role`, over ws:// or wss:// matching the base; `origin` as a browser sends it. */
  async openRoom(id: string, role: "device" | "dashboard", origin?: string): Promise<SocketClient> {
    return this.openPath(await this.ticket({ device: id, role }), origin);
  }

  openPath({ ticket, path }: { ticket: string; path: string }, origin?: string): Promise<SocketClient> {
    return openSocket(`${this.base.replace(/^http/, "ws")}${path}?ticket=${encodeURIComponent(ticket)}`, {
      ...(this.ca ? { ca: this.ca } : {}),
      ...(origin ? { origin } : {}),
    });
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

/** A device socket's first frame; the room answers with `desired`. */
export async function helloDevice(device: SocketClient, stream: string): Promise<void> {
  device.send({ type: "hello", stream, oldest: 1, state: { scale: "F", intervalMs: 1000, fw: "1.0.0", sensor: "simulated" } });
  await device.next((m) => m.type === "desired");
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
