// `ws` (a devDependency) ships no types; this declares the part the link test's fake room uses.
declare module "ws" {
  import type { IncomingMessage } from "node:http";
  export class WebSocket {
    send(data: string): void;
    close(code?: number, reason?: string): void;
    terminate(): void;
    on(event: "message", listener: (data: Buffer) => void): this;
    on(event: "close", listener: () => void): this;
  }
  export class WebSocketServer {
    constructor(options: { port: number; host?: string } | { server: import("node:http").Server });
    address(): { port: number };
    clients: Set<WebSocket>;
    on(event: "connection", listener: (socket: WebSocket, request: IncomingMessage) => void): this;
    on(event: "listening", listener: () => void): this;
    close(callback?: () => void): void;
  }
}
