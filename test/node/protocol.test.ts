/**
 * The room's quick check of `readings` frames (parseDeviceFrame) against the
 * schema it stands in for: over thousands of generated frames, valid and
 * broken in every field, it accepts exactly what zod accepts, with the same
 * value, and leaves every refusal (and its message) to zod.
 */
import { describe, expect, it } from "vitest";
import { DeviceMessage, LIMITS, parseDeviceFrame, parseFrame } from "../../party/protocol";

/** A small seeded PRNG (mulberry32): the same frames on every run. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = rng(20261130);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;

const oddValues: unknown[] = [
  0, -1, 1, 1.5, -0, 2 ** 53, 2 ** 53 - 1, 1e308, -1e308, "1", "F", "C", "f", null, true, [], {}, [1], { seq: 1 },
  LIMITS.minTemperature, LIMITS.maxTemperature, LIMITS.minTemperature - 0.001, LIMITS.maxTemperature + 0.001,
  8_640_000_000_000, 8_640_000_000_001,
];

function goodReading(seq: number): Record<string, unknown> {
  return { seq, ts: 1_764_500_000_000 + seq, temperature: Math.round((random() * 200 - 50) * 100) / 100, scale: pick(["F", "C"]) };
}

/** A frame, maybe broken in one place: a field's value, a key too many or too few, the batch size, the type. */
function frame(): string {
  const n = random() < 0.05 ? pick([0, LIMITS.maxBatch, LIMITS.maxBatch + 1]) : 1 + Math.floor(random() * 5);
  const readings: unknown[] = Array.from({ length: n }, (_, i) => goodReading(i + 1));
  const body: Record<string, unknown> = { type: "readings", readings };
  const roll = random();
  if (roll < 0.3 && n > 0) {
    const r = readings[Math.floor(random() * n)] as Record<string, unknown>;
    r[pick(["seq", "ts", "temperature", "scale"])] = pick(oddValues);
  } else if (roll < 0.4 && n > 0) {
    const r = readings[Math.floor(random() * n)] as Record<string, unknown>;
    if (random() < 0.5) delete r[pick(["seq", "ts", "temperature", "scale"])];
    else r[pick(["extra", "__proto__", "Seq"])] = 1;
  } else if (roll < 0.45) {
    body[pick(["extra", "id"])] = "x";
  } else if (roll < 0.5) {
    readings[Math.floor(random() * Math.max(n, 1))] = pick(oddValues);
  } else if (roll < 0.55) {
    body.readings = pick(oddValues);
  }
  let text = JSON.stringify(body);
  // JSON the quick check must not be fooled by: a literal __proto__ key, numbers JSON.stringify would not write.
  if (random() < 0.03) text = text.replace('"seq":1,', '"seq":1,"__proto__":{"x":1},');
  if (random() < 0.03) text = text.replace(/"temperature":[^,]+/, '"temperature":1e400');
  if (random() < 0.02) text = text.replace('"type":"readings"', '"type":"readings","type":"report"');
  return text;
}

describe("parseDeviceFrame", () => {
  it("accepts exactly the readings frames the schema accepts, with the same value, over 20,000 generated frames", () => {
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      const text = frame();
      const quick = parseDeviceFrame(text);
      const schema = parseFrame(DeviceMessage, text);
      expect({ text, ok: quick.ok }).toEqual({ text, ok: schema.ok });
      if (quick.ok && schema.ok) {
        expect(quick.value).toEqual(schema.value);
        accepted++;
      } else if (!quick.ok && !schema.ok) {
        expect(quick.error).toEqual(schema.error);
        refused++;
      }
    }
    // Both kinds in quantity, or the comparison proves little.
    expect(accepted).toBeGreaterThan(5_000);
    expect(refused).toBeGreaterThan(5_000);
  });

  it("leaves the other device frames, binary frames and oversized frames to the schema", () => {
    const hello = JSON.stringify({ type: "hello", stream: "stream-0001", oldest: 1, state: { scale: "F", intervalMs: 1000, fw: "1.0.0", sensor: "sim" } });
    expect(parseDeviceFrame(hello)).toEqual(parseFrame(DeviceMessage, hello));
    expect(parseDeviceFrame(hello).ok).toBe(true);
    const binary = new Uint8Array([123, 125]);
    expect(parseDeviceFrame(binary)).toEqual(parseFrame(DeviceMessage, binary));
    const big = JSON.stringify({ type: "readings", readings: [goodReading(1)], pad: "x".repeat(LIMITS.maxFrameBytes) });
    expect(parseDeviceFrame(big)).toMatchObject({ ok: false, error: { code: "frame_too_large" } });
  });
});
