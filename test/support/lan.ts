/**
 * HTTP(S) for tests that go through nginx: node:http/https rather than fetch,
 * so a request can trust the test's self-signed certificate (`ca`) and send
 * any header, and sockets over ws:// or wss://. Every call has a time-out.
 *
 * REST credentials (issue 6) go in `authHeaders()`; every request and every
 * ticket in the nginx tests passes through it.
 */
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { openSocket, type SocketClient } from "./client";

export type Reply = { status: number; headers: IncomingHttpHeaders; text: string; json<T = any>(): T };

/** Headers every REST call carries. Empty until the endpoint requires credentials. */
export function authHeaders(): Record<string, string> {
  return {};
}

export function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; json?: unknown; ca?: Buffer; timeoutMs?: number } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...authHeaders(), ...opts.headers };
  let body = opts.body;
  if (opts.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(opts.json);
  }
  if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
  const send = url.startsWith("https:") ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { method: opts.method ?? "GET", headers, ca: opts.ca, timeout: opts.timeoutMs ?? 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${opts.method ?? "GET"} ${url}: no answer in ${opts.timeoutMs ?? 15_000} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** Every ticket handed out in this process, so a test can look for them in logs. */
export const issuedTickets: string[] = [];

/** POST /api/tickets: a one-minute ticket and the socket path it opens. */
export async function getTicket(
  base: string,
  body: { device: string; role: "device" | "dashboard" } | { fleet: true },
  ca?: Buffer,
): Promise<{ ticket: string; path: string }> {
  const res = await request(`${base}/api/tickets`, { method: "POST", json: body, ca });
  if (res.status !== 200) throw new Error(`ticket ${JSON.stringify(body)}: ${res.status} ${res.text}`);
  const { ticket, path } = res.json<{ ticket: string; path: string }>();
  issuedTickets.push(ticket);
  return { ticket, path };
}

/** A socket into a device's room as `role`, over ws:// or wss:// matching `base`. */
export async function openRoomVia(base: string, id: string, role: "device" | "dashboard", ca?: Buffer): Promise<SocketClient> {
  const { ticket, path } = await getTicket(base, { device: id, role }, ca);
  return openSocket(`${base.replace(/^http/, "ws")}${path}?ticket=${encodeURIComponent(ticket)}`, ca ? { ca } : {});
}

/** GET /iot/config as a device registers: its LAN address and id in headers. */
export async function registerVia(base: string, id: string, ip = "192.168.1.19", ca?: Buffer): Promise<any> {
  const res = await request(`${base}/iot/config`, { headers: { "x-iot-ip": ip, "x-iot-id": id }, ca });
  if (res.status !== 200) throw new Error(`register ${id}: ${res.status} ${res.text}`);
  return res.json();
}

/** The device's first frame; the room answers with `desired`. */
export async function helloDevice(device: SocketClient, stream = "nginx-e2e-stream"): Promise<void> {
  device.send({ type: "hello", stream, oldest: 1, state: { scale: "F", intervalMs: 1000, fw: "1.0.0", sensor: "simulated" } });
  await device.next((m) => m.type === "desired");
}
