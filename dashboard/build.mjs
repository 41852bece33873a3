// Builds the dashboard into dashboard/dist, which the Worker serves as static assets.
// dist is generated (git-ignored): `npm start`, `npm test` and deploy all run this first.
//
// One esbuild bundle (src/main.ts with its CSS, uPlot's included) under content-hashed
// names, so a deploy never mixes an old script with a new page and the assets can be
// cached for good; index.html (never cached by name) points at them.
import { build } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const result = await build({
  entryPoints: [join(here, "src/main.ts")],
  bundle: true,
  format: "esm",
  // Browsers of the last few years: top-level await, private fields, ?? — no down-levelling needed.
  target: ["es2022", "chrome109", "firefox115", "safari16"],
  minify: true,
  sourcemap: "linked",
  outdir: join(dist, "assets"),
  entryNames: "[name]-[hash]",
  metafile: true,
  legalComments: "none",
  logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).filter((f) => !f.endsWith(".map"));
const js = outputs.find((f) => f.endsWith(".js"));
const css = outputs.find((f) => f.endsWith(".css"));
if (!js || !css) throw new Error(`dashboard: expected one .js and one .css output, got ${outputs.join(", ")}`);

const rel = (file) => relative(dist, file).split("\\").join("/");
const html = readFileSync(join(here, "index.html"), "utf8").replace("{{js}}", rel(js)).replace("{{css}}", rel(css));
writeFileSync(join(dist, "index.html"), html);
// Security headers on every asset (Workers static assets read `_headers`; the Worker's own
// routes set theirs in code). The page loads only its own script and style, talks only to its
// own origin (REST and wss), and may not be framed.
writeFileSync(
  join(dist, "_headers"),
  [
    "/*",
    "  Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
    "  X-Content-Type-Options: nosniff",
    "  X-Frame-Options: DENY",
    "  Referrer-Policy: no-referrer",
    "",
  ].join("\n"),
);

let total = 0;
const sizes = [join(dist, "index.html"), js, css].map((file) => {
  const bytes = readFileSync(file);
  const gz = gzipSync(bytes, { level: 9 }).length;
  total += gz;
  return `${basename(file)} ${(bytes.length / 1024).toFixed(1)} KB (${(gz / 1024).toFixed(1)} KB gzip)`;
});
console.log(`dashboard: built dashboard/dist: ${sizes.join(", ")}; ${(total / 1024).toFixed(1)} KB gzip in all`);
