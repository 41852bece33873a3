/**
 * Fuzzing the socket and the REST bodies with random and mutated input:
 * wrong types, huge numbers, deep nesting, invalid UTF-8, oversize frames,
 * floods. The room must answer each with an error, keep serving the real
 * device and dashboards, store no garbage, and leave stored readings as they
 * were. Inputs are generated from a fixed seed, so a failure replays exactly.
 */
import { describe, expect, it } from "vitest";
import { CommandRequest, DashboardMessage, DeviceMessage, IotDataBody } from "../../party/protocol";
import { asAdmin, asDevice, call, connectDashboard, connectDevice, get, json, reading, register, uniqueId } from "./helpers";

/** mulberry32: small, seedable, good enough to pick mutations. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}
type Rng = ReturnType<typeof rng>;

const nest = (depth: number) => "[".repeat(depth) + "]".repeat(depth);
const HOSTILE_VALUES: readonly unknown[] = [
  null, true, false, 0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 2, Number.MIN_VALUE, "", "NaN", "Infinity",
  "x".repeat(5000), "\u0000", "\ud800", "F", "K", [], {}, [[[[]]]], { __proto__: { polluted: true } },
  { constructor: { prototype: { polluted: true } } }, "<script>alert(1)</script>", "'; DROP TABLE readings; --",
];

/** Replace, delete or add one field somewhere in a copy of `base`. */
function mutate(r: Rng, base: any): any {
  const copy = structuredClone(base);
  const paths: Array<[any, string | number]> = [];
  const walk = (node: any) => {
    if (node && typeof node === "object") {
      for (const k of Object.keys(node)) {
        paths.push([node, Array.isArray(node) ? Number(k) : k]);
        walk(node[k]);
      }
    }
  };
  walk(copy);
  const [parent, key] = paths.length ? r.pick(paths) : [copy, "x"];
  const op = r.int(3);
  if (op === 0) parent[key] = r.pick(HOSTILE_VALUES);
  else if (op === 1) delete parent[key];
  else parent[`extra${r.int(100)}`] = r.pick(HOSTILE_VALUES);
  return copy;
}

/** One hostile frame: a mutated message, garbage, truncated JSON, deep nesting, oversize, or binary. */
function hostileFrame(r: Rng, bases: any[]): string | ArrayBuffer {
  switch (r.int(8)) {
    case 0:
    case 1:
    case 2:
      return JSON.stringify(mutate(r, r.pick(bases)));
    case 3: {
      const text = JSON.stringify(r.pick(bases));
      return text.slice(0, r.int(text.length));
    }
    case 4:
      return Array.from({ length: r.int(200) + 1 }, () => String.fromCharCode(r.int(0xffff))).join("");
    case 5:
      return r.next() < 0.5 ? nest(r.int(20_000) + 1) : `{"type":"readings","readings":${nest(5000)}}`;
    case 6:
      return JSON.stringify({ type: "readings", readings: [reading(1)], pad: "x".repeat(70_000) });
    default: {
      // Binary frames, including bytes that are not valid UTF-8.
      const bytes = new Uint8Array(r.int(64) + 1).map(() => r.int(256));
      bytes[0] = 0xff;
      return bytes.buffer;
    }
  }
}

function isValid(schema: { safeParse(v: unknown): { success: boolean } }, frame: string | ArrayBuffer): boolean {
  if (typeof frame !== "string") return false;
  try {
    return schema.safeParse(JSON.parse(frame)).success;
  } catch {
    return false;
  }
}

describe("fuzz", () => {
  it("survives thousands of hostile frames from the device and dashboards and stores only the real readings", async () => {
    const r = rng(0x10ad);
    const id = uniqueId("fuzz");
    await register(id);
    const device = await connectDevice(id, { stream: "fuzz-stream-1" });
    const dashboards = [await connectDashboard(id), await connectDashboard(id)];
    const deviceBases = [
      { type: "hello", stream: "fuzz-stream-1", oldest: 1, state: { scale: "F", intervalMs: 1000, fw: "1.0.0", sensor: "tmp102" } },
      { type: "readings", readings: [reading(1), reading(2)] },
      { type: "result", id: "cmd-fuzz-0001", ok: true },
      { type: "report", state: { scale: "C", intervalMs: 500, fw: "1.0.0", sensor: "tmp102", sensorErrors: 0 } },
    ];
    const dashBases = [{ type: "command", id: "cmd-fuzz-0002", command: { cmd: "scale", scale: "C" } }];

    let sent = 0;
    let seq = 0;
    const rounds = 10;
    const perRound = 200;
    for (let round = 0; round < rounds; round++) {
      const deviceErrorsBefore = device.messages.filter((m) => m.type === "error").length;
      let hostile = 0;
      for (let i = 0; i < perRound; i++) {
        const frame = hostileFrame(r, deviceBases);
        if (isValid(DeviceMessage, frame)) continue; // a mutation that happens to be valid is not an attack
        device.ws.send(frame);
        hostile++;
        // The real device keeps streaming in between.
        if (i % 20 === 0) device.send({ type: "readings", readings: [reading(++seq)] });
      }
      sent += hostile;
      await device.next((m) => m.type === "ack" && m.seq === seq, 10_000);
      await device.next(() => device.messages.filter((m) => m.type === "error").length >= deviceErrorsBefore + hostile, 10_000);
      // Stay inside the room's frame budget (500/s, burst 1,000 in tests): the flood test covers going past it.
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (const d of dashboards) {
        for (let i = 0; i < 20; i++) {
          const frame = hostileFrame(r, dashBases);
          if (isValid(DashboardMessage, frame)) continue;
          d.ws.send(frame);
          sent++;
        }
      }
    }
    for (const d of dashboards) {
      await d.next((m) => m.type === "readings" && m.readings.some((x: any) => x.seq === seq), 10_000);
      const got = d.messages.filter((m) => m.type === "readings").flatMap((m) => m.readings.map((x: any) => x.seq));
      expect(got).toEqual(Array.from({ length: seq }, (_, i) => i + 1));
      expect(d.messages.filter((m) => m.type === "command-status")).toEqual([]);
    }
    const codes = new Set(device.messages.filter((m) => m.type === "error").map((m) => m.code));
    expect([...codes].every((c) => ["invalid_json", "invalid_message", "frame_too_large", "binary_unsupported"].includes(c))).toBe(true);
    expect(device.messages.some((m) => m.type === "error" && m.code === "internal")).toBe(false);

    const { readings } = await json(await get(`/api/devices/${id}/readings?limit=5000`));
    expect(readings).toEqual(Array.from({ length: seq }, (_, i) => reading(i + 1)));
    const state = await json(await get(`/api/devices/${id}`));
    expect(state).toMatchObject({ online: true, ackedSeq: seq, stored: seq, lost: 0, desired: { scale: "F" }, commands: [] });
    expect(state.reported).toEqual({ scale: "F", intervalMs: 1000, fw: "1.0.0", sensor: "simulated" });
    console.log(`fuzz: ${sent} hostile socket frames; ${seq} real readings stored, in order, nothing else`);
    expect(sent).toBeGreaterThan(1500);
  });

  it("refuses a flood with rate_limited, then closes the socket with 1008, and the room keeps serving", async () => {
    const id = uniqueId("flood");
    await register(id);
    const flooder = await connectDevice(id, { stream: "flood-stream-1" });
    const frame = "{}";
    const started = Date.now();
    for (let i = 0; i < 10_000 && flooder.ws.readyState === WebSocket.OPEN; i++) flooder.ws.send(frame);
    await flooder.next((m) => m.type === "error" && m.code === "rate_limited", 15_000);
    expect((await flooder.closed).code).toBe(1008);
    // Past its budget the flooder got one warning a second, not one reply per frame: the
    // bound follows the flood's own duration (a busy machine refills more of the budget).
    const seconds = (Date.now() - started) / 1000;
    const errors = flooder.messages.filter((m) => m.type === "error");
    expect(errors.filter((m) => m.code === "rate_limited").length).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    expect(errors.length).toBeLessThan(1_000 + 500 * seconds + Math.ceil(seconds) + 2); // FRAME_BURST + FRAME_RATE × s + warnings
    const device = await connectDevice(id, { stream: "flood-stream-1" });
    device.send({ type: "readings", readings: [reading(1)] });
    await device.next((m) => m.type === "ack" && m.seq === 1);
  });

  it("answers hostile REST bodies with 4xx JSON errors, never a 5xx, and writes nothing", async () => {
    const r = rng(0xbeef);
    const id = uniqueId("restfuzz");
    await register(id);
    const deviceAuth = await asDevice(id);
    const devicesBefore = (await json(await get("/api/devices"))).devices.length;
    const targets = [
      { path: "/iot/data", headers: deviceAuth, schema: IotDataBody, base: { readings: [reading(1)] } },
      { path: `/api/devices/${id}/commands`, headers: asAdmin, schema: CommandRequest, base: { cmd: "scale", scale: "C" } },
      { path: "/api/tickets", headers: asAdmin, schema: null, base: { device: id } },
      { path: "/api/devices", headers: asAdmin, schema: null, base: { id: "fuzz-new-device" } },
    ];
    let tried = 0;
    const statuses = new Map<number, number>();
    for (let i = 0; i < 600; i++) {
      const t = r.pick(targets);
      let body: BodyInit;
      const kind = r.int(5);
      if (kind === 0) body = new Uint8Array(r.int(100) + 1).map(() => 0x80 + r.int(128)); // invalid UTF-8
      else if (kind === 1) body = nest(r.int(50_000) + 1);
      else if (kind === 2) body = JSON.stringify(t.base).slice(0, r.int(JSON.stringify(t.base).length));
      else body = JSON.stringify(mutate(r, t.base));
      if (typeof body === "string" && t.schema && isValid(t.schema, body)) continue;
      if (typeof body === "string" && !t.schema && body.includes('"fuzz-new-device"') && !body.includes("extra")) continue;
      const res = await call(t.path, { method: "POST", headers: { "content-type": "application/json", ...t.headers }, body });
      tried++;
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      expect(res.status, `${t.path} ${String(body).slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      expect(res.status, `${t.path} ${String(body).slice(0, 200)}`).toBeLessThan(500);
      const err = await json(res);
      expect(typeof err.error.code).toBe("string");
    }
    expect((await json(await get(`/api/devices/${id}/readings`))).readings).toEqual([]);
    const state = await json(await get(`/api/devices/${id}`));
    expect(state.commands).toEqual([]);
    expect((await json(await get("/api/devices"))).devices.length).toBe(devicesBefore);
    console.log(`fuzz: ${tried} hostile REST bodies → ${JSON.stringify(Object.fromEntries(statuses))}`);
    expect(tried).toBeGreaterThan(400);
  });
});
