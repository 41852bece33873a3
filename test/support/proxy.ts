/**
 * A small HTTP + WebSocket proxy in front of the real endpoint, for the update tests: it passes
 * everything through, and for release downloads (`GET /iot/releases/<version>`) it counts the
 * bytes it served and the Range asked for, and can cut a response halfway (a flaky link) or flip
 * one byte of it (a compromised endpoint or network). Every socket it holds is closed by close().
 */
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import { connect, type Socket } from "node:net";

export type Download = { version: string; range: string | null; status: number; bytes: number; cut: boolean };

export type ProxyRules = {
  /** Cut the first response for this version after this many body bytes. */
  cutAfter?: Map<string, number>;
  /** Flip the byte at this offset of the artifact (counted from its start, whatever the Range). */
  tamperAt?: Map<string, number>;
};

export class ReleaseProxy {
  readonly downloads: Download[] = [];
  readonly rules: Required<ProxyRules> = { cutAfter: new Map(), tamperAt: new Map() };
  #server: Server;
  #sockets = new Set<Socket>();
  port = 0;

  constructor(readonly target: { host: string; port: number }) {
    this.#server = createServer((req, res) => {
      const m = /^\/iot\/releases\/(\d+\.\d+\.\d+)$/.exec(req.url ?? "");
      const upstream = request({ host: target.host, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (!m) return void up.pipe(res);
        this.#serveRelease(m[1]!, req, up, res);
      });
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    this.#server.on("connection", (s) => this.#track(s));
    // WebSocket upgrades: the raw bytes both ways, untouched.
    this.#server.on("upgrade", (req: IncomingMessage, client: Socket, head: Buffer) => {
      const up = this.#track(connect(target.port, target.host));
      up.on("connect", () => {
        const lines = [`${req.method} ${req.url} HTTP/1.1`];
        for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
        up.write(`${lines.join("\r\n")}\r\n\r\n`);
        if (head.length) up.write(head);
        up.pipe(client);
        client.pipe(up);
      });
      const end = () => {
        up.destroy();
        client.destroy();
      };
      up.on("error", end);
      client.on("error", end);
      up.on("close", end);
      client.on("close", end);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.#server.listen(0, "127.0.0.1", r));
    this.port = (this.#server.address() as { port: number }).port;
    return `http://127.0.0.1:${this.port}`;
  }

  /** Bytes of `version` served in all, over every response. */
  served(version: string): number {
    return this.downloads.filter((d) => d.version === version).reduce((n, d) => n + d.bytes, 0);
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }

  #serveRelease(version: string, req: IncomingMessage, up: IncomingMessage, res: import("node:http").ServerResponse): void {
    const range = req.headers.range ?? null;
    const start = Number(/^bytes (\d+)-/.exec(String(up.headers["content-range"] ?? ""))?.[1] ?? 0);
    const record: Download = { version, range, status: up.statusCode ?? 0, bytes: 0, cut: false };
    this.downloads.push(record);
    const cutAt = this.rules.cutAfter.get(version);
    if (cutAt !== undefined) this.rules.cutAfter.delete(version); // only the first response is cut
    const tamperAt = this.rules.tamperAt.get(version);
    up.on("data", (chunk: Buffer) => {
      if (record.cut) return;
      let data = chunk;
      const offset = start + record.bytes;
      if (tamperAt !== undefined && tamperAt >= offset && tamperAt < offset + data.length) {
        data = Buffer.from(data);
        data[tamperAt - offset]! ^= 0x01;
      }
      if (cutAt !== undefined && record.bytes + data.length >= cutAt) {
        const keep = data.subarray(0, cutAt - record.bytes);
        record.bytes += keep.length;
        record.cut = true;
        // Half a body, a moment of silence, then the connection drops: what a Pi on bad Wi-Fi sees
        // (dropped at once, the client's HTTP stack could discard bytes it had received but not handed on).
        res.write(keep, () => setTimeout(() => res.socket?.destroy(), 500));
        up.destroy();
        return;
      }
      record.bytes += data.length;
      res.write(data);
    });
    up.on("end", () => record.cut || res.end());
  }

  #track(s: Socket): Socket {
    this.#sockets.add(s);
    s.on("close", () => this.#sockets.delete(s));
    return s;
  }
}
