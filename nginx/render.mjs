#!/usr/bin/env node
// Renders the proxy config outside a container, the way the official nginx
// image's entrypoint does inside one: every nginx/templates/*.template goes to
// <out>/conf.d/ with its ${NAME} placeholders filled (only the names below;
// nginx's own $variables stay), and nginx/nginx.conf goes to <out>. The TLS
// server is left out when its certificate or key is missing; with TLS on, the
// HTTP server redirects to it unless PLAIN_HTTP=1: the rules
// nginx/tls-if-certs.sh applies in compose.
//
//   node nginx/render.mjs --out DIR [NAME=value ...]
//   nginx -p DIR -c DIR/nginx.conf -e stderr
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const NGINX_DIR = dirname(fileURLToPath(import.meta.url));
export const TEMPLATES_DIR = join(NGINX_DIR, "templates");

/** Every placeholder the templates use, with the value for a host run (compose sets its own). */
export const DEFAULTS = {
  UPSTREAM: "127.0.0.1:8787",
  HTTP_LISTEN: "8080",
  HTTPS_LISTEN: "8443",
  TLS_CERT: join(NGINX_DIR, "certs/cert.pem"),
  TLS_KEY: join(NGINX_DIR, "certs/key.pem"),
  SOCKET_READ_TIMEOUT: "3600s",
  HTTPS_REDIRECT: "https://$host:8443",
  // Relative to nginx's prefix (-p): the rendered directory.
  ACCESS_LOG: "access.log",
};

/**
 * Not a placeholder: whether the HTTP server proxies ("1") or sends everything to
 * https ("0", the default when TLS is on), as PLAIN_HTTP tells nginx/tls-if-certs.sh.
 */
export const SWITCHES = { PLAIN_HTTP: "0" };

/** envsubst restricted to `vars`: `${NAME}` and `$NAME` for those names only. Throws on a name it lacks. */
export function renderTemplate(text, vars) {
  const out = text.replace(/\$\{([A-Z][A-Z0-9_]*)\}|\$([A-Z][A-Z0-9_]*)/g, (whole, braced, bare) => {
    const name = braced ?? bare;
    if (!(name in vars)) throw new Error(`template uses $${name}, which is not one of ${Object.keys(vars).join(", ")}`);
    return String(vars[name]);
  });
  return out;
}

/**
 * Write nginx.conf and conf.d/ into `out`. Returns the files written and
 * whether the TLS server is in.
 */
export function renderConfig(out, overrides = {}) {
  const { PLAIN_HTTP = SWITCHES.PLAIN_HTTP, ...rest } = overrides;
  const vars = { ...DEFAULTS, ...rest };
  const tls = existsSync(vars.TLS_CERT) && existsSync(vars.TLS_KEY);
  // Plain HTTP proxies only without TLS, or when asked; otherwise it redirects to https.
  const plain = !tls || PLAIN_HTTP === "1";
  const skip = new Set([...(tls ? [] : ["tls.conf.template"]), plain ? "http-redirect.conf.template" : "http.conf.template"]);
  mkdirSync(join(out, "conf.d"), { recursive: true });
  copyFileSync(join(NGINX_DIR, "nginx.conf"), join(out, "nginx.conf"));
  const files = [join(out, "nginx.conf")];
  for (const name of readdirSync(TEMPLATES_DIR).filter((f) => f.endsWith(".template")).sort()) {
    if (skip.has(name)) continue;
    const target = join(out, "conf.d", name.slice(0, -".template".length));
    writeFileSync(target, renderTemplate(readFileSync(join(TEMPLATES_DIR, name), "utf8"), vars));
    files.push(target);
  }
  return { files, tls, plain, vars };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf("--out");
  if (at < 0 || !args[at + 1]) {
    console.error("usage: node nginx/render.mjs --out DIR [NAME=value ...]");
    process.exit(2);
  }
  const out = resolve(args[at + 1]);
  const overrides = {};
  for (const arg of args.filter((_, i) => i !== at && i !== at + 1)) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(arg);
    if (!m || !(m[1] in DEFAULTS || m[1] in SWITCHES)) {
      console.error(`nginx/render.mjs: expected NAME=value with NAME one of ${[...Object.keys(DEFAULTS), ...Object.keys(SWITCHES)].join(", ")}; got ${arg}`);
      process.exit(2);
    }
    overrides[m[1]] = m[2];
  }
  const { files, tls, plain } = renderConfig(out, overrides);
  console.log(`nginx: wrote ${files.length} files to ${out}${tls ? (plain ? " (TLS, and plain HTTP as asked)" : " (TLS; plain HTTP redirects to it)") : " (no certificate: HTTP only)"}`);
  console.log(`run: nginx -p ${out} -c ${join(out, "nginx.conf")} -e stderr`);
}
