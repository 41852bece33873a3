/**
 * A client for tests that go through nginx: node:http/https rather than
 * fetch, so a request can trust the test's self-signed certificate (`ca`) and
 * send any header (Origin, forged X-Real-IP), and sockets over ws:// or wss://.
 * Like EndpointClient (client.ts) it acts as the operator (ADMIN_TOKEN) and as
 * each device it provisions. Every call has a time-out.
 */
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { openSocket, type SocketClient } from "./client";

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

export class LanClient {
  constructor(
    /** http(s)://host:port, through nginx or straight to the endpoint. */
    readonly base: string,
    readonly adminToken: string,
    /** The certificate to trust for https. */
    readonly ca?: Buffer,
    /** Device tokens by id, shared with clients made by `via`. */
    readonly tokens = new Map<string, string>(),
  ) {
    if (!issuedSecrets.includes(adminToken)) issuedSecrets.push(adminToken);
  }

  /** The same operator and devices through another base URL. */
  via(base: string, ca?: Buffer): LanClient {
    return new LanClient(base, this.adminToken, ca, this.tokens);
  }

  /** A request with no credentials. */
  anonymous(path: string, opts: RequestOptions = {}): Promise<Reply> {
    return request(`${this.base}${path}`, { ca: this.ca, ...opts });
  }

  admin(path: string, opts: RequestOptions = {}): Promise<Reply> {
    return this.anonymous(path, { ...opts, headers: { authorization: `Bearer ${this.adminToken}`, ...opts.headers } });
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
  async ticket(body: { device: string; role: "device" | "dashboard" } | { fleet: true }): Promise<{ ticket: string; path: string }> {
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

/** The device's first frame; the room answers with `desired`. */
export async function helloDevice(device: SocketClient, stream = "nginx-e2e-stream"): Promise<void> {
  device.send({ type: "hello", stream, oldest: 1, state: { scale: "F", intervalMs: 1000, fw: "1.0.0", sensor: "simulated" } });
  await device.next((m) => m.type === "desired");
}
