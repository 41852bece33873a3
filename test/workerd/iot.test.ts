import { describe, expect, it } from "vitest";
import { LIMITS } from "../../party/protocol";
import { asAdmin, asDevice, call, get, json, postJson, reading, register, uniqueId } from "./helpers";

/** A provisioned device's headers, for a test that needs one device. */
async function device(): Promise<{ id: string; auth: Record<string, string> }> {
  const id = uniqueId();
  return { id, auth: await asDevice(id) };
}

describe("GET /iot/config", () => {
  it("registers the device and answers the legacy fields plus its configuration", async () => {
    const { id, auth } = await device();
    const before = Date.now();
    const res = await call("/iot/config", { headers: { "x-iot-ip": "192.168.1.19", ...auth } });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({
      message: "IoT Configuration",
      iotip: "192.168.1.19",
      id,
      config: { scale: "F", intervalMs: 1000, heartbeatMs: 300, socketPath: `/parties/device/${id}`, fw: "1.0.0" },
    });
    expect(body.ts).toBeGreaterThanOrEqual(before);
    const { devices } = await json(await get("/api/devices"));
    expect(devices.find((d: any) => d.id === id)).toMatchObject({ id, ip: "192.168.1.19", online: false });
  });

  it("accepts an x-iot-id that agrees with the token, and refuses one that does not", async () => {
    const { id, auth } = await device();
    expect((await call("/iot/config", { headers: { "x-iot-ip": "10.1.2.3", "x-iot-id": id, ...auth } })).status).toBe(200);
    const other = await call("/iot/config", { headers: { "x-iot-ip": "10.1.2.3", "x-iot-id": "someone-else", ...auth } });
    expect(other.status).toBe(403);
    expect((await json(other)).error.code).toBe("wrong_device");
  });

  it("answers the desired scale after a command changed it", async () => {
    const id = uniqueId();
    await register(id);
    await postJson(`/api/devices/${id}/commands`, { cmd: "scale", scale: "C" }, asAdmin);
    expect((await register(id)).config.scale).toBe("C");
  });

  it("refuses a missing x-iot-ip with 400 missing_header", async () => {
    const { auth } = await device();
    const res = await call("/iot/config", { headers: auth });
    expect(res.status).toBe(400);
    expect(await json(res)).toEqual({ error: { code: "missing_header", message: expect.stringContaining("x-iot-ip") } });
  });

  it.each(["999.1.1.1", "192.168.1", "hello", "192.168.1.19; DROP TABLE"])("refuses a garbled x-iot-ip %j with 400", async (ip) => {
    const { auth } = await device();
    const res = await call("/iot/config", { headers: { "x-iot-ip": ip, ...auth } });
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe("validation_failed");
  });

  it("refuses an x-iot-id that is not a safe name", async () => {
    const { auth } = await device();
    const res = await call("/iot/config", { headers: { "x-iot-ip": "10.0.0.1", "x-iot-id": "../../etc", ...auth } });
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe("validation_failed");
  });
});

describe("GET /iot/update", () => {
  it("answers the current firmware and no update for a current device", async () => {
    const { auth } = await device();
    const res = await get("/iot/update?version=1.0.0", auth);
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ message: "IoT Update", current: "1.0.0", update: null });
  });

  it("offers the current firmware to an older device", async () => {
    const { auth } = await device();
    expect((await json(await get("/iot/update?version=0.9.12", auth))).update).toEqual({ version: "1.0.0", url: null });
  });

  it("answers the current version when asked without one", async () => {
    const { auth } = await device();
    expect(await json(await get("/iot/update", auth))).toEqual({ message: "IoT Update", current: "1.0.0", update: null });
  });

  it("refuses a version that is not MAJOR.MINOR.PATCH", async () => {
    const { auth } = await device();
    const res = await get("/iot/update?version=latest", auth);
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe("validation_failed");
  });
});

describe("POST /iot/data", () => {
  it("answers the legacy loopback body as the old endpoint did", async () => {
    const { auth } = await device();
    const res = await postJson("/iot/data", { iot: 1739129986136 }, auth);
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ message: "POST loopback 1739129986136" });
  });

  it("accepts a body without a Content-Type, as old shell scripts send it", async () => {
    const { auth } = await device();
    const res = await call("/iot/data", { method: "POST", body: '{"iot":"abc"}', headers: auth });
    expect(await json(res)).toEqual({ message: "POST loopback abc" });
  });

  it("stores a batch of readings the same way the socket does", async () => {
    const id = uniqueId();
    await register(id);
    const res = await postJson("/iot/data", { readings: [reading(1), reading(2), reading(2), reading(4)] }, await asDevice(id));
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ stored: 3, ackedSeq: 2 });
    const { readings } = await json(await get(`/api/devices/${id}/readings`));
    expect(readings).toEqual([reading(1), reading(2), reading(4)]);
  });

  it("refuses bad JSON with 400 invalid_json", async () => {
    const { auth } = await device();
    const res = await postJson("/iot/data", "{iot: 1", auth);
    expect(res.status).toBe(400);
    expect(await json(res)).toEqual({ error: { code: "invalid_json", message: "body is not valid JSON" } });
  });

  it.each([
    ["an object as iot", { iot: { nested: true } }],
    ["an extra key", { iot: 1, extra: 2 }],
    ["an empty batch", { readings: [] }],
    ["a reading with a string seq", { readings: [{ ...reading(1), seq: "1" }] }],
    ["a reading with an unknown scale", { readings: [{ ...reading(1), scale: "K" }] }],
    ["a reading out of the sensor's range", { readings: [{ ...reading(1), temperature: 9999 }] }],
    ["an array", [1, 2, 3]],
  ])("refuses %s with 400 validation_failed", async (_name, body) => {
    const { auth } = await device();
    const res = await postJson("/iot/data", body, auth);
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe("validation_failed");
  });

  it("refuses a batch larger than the limit", async () => {
    const { auth } = await device();
    const readings = Array.from({ length: LIMITS.maxBatch + 1 }, (_, i) => reading(i + 1));
    const res = await postJson("/iot/data", { readings }, auth);
    expect(res.status).toBe(400);
  });

  it("refuses an oversized body with 413 before parsing it", async () => {
    const { auth } = await device();
    const res = await postJson("/iot/data", { iot: "x".repeat(LIMITS.maxBodyBytes + 10) }, auth);
    expect(res.status).toBe(413);
    expect((await json(res)).error.code).toBe("payload_too_large");
  });
});
