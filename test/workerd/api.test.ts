import { describe, expect, it, vi } from "vitest";
import { asAdmin, asDevice, call, connect, connectDevice, get, json, postJson, reading, register, reportedState, uniqueId } from "./helpers";

describe("GET /api/devices", () => {
  it("lists registered devices with their presence", async () => {
    const a = uniqueId();
    const b = uniqueId();
    await register(a, "10.0.0.1");
    await register(b, "10.0.0.2");
    const res = await get("/api/devices?limit=500");
    expect(res.status).toBe(200);
    const { devices } = await json(res);
    expect(devices.filter((d: any) => d.id === a || d.id === b).map((d: any) => [d.id, d.ip, d.online])).toEqual([
      [a, "10.0.0.1", false],
      [b, "10.0.0.2", false],
    ]);
  });
});

describe("GET /api/devices: temperature and scale", () => {
  it("never pairs a new scale with a reading taken in the old one", async () => {
    const id = uniqueId();
    await register(id);
    const device = await connectDevice(id);
    device.send({ type: "readings", readings: [reading(1, 70.5, "F")] });
    await device.next((m) => m.type === "ack" && m.seq === 1);
    const fleetEntry = async () => (await json(await get(`/api/devices?q=${id}`))).devices.find((d: any) => d.id === id);
    await vi.waitFor(async () => expect(await fleetEntry()).toMatchObject({ temperature: 70.5, scale: "F" }));
    // The operator switches to °C; the device applies it and reports C before its next reading.
    const { id: cmdId } = await json(await postJson(`/api/devices/${id}/commands`, { cmd: "scale", scale: "C" }, asAdmin));
    await device.next((m) => m.type === "command" && m.id === cmdId);
    device.send({ type: "result", id: cmdId, ok: true, state: reportedState({ scale: "C", fw: "1.0.1" }) });
    // The registry has heard the report (its firmware shows) and still pairs 70.5 with °F.
    await vi.waitFor(async () => expect(await fleetEntry()).toMatchObject({ fw: "1.0.1" }));
    expect(await fleetEntry()).toMatchObject({ temperature: 70.5, scale: "F" });
    // The first reading in °C brings both along.
    device.send({ type: "readings", readings: [reading(2, 21.4, "C")] });
    await device.next((m) => m.type === "ack" && m.seq === 2);
    await vi.waitFor(async () => expect(await fleetEntry()).toMatchObject({ temperature: 21.4, scale: "C" }));
  });
});

describe("GET /api/devices/:id", () => {
  it("answers the room's state", async () => {
    const id = uniqueId();
    await register(id);
    const state = await json(await get(`/api/devices/${id}`));
    expect(state).toEqual({
      id,
      online: false,
      lastSeen: null,
      desired: { scale: "F", intervalMs: 1000 },
      reported: null,
      ackedSeq: 0,
      lost: 0,
      stored: 0,
      commands: [],
    });
  });

  it("answers 404 unknown_device for a device nobody registered", async () => {
    const res = await get(`/api/devices/${uniqueId("ghost")}`);
    expect(res.status).toBe(404);
    expect((await json(res)).error.code).toBe("unknown_device");
  });

  it("answers 400 for an id that is not a device id", async () => {
    const res = await get("/api/devices/bad%20id");
    expect(res.status).toBe(400);
  });
});

describe("GET /api/devices/:id/readings", () => {
  async function seeded(n: number): Promise<string> {
    const id = uniqueId();
    await register(id);
    const readings = Array.from({ length: n }, (_, i) => reading(i + 1));
    await postJson("/iot/data", { readings }, await asDevice(id));
    return id;
  }

  it("pages through readings in seq order with after and limit", async () => {
    const id = await seeded(10);
    const first = await json(await get(`/api/devices/${id}/readings?limit=4`));
    expect(first.readings.map((r: any) => r.seq)).toEqual([1, 2, 3, 4]);
    const next = await json(await get(`/api/devices/${id}/readings?after=4&limit=4`));
    expect(next.readings.map((r: any) => r.seq)).toEqual([5, 6, 7, 8]);
  });

  it("filters by time with since", async () => {
    const id = await seeded(10);
    const since = reading(7).ts;
    const { readings } = await json(await get(`/api/devices/${id}/readings?since=${since}`));
    expect(readings.map((r: any) => r.seq)).toEqual([7, 8, 9, 10]);
  });

  it.each(["limit=0", "limit=5001", "limit=abc", "after=-1", "after=1.5", "bogus=1"])("refuses ?%s with 400", async (q) => {
    const id = await seeded(1);
    const res = await get(`/api/devices/${id}/readings?${q}`);
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe("validation_failed");
  });
});

describe("POST /api/devices/:id/commands", () => {
  it("accepts a scale command and answers its id and status", async () => {
    const id = uniqueId();
    await register(id);
    const res = await postJson(`/api/devices/${id}/commands`, { cmd: "scale", scale: "C" }, asAdmin);
    expect(res.status).toBe(202);
    const record = await json(res);
    expect(record).toMatchObject({ id: expect.any(String), status: "queued", command: { cmd: "scale", scale: "C" } });
  });

  it("is idempotent by command id", async () => {
    const id = uniqueId();
    await register(id);
    const first = await json(await postJson(`/api/devices/${id}/commands`, { id: "same-id-123", cmd: "scale", scale: "C" }, asAdmin));
    const again = await json(await postJson(`/api/devices/${id}/commands`, { id: "same-id-123", cmd: "scale", scale: "F" }, asAdmin));
    expect(again).toEqual(first);
    expect((await json(await get(`/api/devices/${id}`))).desired.scale).toBe("C");
  });

  it.each([
    ["an unknown command", { cmd: "reboot" }],
    ["an unknown scale", { cmd: "scale", scale: "K" }],
    ["a missing scale", { cmd: "scale" }],
    ["a too-short interval", { cmd: "interval", intervalMs: 5 }],
    ["a bad command id", { id: "x", cmd: "scale", scale: "C" }],
  ])("refuses %s with 400", async (_name, body) => {
    const id = uniqueId();
    await register(id);
    const res = await postJson(`/api/devices/${id}/commands`, body, asAdmin);
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe("validation_failed");
  });

  it("refuses bad JSON, an oversized body, and an unknown device", async () => {
    const id = uniqueId();
    await register(id);
    expect((await postJson(`/api/devices/${id}/commands`, "{", asAdmin)).status).toBe(400);
    expect((await postJson(`/api/devices/${id}/commands`, { cmd: "scale", scale: "C", pad: "x".repeat(20_000) }, asAdmin)).status).toBe(413);
    const ghost = await postJson(`/api/devices/${uniqueId("ghost")}/commands`, { cmd: "scale", scale: "C" }, asAdmin);
    expect(ghost.status).toBe(404);
  });
});

describe("sockets", () => {
  it("refuses a plain GET on a socket path with 426", async () => {
    const res = await call(`/parties/device/${uniqueId()}`);
    expect(res.status).toBe(426);
    expect((await json(res)).error.code).toBe("upgrade_required");
  });

  it("refuses an upgrade without a ticket with 401", async () => {
    const res = await call(`/parties/device/${uniqueId()}`, { headers: { Upgrade: "websocket" } });
    expect(res.status).toBe(401);
    expect((await json(res)).error.code).toBe("ticket_required");
  });

  it("refuses a forged or another room's ticket", async () => {
    const a = uniqueId();
    const b = uniqueId();
    await register(a);
    await register(b);
    const { ticket } = await json(await postJson("/api/tickets", { device: a, role: "dashboard" }, asAdmin));
    const wrongRoom = await call(`/parties/device/${b}?ticket=${ticket}`, { headers: { Upgrade: "websocket" } });
    expect(wrongRoom.status).toBe(403);
    const [body, mac] = ticket.split(".");
    const forged = `${body.slice(0, -2)}AA.${mac}`;
    const bad = await call(`/parties/device/${a}?ticket=${forged}`, { headers: { Upgrade: "websocket" } });
    expect(bad.status).toBe(401);
    expect((await json(bad)).error.code).toBe("bad_ticket");
  });
});

describe("unknown routes", () => {
  it("answers JSON 404", async () => {
    const res = await get("/api/nope");
    expect(res.status).toBe(404);
    expect((await json(res)).error.code).toBe("not_found");
  });
});

describe("heartbeats", () => {
  it("answers a dashboard's ping in a device room", async () => {
    const id = uniqueId();
    await register(id);
    const { ticket: t2, path: p2 } = await json(await postJson("/api/tickets", { device: id }, asAdmin));
    const dash = await connect(`${p2}?ticket=${t2}`);
    dash.send('{"type":"ping"}');
    await dash.next((m) => m.type === "pong");
  });
});
