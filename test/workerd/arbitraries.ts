/**
 * fast-check arbitraries for hostile input, made from the protocol's own zod
 * schemas (party/protocol.ts, through z.toJSONSchema): a new message or field
 * is fuzzed the day it is added, with no generator to keep in step by hand.
 *
 * - `shaped(schema)`: values of the schema's shape (right keys, types, ranges,
 *   patterns), i.e. valid messages, to mutate from;
 * - `hostileText(schema)`: frames or bodies a client could send: a shaped value
 *   with one field replaced, removed or added, truncated JSON, random JSON,
 *   random text (lone surrogates included), deep nesting, long strings close
 *   to the frame limit, prototype-pollution keys;
 * - `hostileFrame(schema)`: the same, plus binary frames.
 * The caller drops what happens to be valid (`isValid`): a mutation may land on
 * a valid message, and sending that is not an attack.
 */
import fc from "fast-check";
import { z } from "zod";
import { LIMITS } from "../../party/protocol";

type JsonSchema = {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
};

/** Arrays in shaped values stay short: a fuzz input is about shape, the batch limit has its own tests. */
const MAX_SHAPED_ITEMS = 4;

function fromJsonSchema(s: JsonSchema): fc.Arbitrary<unknown> {
  if ("const" in s) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives) return fc.oneof(...alternatives.map(fromJsonSchema));
  switch (s.type) {
    case "object": {
      const props = Object.fromEntries(Object.entries(s.properties ?? {}).map(([k, v]) => [k, fromJsonSchema(v)]));
      return fc.record(props, { requiredKeys: s.required ?? [] });
    }
    case "array":
      return fc.array(s.items ? fromJsonSchema(s.items) : fc.anything(), {
        minLength: s.minItems ?? 0,
        maxLength: Math.max(s.minItems ?? 0, Math.min(s.maxItems ?? MAX_SHAPED_ITEMS, MAX_SHAPED_ITEMS)),
      });
    case "integer": {
      const min = s.minimum ?? Number.MIN_SAFE_INTEGER;
      const max = s.maximum ?? Number.MAX_SAFE_INTEGER;
      // fc.integer is 32-bit; seqs and timestamps reach 2^53: the ends and a spread between.
      if (max - min <= 2 ** 31) return fc.integer({ min, max });
      return fc.oneof(fc.constantFrom(min, max), fc.integer({ min, max: min + 2 ** 31 }), fc.maxSafeNat().map((n) => min + (n % (max - min))));
    }
    case "number":
      return fc.double({ min: s.minimum, max: s.maximum, noNaN: true, noDefaultInfinity: true });
    case "string":
      if (s.pattern) return fc.stringMatching(new RegExp(s.pattern));
      return fc.string({ minLength: s.minLength, maxLength: s.maxLength ?? 64 });
    case "boolean":
      return fc.boolean();
    case "null":
      return fc.constant(null);
    default:
      return fc.anything();
  }
}

/** Valid-shaped values of `schema`. */
export function shaped(schema: z.ZodType): fc.Arbitrary<unknown> {
  return fromJsonSchema(z.toJSONSchema(schema, { unrepresentable: "any" }) as JsonSchema);
}

/** Values that sit just outside what fields accept, and the classics. */
const EDGES: readonly unknown[] = [
  null, true, false, 0, -0, -1, 0.5, 1e308, -1e308, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), Number.MIN_VALUE, 9007199254739991,
  8_640_000_000_001, -101, 400.0001, 3_600_001, 99, "", " ", "NaN", "Infinity", "-0", "1e999", "F ", "f", "K", "\u0000",
  "\ud800", "\udfff", "\u202e", "\u001b[31m", "x".repeat(5000), [], {}, [[[[]]]], { __proto__: { polluted: true } },
  "<script>alert(1)</script>", "'; DROP TABLE readings; --", "../../etc/passwd", "%00", "hello", "readings",
];

/** A value to put where a field was: an edge, or anything at all. */
const anyValue: fc.Arbitrary<unknown> = fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...EDGES) }, { weight: 1, arbitrary: fc.anything() });

/** Every (parent, key) in a JSON value, in a fixed order, so an index picks one. */
function slots(root: unknown): Array<[Record<string | number, unknown>, string | number]> {
  const out: Array<[Record<string | number, unknown>, string | number]> = [];
  const walk = (node: unknown) => {
    if (node === null || typeof node !== "object") return;
    for (const key of Object.keys(node)) {
      out.push([node as Record<string, unknown>, Array.isArray(node) ? Number(key) : key]);
      walk((node as Record<string, unknown>)[key]);
    }
  };
  walk(root);
  return out;
}

/** One field replaced, removed or added somewhere in a valid-shaped value. */
function mutated(schema: z.ZodType): fc.Arbitrary<string> {
  return fc
    .tuple(shaped(schema), fc.nat(), fc.constantFrom("replace", "remove", "add"), anyValue, fc.string({ maxLength: 12 }))
    .map(([value, at, op, replacement, key]) => {
      const root = { value: structuredClone(value) };
      const all = slots(root);
      const [parent, slot] = all[at % all.length]!;
      if (op === "replace") parent[slot] = replacement;
      else if (op === "remove") delete parent[slot];
      else if (parent[slot] !== null && typeof parent[slot] === "object") (parent[slot] as Record<string, unknown>)[key || "extra"] = replacement;
      else parent[slot] = { [key || "extra"]: replacement };
      return JSON.stringify(root.value) ?? "undefined";
    });
}

/** Hostile text: mostly near misses of `schema`, the rest garbage of every kind. */
export function hostileText(schema: z.ZodType): fc.Arbitrary<string> {
  const valid = shaped(schema).map((v) => JSON.stringify(v));
  return fc.oneof(
    { weight: 10, arbitrary: mutated(schema) },
    { weight: 2, arbitrary: fc.tuple(valid, fc.nat()).map(([text, cut]) => text.slice(0, cut % Math.max(1, text.length))) },
    { weight: 2, arbitrary: fc.json() },
    { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 200 }) },
    // Deep, and unclosed: never closed, and (at ≤ 5 characters a level) still under the frame limit.
    { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1, max: 12_000 }), fc.constantFrom("[", "{\"a\":")).map(([depth, open]) => open.repeat(depth)) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 10_000 }).map((depth) => `{"type":"readings","readings":${"[".repeat(depth)}${"]".repeat(depth)}}`) },
    // Close to the frame limit and under it: parsed, and refused by the schema.
    {
      weight: 1,
      arbitrary: fc
        .tuple(valid, fc.double({ min: 0, max: 1, noNaN: true }))
        .map(([text, share]) => `${text.slice(0, -1)},"pad":"${"x".repeat(Math.floor(share * (LIMITS.maxFrameBytes - text.length - 16)))}"}`),
    },
    { weight: 1, arbitrary: valid.map((text) => text.replace("{", '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},')) },
  );
}

/** Hostile socket frames: hostile text, and binary frames (invalid UTF-8 included). */
export function hostileFrame(schema: z.ZodType): fc.Arbitrary<string | ArrayBuffer> {
  return fc.oneof(
    { weight: 19, arbitrary: hostileText(schema) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => Uint8Array.from([0xff, ...bytes]).buffer) },
  );
}

/**
 * fc.assert's parameters for a long run: one failure ends it (shrinking a stream of frames sent to
 * one live room mostly re-runs it), and the report is short — the seed and path replay it, and a
 * batch of frames near the 64 KB limit would otherwise print megabytes.
 */
export function runParameters(numRuns: number, seed: number): fc.Parameters<unknown> {
  return {
    numRuns,
    seed,
    endOnFailure: true,
    asyncReporter: async (run) => {
      if (!run.failed) return;
      const example = JSON.stringify(run.counterexample)?.slice(0, 2000);
      throw new Error(`fuzz failed (FUZZ_SEED=${run.seed}, path ${run.counterexamplePath}): ${String(run.errorInstance).slice(0, 2000)}\ncounterexample (cut): ${example}`);
    },
  };
}

/** Whether `input` is a valid `schema` message (such inputs are not sent: they are not attacks). */
export function isValid(schema: z.ZodType, input: string | ArrayBuffer): boolean {
  if (typeof input !== "string") return false;
  try {
    return schema.safeParse(JSON.parse(input)).success;
  } catch {
    return false;
  }
}
