/**
 * The plain `ws` relay a user might write instead of the hub: devices connect
 * to /device/<id>, dashboards to /dashboard/<id>, and every device frame goes
 * verbatim to that id's dashboards. No storage, no acks, no auth: the floor a
 * relay costs. Run as its own process by the benchmark: `node relay.mjs PORT`.
 */
import { WebSocketServer, type WebSocket } from "ws";

const port = Number(process.argv[2] ?? 0);
const dashboards = new Map<string, Set<WebSocket>>();
const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });

wss.on("connection", (ws, req) => {
  const [, role, id] = (req.url ?? "").split("/");
  if (!id || (role !== "device" && role !== "dashboard")) return ws.close(1008, "path: /device/<id> or /dashboard/<id>");
  if (role === "dashboard") {
    let set = dashboards.get(id);
    if (!set) dashboards.set(id, (set = new Set()));
    set.add(ws);
    ws.on("close", () => set.delete(ws));
    return;
  }
  ws.on("message", (data, isBinary) => {
    for (const d of dashboards.get(id) ?? []) d.send(data, { binary: isBinary });
  });
});
wss.on("listening", () => console.log(`relay listening on ${(wss.address() as { port: number }).port}`));
