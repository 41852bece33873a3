/**
 * Issue 15, item 4: over-the-air updates in the dashboard, in Debian's Chromium against the real
 * endpoint (Miniflare, R2 on disk). A release is published through the API as `npm run release`
 * does (a signed manifest and an artifact, multipart); a device speaks the room's protocol from
 * this process, so the test decides which update steps it reports and when.
 *
 *  1. the operator reaches Updates from the header, sees the release, starts a rollout to two
 *     listed devices from the form (a bad stage list is named first, nothing sent), and sees it
 *     listed with its devices counted: both not started, then one downloading;
 *  2. the device page's firmware panel says what the device runs, what it is meant to run, and
 *     the download's progress; then the failure and its reason, also on the rollout with counts;
 *  3. the operator pauses, resumes and cancels the rollout from the page;
 *  4. a viewer sees the same rollout and release and no control to change them.
 * The Updates page asks only for /api/rollouts and /api/releases, never per device.
 * Screenshots in test/artifacts/updates-*.png.
 */
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, type Page } from "playwright-core";
import { bounded, launchChromium } from "../support/browser";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PING } from "../../party/protocol";
import { EndpointClient, helloDevice, type SocketClient } from "../support/client";
import { startEndpoint, type Endpoint } from "../support/endpoint";
import { ROOT } from "../support/processes";
import { publishRelease } from "../support/releases";

const ARTIFACTS = resolve(dirname(fileURLToPath(import.meta.url)), "../artifacts");
const DEVICE = "pi-ota-1";
/** Named in the rollout, provisioned, never connected: counted as not started. */
const SILENT = "pi-ota-2";
const VERSION = "2.0.0";
/** Upper bounds on a busy two-core machine, never expectations. */
const SOON = 15_000;

let endpoint: Endpoint;
let operator: EndpointClient;
let browser: Browser;
let device: SocketClient | undefined;
let pinger: ReturnType<typeof setInterval> | undefined;
const contexts: BrowserContext[] = [];

/** The fleet's release key for this run; the endpoint checks uploads against its public half. */
const keys = generateKeyPairSync("ed25519");
const publicKey = keys.publicKey.export({ format: "jwk" }).x!;

async function newPage(token: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  contexts.push(context);
  const res = await context.request.post(`${endpoint.url}/api/login`, { data: { token } });
  expect(res.status()).toBe(200);
  return context.newPage();
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `updates-${name}.png`), fullPage: true });
}

const card = (page: Page) => page.locator("article.rollout").first();
const count = (page: Page, state: string) => card(page).locator(`.update-counts > div[data-state="${state}"] dd`);

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const built = spawnSync(process.execPath, [join(ROOT, "dashboard/build.mjs")], { encoding: "utf8", timeout: 60_000 });
  if (built.status !== 0) throw new Error(`dashboard build failed:\n${built.stdout}\n${built.stderr}`);
  console.log(built.stdout.trim());
  // Rooms look at the rollouts every half second, so a device hears its release at once.
  endpoint = await startEndpoint({ direct: true, vars: { RELEASE_PUBLIC_KEY: publicKey, FIRMWARE_CHECK_MS: "500", LOG_READINGS: "false" } });
  operator = new EndpointClient(endpoint.url, endpoint.adminToken);
  // 48,000 bytes: the page says 46.9 KB.
  await publishRelease({ url: endpoint.url, adminToken: operator.adminToken, privateKey: keys.privateKey, version: VERSION, notes: "faster reconnects", size: 48_000 });
  await operator.token(SILENT);
  device = await operator.openRoom(DEVICE, "device");
  await helloDevice(device, "s-browser-ota");
  // The room's heartbeat: a device that stays silent is taken for a half-open socket.
  pinger = setInterval(() => device?.send(PING), 1_000);
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  clearInterval(pinger);
  device?.close();
  await bounded(browser?.close(), 15_000);
  await endpoint?.close();
}, 60_000);

beforeEach(({ onTestFailed }) => onTestFailed(() => console.error(endpoint?.proc?.tail())));

describe("issue 15: rollouts and firmware in the dashboard", () => {
  let page: Page;
  /** Every /api/ path asked for while the Updates page was shown. */
  const asked = new Set<string>();
  let rolloutId = "";

  it("1. the operator starts a rollout from the Updates page and sees its devices counted", async () => {
    page = await newPage(operator.adminToken);
    page.on("request", (req) => {
      const url = new URL(req.url());
      if (url.pathname.startsWith("/api/") && new URL(page.url()).pathname === "/updates") asked.add(url.pathname);
    });
    await page.goto(`${endpoint.url}/devices/${DEVICE}`);
    await page.getByRole("navigation", { name: "Account" }).getByRole("link", { name: "Updates" }).click();
    await page.waitForURL(`${endpoint.url}/updates`);
    expect(await page.title()).toBe("Updates · IoT Dashboard");

    const release = page.locator(`tr[data-release="${VERSION}"]`);
    await expect.poll(() => release.textContent(), { timeout: SOON }).toContain("faster reconnects");
    expect(await release.textContent()).toContain("46.9 KB");
    expect(await release.textContent()).toContain("checked by the endpoint");
    await page.getByText("No rollout yet.").waitFor({ timeout: SOON });

    // A stage list that falls is named on the page, and nothing is started.
    await page.getByLabel("Release", { exact: true }).selectOption(VERSION);
    await page.getByRole("radio", { name: "these devices:" }).check();
    await page.getByLabel("Device ids").fill(`${DEVICE}, ${SILENT}`);
    await page.getByLabel("Stages (% of the target)").fill("50, 10");
    await page.getByRole("button", { name: "Start rollout" }).click();
    await expect.poll(() => page.getByRole("alert").filter({ hasText: "rising" }).count(), { timeout: SOON }).toBe(1);
    expect((await operator.json<{ rollouts: unknown[] }>("/api/rollouts")).rollouts).toHaveLength(0);

    await page.getByLabel("Stages (% of the target)").fill("100");
    await page.getByLabel("Pause itself after").fill("5");
    await page.getByRole("button", { name: "Start rollout" }).click();
    await card(page).waitFor({ timeout: SOON });
    rolloutId = (await card(page).getAttribute("data-rollout"))!;
    expect(rolloutId).toMatch(/^r-/);
    expect(await card(page).locator("h3").textContent()).toContain(`${VERSION} to 2 devices: ${DEVICE}, ${SILENT}`);
    expect(await card(page).getAttribute("data-phase")).toBe("active");
    expect(await page.getByRole("status").filter({ hasText: `Rollout ${rolloutId} of ${VERSION} started.` }).count()).toBe(1);
    await expect.poll(() => count(page, "pending").textContent(), { timeout: SOON }).toBe("2");

    // The room tells its device at once (the rollout names it); the device starts downloading.
    const told = await device!.next((m) => m.type === "firmware" && m.release?.version === VERSION, SOON);
    expect(told.rollout).toBe(rolloutId);
    device!.send({ type: "update", version: VERSION, state: "downloading", progress: 0.4 });
    await expect.poll(() => count(page, "downloading").textContent(), { timeout: SOON }).toBe("1");
    expect(await count(page, "pending").textContent()).toBe("1");
    expect(await count(page, "applied").textContent()).toBe("0");
    await shot(page, "1-rollout-downloading");
  });

  it("2. the device page shows what it runs, its target and the download's progress, then the failure and its reason", async () => {
    await page.goto(`${endpoint.url}/devices/${DEVICE}`);
    const panel = page.locator("section.firmware");
    await expect.poll(() => panel.locator(".firmware-update").textContent(), { timeout: SOON }).toBe(`Downloading ${VERSION}: 40 %`);
    expect(await panel.locator(".firmware-running").textContent()).toBe("1.0.0");
    expect(await panel.locator(".firmware-target").textContent()).toBe(`${VERSION} (rollout ${rolloutId})`);
    expect(await panel.locator("progress").evaluate((el: HTMLProgressElement) => ({ hidden: el.hidden, value: el.value }))).toEqual({ hidden: false, value: 0.4 });
    await panel.scrollIntoViewIfNeeded();
    await shot(page, "2a-device-downloading");

    device!.send({ type: "update", version: VERSION, state: "failed", reason: "sha256 mismatch: the download was damaged" });
    // The panel polls faster while a step is under way, so the failure shows without a reload.
    await expect.poll(() => panel.locator(".firmware-update").textContent(), { timeout: SOON }).toBe(`${VERSION} failed: sha256 mismatch: the download was damaged`);
    expect(await panel.getAttribute("data-state")).toBe("failed");
    expect(await panel.locator("progress").evaluate((el: HTMLElement) => el.hidden)).toBe(true);
    await shot(page, "2b-device-failed");

    await panel.getByRole("link", { name: "Releases and rollouts" }).click();
    await page.waitForURL(`${endpoint.url}/updates`);
    await expect.poll(() => count(page, "failed").textContent(), { timeout: SOON }).toBe("1");
    expect(await count(page, "downloading").textContent()).toBe("0");
    expect(await card(page).locator(`.rollout-failures li[data-device="${DEVICE}"]`).textContent()).toMatch(
      new RegExp(`^${DEVICE} failed: sha256 mismatch: the download was damaged \\(`),
    );
  });

  it("3. the operator pauses, resumes and cancels the rollout from the page", async () => {
    page.on("dialog", (dialog) => void dialog.accept());
    await card(page).getByRole("button", { name: "Pause" }).click();
    await expect.poll(() => card(page).getAttribute("data-phase"), { timeout: SOON }).toBe("paused");
    expect(await card(page).locator(".rollout-phase").textContent()).toBe("Paused: paused by an operator");
    expect((await operator.json(`/api/rollouts/${rolloutId}`)).state).toBe("paused");
    await shot(page, "3a-paused");

    await card(page).getByRole("button", { name: "Resume" }).click();
    await expect.poll(() => card(page).getAttribute("data-phase"), { timeout: SOON }).toBe("active");

    await card(page).getByRole("button", { name: "Cancel" }).click();
    await expect.poll(() => card(page).getAttribute("data-phase"), { timeout: SOON }).toBe("cancelled");
    expect((await operator.json(`/api/rollouts/${rolloutId}`)).state).toBe("cancelled");
    // Cancelled is final: nothing left to press.
    expect(await card(page).locator("button").count()).toBe(0);
    await shot(page, "3b-cancelled");

    // The page read the fleet's updates in two requests, never one per device (the fleet list beside it asks for pages of devices).
    expect(asked).toContain("/api/rollouts");
    expect(asked).toContain("/api/releases");
    expect([...asked].filter((path) => /^\/api\/devices\/./.test(path))).toEqual([]);
    const audit = (await operator.json<{ entries: { action: string; target: string }[] }>("/api/audit?limit=50")).entries;
    for (const action of ["rollout.create", "rollout.pause", "rollout.resume", "rollout.cancel"]) {
      expect(audit.some((e) => e.action === action && e.target === `rollout:${rolloutId}`)).toBe(true);
    }
  });

  it("4. a viewer sees the rollout, the release and the device's firmware, and no control", async () => {
    const viewer = await newPage(endpoint.secrets().VIEWER_TOKEN!);
    await viewer.goto(`${endpoint.url}/updates`);
    await card(viewer).waitFor({ timeout: SOON });
    expect(await card(viewer).getAttribute("data-rollout")).toBe(rolloutId);
    expect(await count(viewer, "failed").textContent()).toBe("1");
    expect(await viewer.locator(`tr[data-release="${VERSION}"]`).count()).toBe(1);
    expect(await viewer.locator("form.rollout-form").count()).toBe(0);
    expect(await viewer.locator("section.updates button").allTextContents()).toEqual(["Refresh"]);
    expect(await viewer.getByText("Operators start, pause and cancel rollouts.").count()).toBe(1);
    await shot(viewer, "4a-viewer");

    await viewer.goto(`${endpoint.url}/devices/${DEVICE}`);
    await expect.poll(() => viewer.locator("section.firmware .firmware-update").textContent(), { timeout: SOON }).toContain("failed");
  });
});
