#!/usr/bin/env node
// `npm run accounts`: people who may sign in, their sessions, and the audit trail, through the
// endpoint's API as the operator (worker/routes/accounts.ts).
//
//   npm run accounts -- list
//   npm run accounts -- add <name> --role operator|viewer    prints the account's token, once
//   npm run accounts -- remove <name>                        its token and sessions stop at once
//   npm run accounts -- sessions                             everyone's live sessions
//   npm run accounts -- end-session <id>
//   npm run accounts -- audit [--limit N]                    the newest changes first
//
//   --endpoint URL   (or IOT_ENDPOINT) default http://127.0.0.1:$PORT (8787), as `npm start` serves it
//   ADMIN_TOKEN      an operator's token; default: ADMIN_TOKEN from .dev.vars (DEV_VARS), as npm start wrote it
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseDevVars } from "./lib/dev-vars.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const usage = `usage: npm run accounts -- list | add <name> --role operator|viewer | remove <name> | sessions | end-session <id> | audit [--limit N]
       [--endpoint URL] (default IOT_ENDPOINT, else http://127.0.0.1:$PORT); ADMIN_TOKEN from the environment or .dev.vars`;

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      role: { type: "string" },
      limit: { type: "string" },
      endpoint: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
} catch (err) {
  fail(`${err.message}\n${usage}`);
}
const [command, arg] = args.positionals;
if (args.values.help || !command) {
  console.log(usage);
  process.exit(command ? 0 : 1);
}

const endpoint = (args.values.endpoint || process.env.IOT_ENDPOINT || `http://127.0.0.1:${process.env.PORT || "8787"}`).replace(/\/+$/, "");
const token = process.env.ADMIN_TOKEN || adminTokenFromDevVars();

switch (command) {
  case "list": {
    const { accounts } = await api("GET", "/api/accounts");
    for (const a of accounts) {
      const origin = a.builtin ? `built-in: ${a.name === "admin" ? "ADMIN_TOKEN" : "VIEWER_TOKEN"} in the endpoint's secrets` : `added ${new Date(a.createdAt).toISOString()} by ${a.createdBy}`;
      console.log(`${a.name.padEnd(32)} ${a.role.padEnd(8)} ${origin}`);
    }
    break;
  }
  case "add": {
    if (!arg) fail(`add needs a name\n${usage}`);
    if (args.values.role !== "operator" && args.values.role !== "viewer") fail("add needs --role operator or --role viewer");
    const account = await api("POST", "/api/accounts", { name: arg, role: args.values.role });
    console.log(`added ${account.name} (${account.role}). Their token, shown this once (only its hash is kept):\n\n  ${account.token}\n`);
    console.log(`They sign in with it at ${endpoint}/ or send it as Authorization: Bearer. Lost? Remove the account and add it again.`);
    break;
  }
  case "remove": {
    if (!arg) fail(`remove needs a name\n${usage}`);
    const removed = await api("DELETE", `/api/accounts/${encodeURIComponent(arg)}`);
    console.log(`removed ${removed.name}; ${removed.sessionsEnded} session(s) ended`);
    break;
  }
  case "sessions": {
    const { sessions } = await api("GET", "/api/sessions");
    if (sessions.length === 0) console.log("no live sessions");
    for (const s of sessions) {
      console.log(`${s.id}  ${s.account.padEnd(20)} ${s.role.padEnd(8)} from ${s.address.padEnd(16)} last used ${new Date(s.lastUsed).toISOString()}  ${s.userAgent}`);
    }
    break;
  }
  case "end-session": {
    if (!arg) fail(`end-session needs a session id (see: npm run accounts -- sessions)\n${usage}`);
    const ended = await api("DELETE", `/api/sessions/${encodeURIComponent(arg)}`);
    console.log(`ended session ${ended.id} of ${ended.account}`);
    break;
  }
  case "audit": {
    const limit = args.values.limit ?? "50";
    const { entries, next } = await api("GET", `/api/audit?limit=${encodeURIComponent(limit)}`);
    for (const e of entries) {
      const detail = e.detail ? ` ${JSON.stringify(e.detail)}` : "";
      console.log(`${new Date(e.ts).toISOString()}  ${e.action.padEnd(16)} ${e.actor.padEnd(20)} from ${String(e.address ?? "?").padEnd(16)} ${e.target ?? ""}${detail}`);
    }
    if (next !== null) console.log(`… older entries: GET ${endpoint}/api/audit?cursor=${next}`);
    break;
  }
  default:
    fail(`unknown command ${command}\n${usage}`);
}

/** One API call as the operator; an error answer is printed as the endpoint worded it. */
async function api(method, path, body) {
  let res;
  try {
    res = await fetch(`${endpoint}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    fail(`accounts: cannot reach ${endpoint} (${err.cause?.code ?? err.cause?.message ?? err.message}); is it running (npm start)? --endpoint URL picks another`);
  }
  const json = await res.json().catch(() => null);
  if (!res.ok) fail(`accounts: ${method} ${path}: ${res.status} ${json?.error?.message ?? "(no JSON answer: is this an IoT endpoint?)"}`);
  return json;
}

function adminTokenFromDevVars() {
  const file = resolve(root, process.env.DEV_VARS || ".dev.vars");
  if (!existsSync(file)) fail(`accounts: set ADMIN_TOKEN (an operator's token), or run npm start once so ${file} exists`);
  const token = parseDevVars(readFileSync(file, "utf8")).ADMIN_TOKEN;
  if (!token) fail(`accounts: no ADMIN_TOKEN in ${file}; set ADMIN_TOKEN`);
  return token;
}

function fail(message) {
  console.error(message);
  process.exit(1);
}
