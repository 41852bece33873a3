/**
 * Issue 14, alerts in the dashboard: Debian's Chromium against the real endpoint
 * (Miniflare), a device speaking the room's protocol from this process so the test
 * decides its readings.
 *
 *  1. an operator adds a threshold rule from the device page and sees its latency;
 *  2. a reading above it raises an alert: the device page lists it as active and the
 *     fleet list badges the device;
 *  3. the operator acknowledges it on the page (the API and the audit trail agree);
 *  4. a reading below threshold − deadband clears it: the page shows it in the history
 *     and the badge goes;
 *  5. a viewer sees the alerts and no control to change them.
 * Screenshots in test/artifacts/alerts-*.png.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, type Page } from "playwright-core";
import { bounded, launchChromium } from "../support/browser";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PING, type AuditPage, type DeviceAlerts, type Reading } from "../../party/protocol";
import { EndpointClient, helloDevice, type SocketClient } from "../support/client";
import { startEndpoint, type Endpoint } from "../support/endpoint";
import { ROOT } from "../support/processes";

const ARTIFACTS = resolve(dirname(fileURLToPath(import.meta.url)), "../artifacts");
const DEVICE = "freezer-1";
/** Upper bounds on a busy two-core machine, never expectations. */
const SOON = 20_000;

let endpoint: Endpoint;
let operator: EndpointClient;
let browser: Browser;
let device: SocketClient;
let pinger: ReturnType<typeof setInterval> | undefined;
let seq = 0;
const contexts: BrowserContext[] = [];

async function newPage(token: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  contexts.push(context);
  const res = await context.request.post(`${endpoint.url}/api/login`, { data: { token } });
  expect(res.status()).toBe(200);
  return context.newPage();
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `alerts-${name}.png`), fullPage: true });

/** One reading from the device, in °F as its hello said; resolves once the room acks it. */
async function send(temperature: number): Promise<void> {
  const r: Reading = { seq: ++seq, ts: Date.now(), temperature, scale: "F" };
  const from = device.messages.length;
  device.send({ type: "readings", readings: [r] });
  await device.next((m) => m.type === "ack" && m.seq >= r.seq, SOON, from);
}

const alerts = () => operator.json<DeviceAlerts>(`/api/devices/${DEVICE}/alerts`);

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const built = spawnSync(process.execPath, [join(ROOT, "dashboard/build.mjs")], { encoding: "utf8", timeout: 60_000 });
  if (built.status !== 0) throw new Error(`dashboard build failed:\n${built.stdout}\n${built.stderr}`);
  // Commits within 200 ms so acks come in a test's time.
  endpoint = await startEndpoint({ direct: true, vars: { GROUP_COMMIT_MS: "200", LOG_READINGS: "false", FLEET_PUSH_MS: "0" } });
  operator = new EndpointClient(endpoint.url, endpoint.adminToken);
  device = await operator.openRoom(DEVICE, "device");
  await helloDevice(device, "s-browser-alerts");
  pinger = setInterval(() => device.send(PING), 1_000);
  await send(-4);
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  clearInterval(pinger);
  device?.close();
  for (const c of contexts) await bounded(c.close(), 5_000);
  await bounded(browser?.close(), 15_000);
  await endpoint?.close();
}, 60_000);

beforeEach(({ onTestFailed }) => onTestFailed(() => console.error(endpoint?.proc?.tail())));

describe("issue 14: alerts in the dashboard", () => {
  let page: Page;
  const panel = () => page.locator("section.alerts");

  it("1. the operator adds a threshold rule on the device page and sees its effective latency", async () => {
    page = await newPage(operator.adminToken);
    await page.goto(`${endpoint.url}/devices/${DEVICE}`);
    await panel().waitFor({ timeout: SOON });
    const form = panel().locator("form");
    await form.getByLabel("Rule id").fill("too-warm");
    await form.getByLabel("Condition").selectOption("above");
    await form.getByLabel("Threshold", { exact: true }).fill("0");
    await form.getByLabel("Threshold scale").selectOption("F");
    await form.getByLabel("For how many minutes").fill("0");
    await form.getByRole("button", { name: "Add rule" }).click();
    const rule = panel().locator('[data-rule="too-warm"]');
    await rule.waitFor({ timeout: SOON });
    // The page states the rule's promise, as the API computes it.
    const { rules } = await operator.json<{ rules: { rule: { id: string }; latency: string }[] }>(`/api/devices/${DEVICE}/alerts/rules`);
    const latency = rules.find((r) => r.rule.id === "too-warm")?.latency;
    expect(latency).toBeTruthy();
    expect(await rule.textContent()).toContain(latency!);
  });

  it("2. a reading above it raises an alert: listed as active on the device page, badged in the fleet list", async () => {
    await send(5);
    const active = panel().locator('[data-status="active"]');
    await active.first().waitFor({ timeout: SOON });
    expect((await alerts()).active.map((a) => a.status)).toEqual(["active"]);
    await expect.poll(() => page.locator("[data-alerts]").count(), { timeout: SOON }).toBeGreaterThan(0);
    expect(await page.locator("[data-alerts]").first().getAttribute("data-alerts")).toBe("1");
    await shot(page, "1-active");
  });

  it("3. the operator acknowledges it on the page; the room and the audit trail record who", async () => {
    await panel().getByRole("button", { name: "Acknowledge" }).click();
    await panel().locator('[data-status="acknowledged"]').first().waitFor({ timeout: SOON });
    const [alert] = (await alerts()).active;
    expect(alert?.status).toBe("acknowledged");
    expect(alert?.acknowledgedBy).toBe("admin");
    const { entries } = await operator.json<AuditPage>("/api/audit?limit=20");
    expect(entries.some((e) => e.action === "alert.acknowledge" && e.actor === "admin")).toBe(true);
    expect(await panel().getByRole("button", { name: "Acknowledge" }).count()).toBe(0);
    await shot(page, "2-acknowledged");
  });

  it("4. a reading below threshold − deadband clears it: in the history, and the badge goes", async () => {
    await send(-2);
    await expect.poll(async () => (await alerts()).active.length, { timeout: SOON }).toBe(0);
    await panel().getByText("Recent alerts and webhook deliveries").click();
    await panel().locator('.alerts-history [data-status="cleared"]').first().waitFor({ timeout: SOON });
    await expect.poll(() => page.locator("[data-alerts]").count(), { timeout: SOON }).toBe(0);
    await shot(page, "3-cleared");
  });

  it("5. a viewer sees the alerts and no control to change them", async () => {
    await send(6); // raised again, for the viewer to see
    await expect.poll(async () => (await alerts()).active.length, { timeout: SOON }).toBe(1);
    const viewer = await newPage(endpoint.secrets().VIEWER_TOKEN!);
    await viewer.goto(`${endpoint.url}/devices/${DEVICE}`);
    const viewerPanel = viewer.locator("section.alerts");
    await viewerPanel.locator('[data-status="active"]').first().waitFor({ timeout: SOON });
    expect(await viewerPanel.getByRole("button", { name: "Acknowledge" }).count()).toBe(0);
    expect(await viewerPanel.locator("form").count()).toBe(0);
    expect(await viewerPanel.getByRole("button", { name: "Remove" }).count()).toBe(0);
    await shot(viewer, "4-viewer");
  });
});
