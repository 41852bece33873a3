// The operator's side of the API for the CLI scripts (npm run accounts, npm run release):
// which endpoint, which token, one call with the endpoint's own error words, and how a
// script gives up. Each script names itself (`who`) so its messages say which one failed.
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseDevVars } from "./dev-vars.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Print `message` and exit 1. */
export function fail(message) {
  console.error(message);
  process.exit(1);
}

/** --endpoint, else IOT_ENDPOINT, else what `npm start` serves (PORT, 8787); no trailing slash. */
export function endpointUrl(flag) {
  return (flag || process.env.IOT_ENDPOINT || `http://127.0.0.1:${process.env.PORT || "8787"}`).replace(/\/+$/, "");
}

/** ADMIN_TOKEN from the environment, else from .dev.vars (DEV_VARS) as `npm start` wrote it. */
export function operatorToken(who) {
  if (process.env.ADMIN_TOKEN) return process.env.ADMIN_TOKEN;
  const file = resolve(root, process.env.DEV_VARS || ".dev.vars");
  if (!existsSync(file)) fail(`${who}: set ADMIN_TOKEN (an operator's token), or run npm start once so ${file} exists`);
  const token = parseDevVars(readFileSync(file, "utf8")).ADMIN_TOKEN;
  if (!token) fail(`${who}: no ADMIN_TOKEN in ${file}; set ADMIN_TOKEN`);
  return token;
}

/**
 * `api(method, path, body?, headers?)` as the operator: `body` JSON, or bytes sent as they are
 * with `headers` saying what they are. An error answer is printed as the endpoint worded it.
 * The token is asked for at the first call (`token`, default operatorToken(who)).
 */
export function operatorApi({ who, endpoint, timeoutMs, token = () => operatorToken(who) }) {
  return async function api(method, path, body, headers) {
    const raw = body instanceof Uint8Array;
    let res;
    try {
      res = await fetch(`${endpoint}${path}`, {
        method,
        headers: { authorization: `Bearer ${token()}`, ...(body !== undefined && !raw ? { "content-type": "application/json" } : {}), ...headers },
        body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      fail(`${who}: cannot reach ${endpoint} (${err.cause?.code ?? err.cause?.message ?? err.message}); is it running (npm start)? --endpoint URL picks another`);
    }
    const json = await res.json().catch(() => null);
    if (!res.ok) fail(`${who}: ${method} ${path}: ${res.status} ${json?.error?.message ?? "(no JSON answer: is this an IoT endpoint?)"}`);
    return json;
  };
}
