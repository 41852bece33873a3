/**
 * Fuzzing the socket and the REST bodies with fast-check (test/workerd/arbitraries.ts): inputs
 * made from the protocol's own schemas, one field off (replaced, removed, added), truncated,
 * random JSON and text, deep nesting, near the frame limit, binary. The room must answer every
 * hostile frame with one error, every hostile body with a 4xx JSON error, while a real device
 * streams through it the whole time: at the end its history is exactly what it sent, gap-free,
 * every dashboard saw each reading once, acks only ever rose and reached the last seq, and
 * nothing else was stored, commanded, provisioned or reported.
 *
 * FUZZ_RUNS (default 4,000) is how many hostile inputs: three quarters socket frames, a quarter
 * bodies; FUZZ_SEED replays a run (the seed is printed). vitest.config.ts passes both in:
 *   FUZZ_RUNS=100000 npx vitest run --project workerd test/workerd/fuzz.test.ts
 */
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { AccountCreateRequest, BatchingRequest, CommandRequest, DashboardMessage, DeviceId, DeviceMessage, IotDataBody, PING } from "../../party/protocol";
import { hostileFrame, hostileText, isValid, runParameters } from "./arbitraries";
import { asAdmin, asDevice, asViewer, call, connectDashboard, connectDevice, get, json, reading, register, uniqueId, type Client } from "./helpers";

const fuzzEnv = env as unknown as { FUZZ_RUNS?: string; FUZZ_SEED?: string };
const RUNS = positive(fuzzEnv.FUZZ_RUNS, 4_000, "FUZZ_RUNS");
const SEED = positive(fuzzEnv.FUZZ_SEED, 0x10ad, "FUZZ_SEED");
const FRAMES = Math.round(RUNS * 0.75);
const BODIES = RUNS - FRAMES;

function positive(value: string | undefined, fallback: number, name: string): number {
  if (!value) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * Hostile frames per round: to the device socket, and to each dashboard. A round waits for every
 * answer, and lasts at least as long as the room's frame budget needs to pay for it (the test
 * Worker's FRAME_RATE is 500/s; 400/s leaves room): frames refused as rate_limited test nothing.
 */
const DEVICE_PER_ROUND = 40;
const DASHBOARD_PER_ROUND = 30;
const FRAMES_PER_SECOND = 400;
/** A real reading every this many hostile device frames… */
const REAL_EVERY = 10;
/**
 * …but no more than this many in all: the test Worker keeps 1,000 readings (RETAIN_READINGS), and the
 * history compared at the end must be all of them. A long run spreads them out (one every few rounds).
 */
const MAX_REAL = 900;
/** /iot/data is limited to 120 requests a minute per device: each pool device takes this many. */
const BODIES_PER_DEVICE = 100;

const errorsOf = (c: Client) => c.messages.filter((m) => m.type === "error").length;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("fuzz", () => {
  it(`answers ${FRAMES} hostile socket frames and ${BODIES} hostile REST bodies with errors while a real device streams, and stores only its readings`, async () => {
    const started = Date.now();
    const id = uniqueId("fuzz");
    await register(id);
    const device = await connectDevice(id, { stream: "fuzz-stream-1" });
    const reported = (await json(await get(`/api/devices/${id}`))).reported;
    const accountsBefore = (await json(await get("/api/accounts"))).accounts;
    const devicesBefore = (await json(await get("/api/devices?limit=500"))).devices.length;
    const dashboards = [
      await connectDashboard(id),
      await connectDashboard(id),
      await connectDashboard(id, asViewer),
      await connectDashboard(id, asViewer),
    ];
    const sockets = [device, ...dashboards];
    let seq = 0;

    // Where hostile bodies go: each route's body schema, and who may call it.
    const pool: Array<Record<string, string>> = [await asDevice(id)];
    let iotBodies = 0;
    const targets: Array<{ method: string; path: string; schema: z.ZodType; headers: () => Promise<Record<string, string>> }> = [
      {
        method: "POST",
        path: "/iot/data",
        schema: IotDataBody,
        headers: async () => {
          const n = Math.floor(iotBodies++ / BODIES_PER_DEVICE);
          while (pool.length <= n) pool.push(await asDevice(uniqueId("fuzzpool")));
          return pool[n]!;
        },
      },
      { method: "POST", path: `/api/devices/${id}/commands`, schema: CommandRequest, headers: async () => asAdmin },
      { method: "PUT", path: `/api/devices/${id}/batching`, schema: BatchingRequest, headers: async () => asAdmin },
      // The provisioning route's body (worker/routes/api.ts): the protocol's DeviceId in an object.
      { method: "POST", path: "/api/devices", schema: z.strictObject({ id: DeviceId }), headers: async () => asAdmin },
      { method: "POST", path: "/api/accounts", schema: AccountCreateRequest, headers: async () => asAdmin },
    ];
    const body = fc.nat(targets.length - 1).chain((target) =>
      fc.record({
        target: fc.constant(target),
        payload: fc.oneof(
          { weight: 19, arbitrary: hostileText(targets[target]!.schema) },
          // Bytes that are not UTF-8 at all.
          { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 100 }).map((b) => b.map((x) => 0x80 | x)) },
        ),
        contentType: fc.constantFrom("application/json", "text/plain", "application/x-www-form-urlencoded", null),
      }),
    );
    let address = 0;
    /** A fresh client address per request: the per-address limit must not answer for the parser. */
    const nextAddress = () => `10.${(address >> 16) & 255}.${(address >> 8) & 255}.${address++ & 255}`;

    // One round: hostile frames to every socket (real readings among the device's), then hostile
    // bodies, then every frame's answer. One loop, not two running side by side: workerd runs
    // timers only when the isolate has nothing else to do, so a concurrent request loop starved
    // the device's heartbeat timer and the room closed it as half-open.
    const rounds = Math.ceil(FRAMES / (DEVICE_PER_ROUND + DASHBOARD_PER_ROUND * dashboards.length));
    const bodiesPerRound = Math.ceil(BODIES / rounds);
    const realEvery = Math.max(REAL_EVERY, Math.ceil((rounds * DEVICE_PER_ROUND) / MAX_REAL));
    let deviceFrames = 0;
    const round = fc.record({
      device: fc.array(hostileFrame(DeviceMessage), { minLength: DEVICE_PER_ROUND, maxLength: DEVICE_PER_ROUND }),
      dashboards: fc.array(fc.array(hostileFrame(DashboardMessage), { minLength: DASHBOARD_PER_ROUND, maxLength: DASHBOARD_PER_ROUND }), {
        minLength: dashboards.length,
        maxLength: dashboards.length,
      }),
      bodies: fc.array(body, { minLength: bodiesPerRound, maxLength: bodiesPerRound }),
    });
    let framesSent = 0;
    let bodiesSent = 0;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(round, async (batch) => {
        const roundStarted = Date.now();
        // The agent's heartbeat (the test Worker's time-out is 900 ms; a round is far shorter).
        device.ws.send(PING);
        const expected = sockets.map(errorsOf);
        batch.device.forEach((frame) => {
          if (deviceFrames++ % realEvery === 0) device.send({ type: "readings", readings: [reading(++seq)] });
          if (isValid(DeviceMessage, frame)) return; // a mutation that landed on a valid message is not an attack
          device.ws.send(frame);
          expected[0]!++;
          framesSent++;
        });
        batch.dashboards.forEach((list, d) => {
          for (const frame of list) {
            if (isValid(DashboardMessage, frame)) continue;
            dashboards[d]!.ws.send(frame);
            expected[d + 1]!++;
            framesSent++;
          }
        });
        for (const { target, payload, contentType } of batch.bodies) {
          const t = targets[target]!;
          if (typeof payload === "string" && isValid(t.schema, payload)) continue;
          const headers: Record<string, string> = { ...(await t.headers()), "cf-connecting-ip": nextAddress() };
          if (contentType) headers["content-type"] = contentType;
          const res = await call(t.path, { method: t.method, headers, body: payload });
          bodiesSent++;
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          const what = `${t.method} ${t.path} ${String(payload).slice(0, 200)}`;
          expect(res.status, what).toBeGreaterThanOrEqual(400);
          expect(res.status, what).toBeLessThan(500);
          expect(typeof (await json(res)).error.code, what).toBe("string");
        }
        // One error answer per hostile frame, on every socket.
        await Promise.all(sockets.map((c, i) => c.next(() => errorsOf(c) >= expected[i]!, 15_000)));
        sockets.forEach((c, i) => expect(errorsOf(c)).toBe(expected[i]));
        await sleep(Math.max(0, (1000 * DEVICE_PER_ROUND) / FRAMES_PER_SECOND - (Date.now() - roundStarted)));
      }),
      runParameters(rounds, SEED),
    );

    // ---- what the real device and its watchers got -------------------------------------------
    device.send({ type: "flush" });
    await device.next((m) => m.type === "ack" && m.seq === seq, 15_000);
    const acks = device.messages.filter((m) => m.type === "ack").map((m) => m.seq);
    expect(acks.every((a, i) => i === 0 || a >= acks[i - 1]!)).toBe(true);
    expect(Math.max(...acks)).toBe(seq);
    const everything = Array.from({ length: seq }, (_, i) => i + 1);
    for (const d of dashboards) {
      await d.next((m) => m.type === "readings" && m.readings.some((r: { seq: number }) => r.seq === seq), 15_000);
      expect(d.messages.filter((m) => m.type === "readings").flatMap((m) => m.readings.map((r: { seq: number }) => r.seq))).toEqual(everything);
      expect(d.messages.filter((m) => m.type === "command-status")).toEqual([]);
    }
    const codes = new Set([device, ...dashboards].flatMap((c) => c.messages.filter((m) => m.type === "error").map((m) => m.code)));
    for (const code of codes) expect(["invalid_json", "invalid_message", "binary_unsupported"]).toContain(code);

    const stored: unknown[] = [];
    for (let page: unknown[] = [null]; page.length > 0; stored.push(...page)) {
      page = (await json(await get(`/api/devices/${id}/readings?limit=5000&after=${stored.length}`))).readings;
    }
    expect(stored).toEqual(everything.map((n) => reading(n)));
    const state = await json(await get(`/api/devices/${id}`));
    expect(state).toMatchObject({ online: true, ackedSeq: seq, stored: seq, lost: 0, desired: { scale: "F", intervalMs: 1000 }, commands: [] });
    expect(state.reported).toEqual(reported);
    expect((await json(await get("/api/devices?limit=500"))).devices.length).toBe(devicesBefore + pool.length - 1);
    expect((await json(await get("/api/accounts"))).accounts).toEqual(accountsBefore);
    console.log(
      `fuzz (seed ${SEED}): ${framesSent} hostile frames, ${bodiesSent} hostile bodies ${JSON.stringify(Object.fromEntries(statuses))}; ` +
        `${seq} real readings stored gap-free, nothing else; ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    expect(framesSent).toBeGreaterThan(FRAMES * 0.9);
    expect(bodiesSent).toBeGreaterThan(BODIES * 0.9);
  }, 60_000 + RUNS * 10);

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

});
