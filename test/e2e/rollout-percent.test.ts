/**
 * Issue 15: "a 10 % rollout picks the same devices every time and no others", on the real
 * endpoint (Miniflare direct, as `npm start` runs it) with 50 provisioned devices. Which devices a
 * rollout means a release for is asked both ways a client can: the operator's
 * `GET /api/devices/:id/firmware` and each device's own `GET /iot/update` with its token, twice.
 * The expected set is computed here, independently of party/releases.ts, from the rule
 * docs/updates.md states: the first 32 bits of SHA-256(`<rollout id>:<device id>`) as a number in
 * [0, 100), below 10. (test/workerd/releases.test.ts checks that rule's function on 2,000 ids;
 * this checks that the endpoint's answers follow it, device by device.)
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import type { DeviceFirmware, IotUpdateResponse, Rollout } from "../../party/protocol.ts";
import { EndpointClient } from "../support/client.ts";
import { startEndpoint, type Endpoint } from "../support/endpoint.ts";
import { publishRelease } from "../support/releases.ts";

const DEVICES = Array.from({ length: 50 }, (_, i) => `pct-${String(i).padStart(2, "0")}`);
const VERSION = "3.0.0";

let ep: Endpoint;
let client: EndpointClient;

beforeAll(async () => {
  // Rooms read the rollouts afresh on every question, so nothing here waits for a cached plan to age.
  ep = await startEndpoint({ direct: true, vars: { FIRMWARE_CHECK_MS: "0", LOG_READINGS: "false" } });
  client = new EndpointClient(ep.url, ep.adminToken);
  const { privateKey } = generateKeyPairSync("ed25519");
  await publishRelease({ url: ep.url, adminToken: ep.adminToken, privateKey, version: VERSION, notes: "percent test" });
  for (const id of DEVICES) await client.token(id);
}, 180_000);

afterAll(async () => {
  await ep?.close();
});

/** The rule from docs/updates.md, written again here. */
function bucket(rolloutId: string, deviceId: string): number {
  return (createHash("sha256").update(`${rolloutId}:${deviceId}`).digest().readUInt32BE(0) / 2 ** 32) * 100;
}

async function rollout(body: Record<string, unknown>): Promise<Rollout> {
  const res = await client.admin("/api/rollouts", { method: "POST", json: body });
  if (res.status !== 201) throw new Error(`rollout: ${res.status} ${res.text}`);
  return res.json<Rollout>();
}

/** Devices the operator's firmware view says the rollout targets. */
async function chosenByFirmware(rolloutId: string): Promise<string[]> {
  const chosen: string[] = [];
  for (const id of DEVICES) {
    const fw = await client.json<DeviceFirmware>(`/api/devices/${id}/firmware`);
    if (fw.target) {
      expect(fw.target).toEqual({ version: VERSION, rollout: rolloutId });
      chosen.push(id);
    }
  }
  return chosen;
}

/** Devices that, asking for themselves as a legacy caller, are offered the release. */
async function chosenByIotUpdate(): Promise<string[]> {
  const chosen: string[] = [];
  for (const id of DEVICES) {
    const res = await client.device(id, "/iot/update?version=1.0.0");
    expect(res.status).toBe(200);
    const answer = res.json<IotUpdateResponse>();
    if (answer.update?.version === VERSION) {
      expect(answer.update).toMatchObject({ url: `/iot/releases/${VERSION}`, signature: expect.stringMatching(/^[A-Za-z0-9_-]{86}$/) });
      chosen.push(id);
    } else {
      // Not in the rollout: the endpoint's own answer, as before rollouts existed (FIRMWARE_VERSION is 1.0.0).
      expect(answer).toEqual({ message: "IoT Update", current: "1.0.0", update: null });
    }
  }
  return chosen;
}

describe("a percentage rollout over the real endpoint", () => {
  it("a 10 % rollout of 50 devices picks the devices its hash says, the same on every query, and no others", async () => {
    onTestFailed(() => console.error(ep.proc?.tail(60)));
    // A rollout's ids are random; 0.9^50 ≈ 0.5 % of them pick nobody, which would prove nothing: cancel and try again.
    let r: Rollout | null = null;
    let expected: string[] = [];
    for (let attempt = 0; attempt < 5 && expected.length === 0; attempt++) {
      if (r) expect((await client.admin(`/api/rollouts/${r.id}/cancel`, { method: "POST" })).status).toBe(200);
      r = await rollout({ release: VERSION, target: { percent: 10 } });
      expected = DEVICES.filter((id) => bucket(r!.id, id) < 10);
    }
    expect(expected.length).toBeGreaterThan(0);
    expect(expected.length).toBeLessThan(DEVICES.length);

    const first = await chosenByFirmware(r!.id);
    expect(first).toEqual(expected);
    expect(await chosenByIotUpdate()).toEqual(expected);
    // Again: nothing about the answer depends on when or how often it is asked.
    expect(await chosenByFirmware(r!.id)).toEqual(expected);
    expect(await chosenByIotUpdate()).toEqual(expected);
  });
});
