/**
 * The sharded fleet registry (party/fleet.ts, docs/fleet.md): which shard
 * holds a device, pages of `GET /api/devices` merged from every shard, search,
 * the presence filter and its counts, and rooms' pushes landing in the right shard.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { DEFAULT_FLEET_SHARDS, fleetFor, fleetShards, fnv1a, shardOf } from "../../party/fleet";
import { asAdmin, call, connectDevice, get, json, postJson, provision, reading, register, uniqueId } from "./helpers";

type Page = { devices: { id: string; online: boolean; temperature: number | null; scale: string | null; spark: number[] }[]; next: string | null; total: number };

async function page(query: string): Promise<Page> {
  const res = await get(`/api/devices?${query}`);
  expect(res.status, await res.clone().text()).toBe(200);
  return json<Page>(res);
}

/** Every page of a query, following `next` until it is null. */
async function allPages(query: string, limit: number): Promise<Page[]> {
  const pages: Page[] = [];
  let cursor: string | null = null;
  do {
    const p = await page(`${query}&limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    pages.push(p);
    cursor = p.next;
  } while (cursor !== null && pages.length < 100);
  return pages;
}

describe("shard choice", () => {
  it("hashes with FNV-1a, so a device's shard never changes between releases or runtimes", () => {
    // The published FNV-1a 32-bit test vectors.
    expect(fnv1a("")).toBe(0x811c9dc5);
    expect(fnv1a("a")).toBe(0xe40c292c);
    expect(fnv1a("foobar")).toBe(0xbf9cf968);
    expect(shardOf("pi-kitchen", 16)).toBe(fnv1a("pi-kitchen") % 16);
    expect(fleetFor(env, "pi-kitchen").id.equals(env.FLEET.idFromName(`shard-${shardOf("pi-kitchen", 16)}`))).toBe(true);
  });

  it("spreads 1,000 similar ids over 16 shards: none empty, none over twice the mean", () => {
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < 1000; i++) counts[shardOf(`pi-${String(i).padStart(4, "0")}`, 16)]!++;
    expect(Math.min(...counts)).toBeGreaterThan(0);
    expect(Math.max(...counts)).toBeLessThanOrEqual((2 * 1000) / 16);
  });

  it("reads FLEET_SHARDS once, defaulting to 16 and refusing nonsense", () => {
    expect(fleetShards(env)).toBe(16);
    expect(fleetShards({ ...env, FLEET_SHARDS: "" })).toBe(DEFAULT_FLEET_SHARDS);
    expect(fleetShards({ ...env, FLEET_SHARDS: "4" })).toBe(4);
    for (const bad of ["0", "-1", "2.5", "abc", "257"]) {
      expect(() => fleetShards({ ...env, FLEET_SHARDS: bad }), bad).toThrow(/FLEET_SHARDS/);
    }
  });
});

describe("GET /api/devices: pages", () => {
  it("returns every device exactly once across pages, in id order, with the total on each page", async () => {
    const prefix = uniqueId("page");
    const ids = Array.from({ length: 23 }, (_, i) => `${prefix}-${String(i).padStart(2, "0")}`);
    for (const id of ids) await provision(id);
    const pages = await allPages(`q=${prefix}`, 5);
    expect(pages.map((p) => p.devices.length)).toEqual([5, 5, 5, 5, 3]);
    expect(pages.flatMap((p) => p.devices.map((d) => d.id))).toEqual(ids);
    for (const p of pages) expect(p.total).toBe(23);
    expect(pages.at(-1)!.next).toBeNull();
  });

  it("pages the whole fleet too, and its total counts each device once however often it was updated", async () => {
    const id = uniqueId("busy");
    await register(id);
    // Pushes as a room makes them (an update of a known device must not count it again).
    const patch = { online: true, lastSeen: Date.now(), ip: null, fw: "1.0.0", scale: "F" as const, temperature: 70, readingTs: Date.now(), lastSeq: 1, alerts: 0 };
    for (let seq = 1; seq <= 3; seq++) await fleetFor(env, id).update(id, { ...patch, lastSeq: seq, online: seq !== 2 });
    const pages = await allPages("", 7);
    const seen = pages.flatMap((p) => p.devices.map((d) => d.id));
    expect(seen).toContain(id);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...seen].sort());
    expect(pages[0]!.total).toBe(seen.length);
  });

  it("keeps a sparkline in each row: one point a minute of reading time, the last 24, afresh on a change of unit (issue 14)", async () => {
    const id = uniqueId("spark");
    await register(id);
    const shard = fleetFor(env, id);
    const t0 = 1_739_129_986_136;
    const push = (minutes: number, temperature: number, scale: "F" | "C" = "F") =>
      shard.update(id, { online: true, lastSeen: t0, ip: null, fw: null, scale, temperature, readingTs: t0 + minutes * 60_000, lastSeq: 1, alerts: 0 });
    await push(0, 70);
    // Pushes within the minute move the latest reading but add no point.
    await push(0.25, 71);
    await push(0.5, -12.34);
    await push(1, -12.34);
    expect((await shard.get(id))!.spark).toEqual([70, -12.3]);
    expect((await shard.get(id))!.temperature).toBe(-12.34);
    // A push without a reading (presence) keeps the line as it is.
    await shard.update(id, { online: false, lastSeen: t0, ip: null, fw: null, scale: null, temperature: null, readingTs: null, lastSeq: null, alerts: 0 });
    expect((await shard.get(id))!.spark).toEqual([70, -12.3]);
    for (let m = 2; m < 40; m++) await push(m, 300 + m);
    const long = (await shard.get(id))!.spark;
    expect(long).toHaveLength(24);
    expect(long.at(-1)).toBe(339);
    expect(long[0]).toBe(316);
    await push(41, 21.5, "C");
    expect((await shard.get(id))!.spark).toEqual([21.5]);
    // The page carries it as it is.
    const listed = (await page(`q=${id}`)).devices[0]!;
    expect(listed.spark).toEqual([21.5]);
  });

  it("finds ids containing the search text, in any case", async () => {
    const prefix = uniqueId("find");
    for (const name of ["kitchen-1", "kitchen-2", "garage-1"]) await provision(`${prefix}-${name}`);
    const kitchens = await page(`q=${prefix.toUpperCase()}-KITCHEN`);
    expect(kitchens.devices.map((d) => d.id)).toEqual([`${prefix}-kitchen-1`, `${prefix}-kitchen-2`]);
    expect(kitchens.total).toBe(2);
    // A substring from the middle works, and `_`/`.` are plain characters, not wildcards.
    expect((await page(`q=${prefix}-garage`)).devices.map((d) => d.id)).toEqual([`${prefix}-garage-1`]);
    expect((await page(`q=${prefix}_garage`)).total).toBe(0);
  });

  it("filters by presence and keeps the online count as devices come and go", async () => {
    const prefix = uniqueId("pres");
    const [a, b] = [`${prefix}-a`, `${prefix}-b`];
    await register(a);
    await register(b);
    const onlineBefore = (await page("online=true")).total;
    const device = await connectDevice(a);
    await vi.waitFor(async () => expect((await page(`q=${prefix}&online=true`)).devices.map((d) => d.id)).toEqual([a]));
    expect((await page(`q=${prefix}&online=false`)).devices.map((d) => d.id)).toEqual([b]);
    // Without a search the totals come from the shards' counts rows.
    expect((await page("online=true")).total).toBe(onlineBefore + 1);
    const all = await page("limit=500");
    expect((await page("online=false")).total).toBe(all.total - onlineBefore - 1);
    device.close();
    await vi.waitFor(async () => expect((await page("online=true")).total).toBe(onlineBefore));
    expect((await page(`q=${prefix}&online=false`)).total).toBe(2);
  });

  it.each(["limit=0", "limit=501", "limit=abc", "cursor=bad%20id", "q=no%20spaces", "online=yes", "bogus=1"])(
    "refuses ?%s with 400",
    async (q) => {
      const res = await get(`/api/devices?${q}`);
      expect(res.status).toBe(400);
      expect((await json(res)).error.code).toBe("validation_failed");
    },
  );

  it("takes limit=500 and answers the legacy shape's devices key", async () => {
    const body = await page("limit=500");
    expect(Array.isArray(body.devices)).toBe(true);
    expect(body.devices.length).toBeLessThanOrEqual(500);
  });
});

describe("rooms and shards", () => {
  it("lands a streaming device's reading in its own shard, and the list shows it", async () => {
    const id = uniqueId("stream");
    await register(id);
    const device = await connectDevice(id);
    device.send({ type: "readings", readings: [reading(1, 71.25, "F")] });
    await vi.waitFor(async () => expect(await fleetFor(env, id).get(id)).toMatchObject({ temperature: 71.25, scale: "F", online: true }), {
      timeout: 10_000,
    });
    expect((await page(`q=${id}`)).devices).toMatchObject([{ id, temperature: 71.25, scale: "F", online: true }]);
    // No other shard knows it.
    const others = Array.from({ length: 16 }, (_, i) => i).filter((i) => i !== shardOf(id, 16));
    for (const i of others) expect(await env.FLEET.getByName(`shard-${i}`).get(id)).toBeNull();
    device.close();
  });
});

describe("the fleet socket is gone", () => {
  it("answers a fleet ticket with 410 and the old socket path with 404", async () => {
    const res = await postJson("/api/tickets", { fleet: true }, asAdmin);
    expect(res.status).toBe(410);
    expect((await json(res)).error.code).toBe("gone");
    expect((await call("/parties/fleet/main", { headers: { Upgrade: "websocket" } })).status).toBe(404);
  });
});
