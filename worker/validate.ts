/**
 * Validators at the edge of each route, backed by the zod schemas in
 * party/protocol.ts and answering in the project's error shape. A handler only
 * ever sees data that passed its schema (`c.req.valid(target)`).
 */
import type { ValidationTargets } from "hono";
import { validator } from "hono/validator";
import type { z } from "zod";
import { describeIssues } from "../party/protocol";
import { ApiError } from "./errors";

/** Query, params or headers against a schema. */
export function validate<Target extends "query" | "param" | "header", Schema extends z.ZodType>(
  target: Target,
  schema: Schema,
) {
  return validator(target, (value) => check(schema, value));
}

/**
 * A JSON body against a schema. Reads the text itself (whatever the
 * Content-Type: old devices and shell scripts often omit it) so that a syntax
 * error gets a clear `invalid_json` rather than a generic 400.
 */
export function validateJson<Schema extends z.ZodType>(schema: Schema) {
  return validator("json" as keyof ValidationTargets, async (_value, c) => {
    const text = await c.req.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ApiError(400, "invalid_json", "body is not valid JSON");
    }
    return check(schema, json);
  });
}

function check<Schema extends z.ZodType>(schema: Schema, value: unknown): z.infer<Schema> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ApiError(400, "validation_failed", describeIssues(parsed.error));
  return parsed.data;
}
