/**
 * One error shape for every route: `{error: {code, message}}` with the right
 * status. Handlers throw `ApiError`; `onError` turns it, Hono's own
 * HTTPExceptions (bad JSON, body too large) and anything unexpected into JSON,
 * and never shows a stack trace.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ApiError as ApiErrorBody } from "../party/protocol";

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function errorBody(code: string, message: string): ApiErrorBody {
  return { error: { code, message } };
}

export function onError(err: Error, c: Context): Response {
  if (err instanceof ApiError) return c.json(errorBody(err.code, err.message), err.status);
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    // Hono's JSON validator parses first when the Content-Type says JSON; same answer as ours.
    if (status === 400 && err.message.startsWith("Malformed JSON")) {
      return c.json(errorBody("invalid_json", "body is not valid JSON"), 400);
    }
    const code = status === 413 ? "payload_too_large" : status === 400 ? "bad_request" : "http_error";
    return c.json(errorBody(code, err.message || "request refused"), status);
  }
  console.error(`${c.req.method} ${new URL(c.req.url).pathname} failed:`, err);
  return c.json(errorBody("internal", "internal error"), 500);
}

export function notFound(c: Context): Response {
  return c.json(errorBody("not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`), 404);
}
