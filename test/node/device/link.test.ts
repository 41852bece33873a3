import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { PING, PONG, type ToDeviceMessage } from "../../../party/protocol.ts";
import { Link } from "../../../device/link.ts";
import { LINES } from "../../../device/log.ts";
import { memoryLogger } from "./fakes.ts";

/** A stand-in room: records each connection's ticket, answers PING with PONG unless told to play dead. */
async function fakeRoom() {
  const server = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise<void>((resolve) => server.on("listening", () => resolve()));
  const connections: { ws: WebSocket; ticket: string | null; path: string; frames: string[] }[] = [];
  let silent = false;
  server.on("connection", (ws, req) => {
    const url = new URL(req.url ?? "/", "http://x");
    const conn = { ws, ticket: url.searchParams.get("ticket"), path: url.pathname, frames: [] as string[] };
    connections.push(conn);
    const deaf = silent; // a connection made while "silent" stays half-open for its whole life
    ws.on("message", (data) => {
      const text = data.toString();
      conn.frames.push(text);
      if (text === PING && !deaf) ws.send(PONG);
    });
  });
  return {
    url: new URL(`ws://127.0.0.1:${server.address().port}/parties/device/dev-1`),
    connections,
    playDead: (on: boolean) => (silent = on),
    close: () => new Promise<void>((resolve) => {
      for (const c of server.clients) c.terminate();
      server.close(() => resolve());
    }),
  };
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function openLink(room: Awaited<ReturnType<typeof fakeRoom>>, heartbeatMs = 100) {
  const log = memoryLogger();
  const received: ToDeviceMessage[] = [];
  const invalid: string[] = [];
  let opens = 0;
  let tickets = 0;
  const link = new Link({
    url: room.url,
    ticket: async () => `ticket-${++tickets}`,
    heartbeatMs,
    backoff: { baseMs: 20, maxMs: 50, factor: 2 },
    log,
    onOpen: () => {
      opens++;
      link.send({ type: "report", state: { scale: "F", intervalMs: 1000, fw: "1.0.0", sensor: "simulated" } });
    },
    onClose: () => {},
    onMessage: (m) => received.push(m),
    onInvalid: (raw, reason) => invalid.push(`${raw} | ${reason}`),
  });
  cleanups.push(() => link.close());
  return { link, log, received, invalid, opens: () => opens };
}

describe("link", () => {
  it("opens the room's path with a fresh ticket on every connection, and reconnects when dropped", async () => {
    const room = await fakeRoom();
    cleanups.push(room.close);
    const { log, opens } = await openLink(room, 1000);
    await expect.poll(() => opens()).toBe(1);
    expect(room.connections[0]).toMatchObject({ ticket: "ticket-1", path: "/parties/device/dev-1" });
    await expect.poll(() => room.connections[0]!.frames.length).toBeGreaterThan(0);
    expect(JSON.parse(room.connections[0]!.frames[0]!)).toMatchObject({ type: "report" });
    room.connections[0]!.ws.close(1011, "room restarting");
    await expect.poll(() => opens()).toBe(2);
    expect(room.connections[1]!.ticket).toBe("ticket-2");
    expect(log.lines).toEqual(expect.arrayContaining([LINES.connected, expect.stringContaining(LINES.failure)]));
    expect(log.lines.filter((l) => l === LINES.connected)).toHaveLength(2);
  });

  it("pings, and treats a socket that stops answering as half-open: closes it and connects again", async () => {
    const room = await fakeRoom();
    cleanups.push(room.close);
    room.playDead(true);
    const { log, opens } = await openLink(room, 100);
    await expect.poll(() => opens()).toBe(1);
    room.playDead(false);
    // No PONG on the first connection: after 3 heartbeats the link gives up on it and dials again.
    await expect.poll(() => room.connections.length, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
    expect(log.lines.join("\n")).toMatch(/treating the socket as half-open[\s\S]*IoT Endpoint Communication Failure\. Attempting Restart \.\.\./);
    await expect.poll(() => opens()).toBeGreaterThanOrEqual(2);
    // The new connection gets the same heartbeat, in the protocol's exact PING text.
    await expect.poll(() => room.connections[1]!.frames.includes(PING), { timeout: 5_000 }).toBe(true);
  });

  it("hands over valid frames, and invalid ones separately (never throws on junk)", async () => {
    const room = await fakeRoom();
    cleanups.push(room.close);
    const { received, invalid, opens } = await openLink(room, 1000);
    await expect.poll(() => opens()).toBe(1);
    const ws = room.connections[0]!.ws;
    ws.send(JSON.stringify({ type: "ack", seq: 7 }));
    ws.send("{nope");
    ws.send(JSON.stringify({ type: "command", id: "cmd-12345678", command: { cmd: "reboot" } }));
    ws.send(JSON.stringify({ type: "desired", state: { scale: "C", intervalMs: 2000 } }));
    await expect.poll(() => received.length + invalid.length).toBe(4);
    expect(received).toEqual([
      { type: "ack", seq: 7 },
      { type: "desired", state: { scale: "C", intervalMs: 2000 } },
    ]);
    expect(invalid[0]).toMatch(/^\{nope \| frame is not valid JSON/);
    expect(invalid[1]).toMatch(/reboot/);
  });

  it("keeps retrying, with backoff, while tickets cannot be had, and connects once they can", async () => {
    const room = await fakeRoom();
    cleanups.push(room.close);
    const log = memoryLogger();
    let asked = 0;
    let opened = false;
    const link = new Link({
      url: room.url,
      ticket: async () => {
        if (++asked < 4) throw Object.assign(new Error("fetch failed"), { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) });
        return "finally";
      },
      heartbeatMs: 1000,
      backoff: { baseMs: 10, maxMs: 40, factor: 2 },
      log,
      onOpen: () => (opened = true),
      onClose: () => {},
      onMessage: () => {},
      onInvalid: () => {},
    });
    cleanups.push(() => link.close());
    await expect.poll(() => opened).toBe(true);
    expect(asked).toBe(4);
    expect(room.connections.map((c) => c.ticket)).toEqual(["finally"]);
    const failures = log.lines.filter((l) => l.startsWith(LINES.failure));
    expect(failures).toHaveLength(3);
    expect(failures[0]).toContain("ECONNREFUSED");
  });
});
