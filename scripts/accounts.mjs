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
import { parseArgs } from "node:util";
import { endpointUrl, fail, operatorApi, operatorToken } from "./lib/operator-api.mjs";

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

const endpoint = endpointUrl(args.values.endpoint);
const token = operatorToken("accounts");
const api = operatorApi({ who: "accounts", endpoint, timeoutMs: 10_000, token: () => token });

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
