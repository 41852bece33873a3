/**
 * A CPU profile of the Worker's isolate (the Worker and its Durable Objects)
 * through the DevTools inspector wrangler dev exposes (`--inspector-port`),
 * and a summary of where the time went: self time by function.
 */
import { writeFileSync } from "node:fs";
import WebSocket from "ws";

type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] };
type Profile = { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };

export class Profiler {
  #ws: WebSocket;
  #next = 1;
  #pending = new Map<number, (result: unknown) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on("message", (data) => {
      const msg = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
      if (msg.id !== undefined) this.#pending.get(msg.id)?.(msg.error ? Promise.reject(new Error(msg.error.message)) : msg.result);
    });
  }

  /** Attach to the first target the inspector lists (wrangler dev lists the user Worker). */
  static async attach(inspectorPort: number): Promise<Profiler> {
    const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as { webSocketDebuggerUrl: string }[];
    const url = targets[0]?.webSocketDebuggerUrl;
    if (!url) throw new Error(`no inspector target on port ${inspectorPort}`);
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    const p = new Profiler(ws);
    await p.call("Profiler.enable");
    await p.call("Profiler.setSamplingInterval", { interval: 200 });
    return p;
  }

  call(method: string, params: object = {}): Promise<any> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, (r) => Promise.resolve(r).then(resolve, reject));
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  start(): Promise<void> {
    return this.call("Profiler.start");
  }

  /** Stop, write the .cpuprofile (open it in Chrome DevTools), and return the top functions by self time. */
  async stop(file: string, top = 20): Promise<string> {
    const { profile } = (await this.call("Profiler.stop")) as { profile: Profile };
    writeFileSync(file, JSON.stringify(profile));
    return summarize(profile, top);
  }

  close(): void {
    this.#ws.close();
  }
}

/** Self time by function, and total time (itself and what it called) for the project's own functions. */
export function summarize(profile: Profile, top: number): string {
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (n: Node) => {
    const f = n.callFrame;
    const file = f.url.split("/").slice(-2).join("/");
    return `${f.functionName || "(anonymous)"} ${file}${file ? `:${f.lineNumber + 1}` : ""}`;
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const n = byNode.get(id);
    if (!n) return;
    const key = keyOf(n);
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const node = byNode.get(at)!;
      const fn = node.callFrame.functionName;
      // Named functions of the bundle (the Worker, the rooms, the libraries): where "(anonymous)" native time comes from.
      if (!fn || !node.callFrame.url) continue;
      const k = keyOf(node);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
  });
  const idle = self.get("(idle) ") ?? 0;
  const rows = [...self.entries()].filter(([k]) => !k.startsWith("(idle)")).sort((a, b) => b[1] - a[1]).slice(0, top);
  const busy = total - idle;
  return [
    `busy ${(busy / 1000).toFixed(0)} ms of ${(total / 1000).toFixed(0)} ms sampled`,
    ...rows.map(([k, us]) => `${((us / busy) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(1).padStart(8)} ms  ${k}`),
    "total time (self and callees), the bundle's named functions:",
    ...[...inclusive.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => `${((us / busy) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(1).padStart(8)} ms  ${k}`),
  ].join("\n");
}
