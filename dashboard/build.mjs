// Builds the dashboard into dashboard/dist, which the Worker serves as static assets.
// dist is generated (git-ignored): `npm start`, `npm test` and deploy all run this first.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
cpSync(join(here, "index.html"), join(dist, "index.html"));
console.log("dashboard: built dashboard/dist");
