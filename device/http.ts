/**
 * Every REST call the agent makes to the endpoint, in one place, so
 * authentication is added once: with a token configured (`--token` /
 * IOT_TOKEN, `<id>.<secret>` provisioned by an operator) each request carries
 * `Authorization: Bearer <token>`. Answers are validated against
 * party/protocol.ts; an error answer becomes an `EndpointError` carrying the
 * endpoint's `{error: {code, message}}`.
 */
import {
  ApiError,
  DeviceTokenResponse,
  IotConfigResponse,
  RevokeResponse,
  IotUpdateResponse,
  TicketResponse,
  describeIssues,
  type Reading,
} from "../party/protocol.ts";
import type { z } from "zod";

/** A REST call that takes longer than this is treated as failed (and retried by its caller). */
const REQUEST_TIMEOUT_MS = 10_000;

export class EndpointError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(`${status} ${code}: ${message}`);
    this.name = "EndpointError";
    this.status = status;
    this.code = code;
  }
}

export type EndpointClientOptions = {
  /** e.g. http://localhost:8787 or https://iot.example.com */
  endpoint: URL;
  id: string;
  /** LAN IPv4 address, sent as x-iot-ip. */
  ip: string;
  token?: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
};

export class EndpointClient {
  readonly endpoint: URL;
  readonly id: string;
  readonly ip: string;
  #token: string | undefined;
  #fetch: typeof fetch;
  #timeoutMs: number;

  constructor(opts: EndpointClientOptions) {
    this.endpoint = opts.endpoint;
    this.id = opts.id;
    this.ip = opts.ip;
    this.#token = opts.token;
    this.#fetch = opts.fetch ?? fetch;
    this.#timeoutMs = opts.timeoutMs ?? REQUEST_TIMEOUT_MS;
  }

  /** `GET /iot/config`: registration; answers the device's configuration. */
  config(): Promise<IotConfigResponse> {
    return this.#call("GET", "/iot/config", IotConfigResponse);
  }

  /** `POST /api/tickets`: a 60-second ticket to open the device's socket. */
  ticket(): Promise<TicketResponse> {
    return this.#call("POST", "/api/tickets", TicketResponse, { device: this.id, role: "device" });
  }

  /** `GET /iot/update?version=`: the firmware check. */
  update(version: string): Promise<IotUpdateResponse> {
    return this.#call("GET", `/iot/update?version=${encodeURIComponent(version)}`, IotUpdateResponse);
  }

  /** `POST /iot/data` with the legacy loopback body `{iot: ts}`, or a batch of readings. */
  postData(body: { iot: number | string } | { readings: Reading[] }): Promise<unknown> {
    return this.#call("POST", "/iot/data", null, body);
  }

  // Operator calls (the client's token is then the operator's): the CLI's provision / rotate / revoke.

  /** `POST /api/devices`: credentials for `id`; its token is in the answer, this once. */
  provision(id: string): Promise<DeviceTokenResponse> {
    return this.#call("POST", "/api/devices", DeviceTokenResponse, { id });
  }

  rotate(id: string): Promise<DeviceTokenResponse> {
    return this.#call("POST", `/api/devices/${encodeURIComponent(id)}/rotate`, DeviceTokenResponse, {});
  }

  revoke(id: string): Promise<z.infer<typeof RevokeResponse>> {
    return this.#call("POST", `/api/devices/${encodeURIComponent(id)}/revoke`, RevokeResponse, {});
  }

  /** ws:// or wss:// URL of a socket path on this endpoint (keeps a path prefix the endpoint URL has). */
  socketUrl(path: string): URL {
    const url = new URL(this.endpoint);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.pathname = `${url.pathname.replace(/\/+$/, "")}${path}`;
    url.search = "";
    return url;
  }

  headers(): Record<string, string> {
    const headers: Record<string, string> = { "x-iot-ip": this.ip, "x-iot-id": this.id, accept: "application/json" };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    return headers;
  }

  async #call<T extends z.ZodType | null>(
    method: "GET" | "POST",
    path: string,
    schema: T,
    body?: unknown,
  ): Promise<T extends z.ZodType ? z.infer<T> : unknown> {
    const url = new URL(`${this.endpoint.pathname.replace(/\/+$/, "")}${path}`, this.endpoint);
    const headers = this.headers();
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await this.#fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      // fetch's "fetch failed" hides the reason in its cause: name the URL and the cause.
      throw new Error(`cannot reach ${url.origin}: ${unreachableReason(err)}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      // An HTML page (a wrong path, a web server that is not the endpoint) is one line here, not the page.
      const kind = /^\s*</.test(text) ? "an HTML page" : text ? `"${text.replace(/\s+/g, " ").slice(0, 80)}"` : "nothing";
      throw new EndpointError(res.status, "not_json", `${method} ${url.href} answered ${kind}: not an IoT endpoint (check --endpoint / IOT_ENDPOINT)`);
    }
    if (!res.ok) {
      const err = ApiError.safeParse(json);
      if (err.success) throw new EndpointError(res.status, err.data.error.code, err.data.error.message);
      throw new EndpointError(res.status, "http_error", `${method} ${path} answered ${text.slice(0, 200)}`);
    }
    if (schema === null) return json as never;
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new EndpointError(res.status, "bad_answer", `${method} ${path}: ${describeIssues(parsed.error)}`);
    return parsed.data as never;
  }
}

/** The useful part of a failed fetch: ECONNREFUSED, ENOTFOUND <host>, a TLS error, a time-out. */
function unreachableReason(err: unknown): string {
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) return "no answer (timed out)";
  const cause = err instanceof Error ? (err.cause as (Error & { code?: string; hostname?: string }) | undefined) : undefined;
  if (cause?.code === "ENOTFOUND") return `ENOTFOUND: no such host ${cause.hostname ?? ""}`.trim();
  if (cause?.code) return `${cause.code}${cause.message && !cause.message.includes(cause.code) ? `: ${cause.message}` : ""}`;
  if (cause?.message) return cause.message;
  return err instanceof Error ? err.message : String(err);
}
