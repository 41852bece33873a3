/**
 * The dashboard in Debian's Chromium against the real endpoint (wrangler dev +
 * workerd, with its auth) and the real device agent users run (`npm run
 * device -- --simulate`); what the device did is read from its own output
 * (test/support/agent.ts), never from the room's API. The steps build
 * on each other in order, as one operator's day would: signing in to an empty
 * endpoint, a device registering, watching it, commanding it, a viewer's phone,
 * a dropped connection, the device going away, a fleet too big for one page, signing out.
 *
 * Screenshots go to test/artifacts/ (git-ignored, except the issue14-*, alerts-* and
 * updates-* screenshots of the other browser tests, which are committed) for a person to look at;
 * the page-load-to-first-live-reading time is written to
 * test/artifacts/timings.json (measured, not asserted).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, type Page, type WebSocketRoute } from "playwright-core";
import { bounded, launchChromium } from "../support/browser";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startAgent, type Agent } from "../support/agent";
import { EndpointClient } from "../support/client";
import { startEndpoint, type Endpoint } from "../support/endpoint";
import { ROOT } from "../support/processes";

const ARTIFACTS = resolve(dirname(fileURLToPath(import.meta.url)), "../artifacts");
const DEVICE = "pi-kitchen";
const MISSING = "no-such-device";
/** Requests that answer 404 on purpose in the step about a device that never registered. */
const EXPECTED_404 = new RegExp(`^/api/(tickets|devices/${MISSING}/readings)$`);
/**
 * Chromium logs every non-2xx fetch as "Failed to load resource". These are answers the page
 * asks for on purpose: the session probe (401 before sign-in), the wrong token of the sign-in
 * step, and the 404s of the step about a device that does not exist. Anything else counts.
 */
function expectedFailure(path: string): boolean {
  return path === "/api/session" || path === "/api/login" || EXPECTED_404.test(path);
}
/** Generous: two cores shared with other work; these are upper bounds, never expectations. */
const SOON = 15_000;

let endpoint: Endpoint;
let operator: EndpointClient;
let viewerToken: string;
let browser: Browser;
let device: Agent | undefined;
/** The agent's outbox: fresh, so the number of readings it printed is its newest seq. */
let agentState: string;
const contexts: BrowserContext[] = [];
const consoleErrors: string[] = [];
const timings: Record<string, number> = {};

/**
 * A page in a fresh browser context (its own cookies). With `token`, the context signs in
 * first through the API, as a browser that signed in earlier would be; the sign-in form
 * itself is exercised in the first step.
 */
async function newPage(kind: "desktop" | "phone" = "desktop", token?: string): Promise<Page> {
  const context = await browser.newContext(
    kind === "desktop"
      ? { viewport: { width: 1280, height: 860 } }
      : { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true },
  );
  contexts.push(context);
  if (token) {
    // context.request shares the context's cookie jar: the session cookie lands where the page will use it.
    const res = await context.request.post(`${endpoint.url}/api/login`, { data: { token } });
    expect(res.status()).toBe(200);
  }
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const url = msg.location().url;
    const path = new URL(url || "/", endpoint.url).pathname;
    if (msg.text().startsWith("Failed to load resource") && expectedFailure(path)) return;
    consoleErrors.push(`[${kind}] ${msg.text()} (${url})`);
  });
  page.on("pageerror", (err) => consoleErrors.push(`[${kind}] page error: ${err.message}`));
  return page;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Readings the chart holds, and the highest seq it has seen (data attributes on its figure). */
async function chartFacts(page: Page): Promise<{ points: number; maxSeq: number; firstSeq: number }> {
  return page.locator("figure.chart").evaluate((el: HTMLElement) => ({
    points: Number(el.dataset.points),
    maxSeq: Number(el.dataset.maxSeq),
    firstSeq: Number(el.dataset.firstSeq),
  }));
}

async function bigReading(page: Page): Promise<{ value: number; unit: string }> {
  const value = await page.locator(".reading .value").textContent();
  const unit = await page.locator(".reading .unit").textContent();
  return { value: Number(value?.replace("\u2212", "-")), unit: unit ?? "" };
}

/** The big number is a reading the device printed (`Temperature: 22.61C`), to the page's one decimal. */
async function expectPrintedByDevice(shown: { value: number; unit: string }): Promise<void> {
  const printed = () => device!.readings.filter((r) => `°${r.scale}` === shown.unit).map((r) => r.temperature.toFixed(1));
  // Polled: the page can show a reading a moment before this process has read the agent's line about it.
  await expect.poll(printed, { timeout: SOON }).toContain(shown.value.toFixed(1));
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  // The endpoint serves dashboard/dist as it is (SKIP_BUILD): build it now so no test sees a stale bundle.
  const built = spawnSync(process.execPath, [join(ROOT, "dashboard/build.mjs")], { encoding: "utf8", timeout: 60_000 });
  if (built.status !== 0) throw new Error(`dashboard build failed:\n${built.stdout}\n${built.stderr}`);
  // The device samples every 100 ms (the fastest the protocol allows) from the start: the catch-up
  // step needs over 200 readings while a page is cut off, and every other step waits less for one.
  endpoint = await startEndpoint({ vars: { DEFAULT_INTERVAL_MS: "100" } });
  operator = new EndpointClient(endpoint.url, endpoint.adminToken);
  viewerToken = endpoint.secrets().VIEWER_TOKEN!;
  agentState = mkdtempSync(join(tmpdir(), "iot-browser-agent-"));
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  // Each step on its own, so one that fails or hangs never leaves Chromium or workerd running.
  await bounded(device?.stop(), 15_000);
  await bounded(browser?.close(), 15_000);
  await endpoint?.close();
  if (agentState) rmSync(agentState, { recursive: true, force: true });
  if (Object.keys(timings).length) writeFileSync(join(ARTIFACTS, "timings.json"), `${JSON.stringify(timings, null, 2)}\n`);
}, 60_000);

beforeEach(({ onTestFailed }) =>
  onTestFailed(() => {
    for (const p of [device, endpoint?.proc]) if (p) console.error(p.tail());
  }),
);

describe("the dashboard in a browser", () => {
  let first: Page;
  let second: Page;

  it("asks to sign in, refuses a wrong token, and lets the operator in", async () => {
    first = await newPage("desktop");
    await first.goto(endpoint.url);
    const token = first.getByLabel("Access token");
    await token.waitFor({ timeout: SOON });
    await token.fill("not-the-token-at-all-0123456789");
    await first.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => first.getByRole("alert").textContent(), { timeout: SOON }).toBe(
      "That token was not accepted. Check it and try again.",
    );
    await shot(first, "0-sign-in");
    await token.fill(operator.adminToken);
    await first.keyboard.press("Enter");
    await first.locator("#who").getByText("Operator").waitFor({ timeout: SOON });
    expect(await first.getByRole("button", { name: "Sign out" }).isVisible()).toBe(true);
  });

  it("says it is awaiting registration, with a spinner, before any device has registered", async () => {
    const awaiting = first.getByText("Awaiting IoT Endpoint Registration ...");
    await awaiting.waitFor({ timeout: SOON });
    expect(await first.locator(".awaiting .spinner").isVisible()).toBe(true);
    await first.locator("#connection[data-state=connected]").waitFor({ timeout: SOON });
    expect(await first.locator("#connection").textContent()).toBe("Connected");
    await shot(first, "1-awaiting-registration");
  });

  it("shows a device that registers without a reload: online, with a reading", async () => {
    // Marks this document; a reload would lose it.
    await first.evaluate(() => ((window as unknown as { notReloaded: boolean }).notReloaded = true));
    device = startAgent({ endpoint: endpoint.url, token: await operator.token(DEVICE), stateDir: agentState });
    await device.connected(0, SOON);
    const row = first.locator(`.fleet li[data-device="${DEVICE}"]`);
    await first.locator(`.fleet li[data-device="${DEVICE}"][data-state=online]`).waitFor({ timeout: SOON });
    // The fleet's latest reading comes from the registry (pushed every 2 s at most).
    await expect.poll(() => row.locator(".temp").textContent(), { timeout: SOON }).toMatch(/^\d+\.\d °F$/);
    expect(await row.textContent()).toContain("fw 1.0.0");
    // `/` picked the only device to watch.
    await first.locator(`.device[data-device="${DEVICE}"] .presence[data-state=online]`).waitFor({ timeout: SOON });
    expect(new URL(first.url()).pathname).toBe(`/devices/${DEVICE}`);
    expect(await first.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
  });

  it("shows a fresh page the live reading within seconds, and the chart grows", async () => {
    // Signed in already (a session cookie), as an operator opening the dashboard in the morning.
    second = await newPage("desktop", operator.adminToken);
    await second.goto(`${endpoint.url}/devices/${DEVICE}`);
    await second.locator(".presence[data-state=online]").waitFor({ timeout: SOON });
    await second.waitForFunction(() => performance.getEntriesByName("iot:first-live-reading").length > 0, null, {
      timeout: SOON,
    });
    const marks = await second.evaluate(() =>
      Object.fromEntries(
        ["iot:first-reading", "iot:first-live-reading"].map((n) => [n, performance.getEntriesByName(n)[0]?.startTime ?? -1]),
      ),
    );
    timings.pageLoadToFirstReadingMs = Math.round(marks["iot:first-reading"]!);
    timings.pageLoadToFirstLiveReadingMs = Math.round(marks["iot:first-live-reading"]!);
    console.log(`dashboard timings (navigation start → …): ${JSON.stringify(timings)}`);

    const reading = await bigReading(second);
    expect(reading.unit).toBe("°F");
    expect(reading.value).toBeGreaterThan(65);
    expect(reading.value).toBeLessThan(80);
    await expectPrintedByDevice(reading);

    const before = await chartFacts(second);
    expect(before.points).toBeGreaterThan(0);
    await expect.poll(async () => (await chartFacts(second)).points, { timeout: SOON }).toBeGreaterThan(before.points + 1);
    expect(await second.locator("figure.chart canvas").count()).toBeGreaterThan(0);
    await shot(second, "2-device-desktop");
  });

  it("switches the device to °C from the keyboard: the command is applied and the readings change scale", async () => {
    // Reach the switch with Tab alone, as a keyboard user would, and press it with Space.
    const celsius = second.getByRole("button", { name: "°C" });
    let reached = false;
    for (let i = 0; i < 20 && !reached; i++) {
      await second.keyboard.press("Tab");
      reached = await celsius.evaluate((el) => el === document.activeElement);
    }
    expect(reached).toBe(true);
    await second.keyboard.press("Space");
    await second.locator(".command-status[data-phase=applied]").waitFor({ timeout: SOON });
    expect(await second.locator(".command-status").textContent()).toBe("Applied: the device switched to °C");
    // The device says so itself: it applied the command and reads in °C now.
    await expect.poll(() => device!.commands, { timeout: SOON }).toContainEqual({ cmd: "scale", scale: "C" });
    await expect.poll(() => device!.scale, { timeout: SOON }).toBe("C");
    await expect.poll(async () => (await bigReading(second)).unit, { timeout: SOON }).toBe("°C");
    const reading = await bigReading(second);
    // The simulated sensor reads 22 °C ± 2.5 (67–76 °F): clearly not a Fahrenheit number any more.
    expect(reading.value).toBeGreaterThan(15);
    expect(reading.value).toBeLessThan(30);
    await expectPrintedByDevice(reading);
    expect(await second.locator(".actual").textContent()).toBe("The device reports °C.");
    expect(await second.getByRole("button", { name: "°C" }).getAttribute("aria-pressed")).toBe("true");
    await expect.poll(() => second.locator("figure.chart figcaption").textContent(), { timeout: SOON }).toContain("in °C");
    // The fleet list agrees with the big number at once (not only after the registry's next push).
    expect(await second.locator(`.fleet li[data-device="${DEVICE}"] .temp`).textContent()).toMatch(/^\d+\.\d °C$/);
    // The first page watched it happen without doing anything.
    await first.locator(".command-status[data-phase=applied]").waitFor({ timeout: SOON });
    await expect.poll(async () => (await bigReading(first)).unit, { timeout: SOON }).toBe("°C");
    await shot(second, "3-device-celsius");
  });

  it("shows a viewer's phone the same state as the desktop pages, with the switch off", async () => {
    const phone = await newPage("phone", viewerToken);
    await phone.goto(`${endpoint.url}/devices/${DEVICE}`);
    await phone.locator(".presence[data-state=online]").waitFor({ timeout: SOON });
    await phone.locator(".command-status[data-phase=applied]").waitFor({ timeout: SOON });
    expect(await phone.locator(".command-status").textContent()).toBe("Applied: the device switched to °C");
    expect(await phone.getByRole("button", { name: "°C" }).getAttribute("aria-pressed")).toBe("true");
    await expect.poll(async () => (await bigReading(phone)).unit, { timeout: SOON }).toBe("°C");
    // A viewer watches; the endpoint would refuse a viewer's command (403), so the page does not offer one.
    expect(await phone.locator("#who").textContent()).toBe("Viewer (read-only)");
    expect(await phone.getByRole("button", { name: "°F" }).isDisabled()).toBe(true);
    expect(await phone.getByRole("button", { name: "°C" }).isDisabled()).toBe(true);
    expect(await phone.locator(".scale .hint").textContent()).toBe("Viewers cannot change the scale; sign in as an operator.");
    // Both see the same readings: the phone reaches what the desktop page had.
    const desktopSeq = (await chartFacts(second)).maxSeq;
    await expect.poll(async () => (await chartFacts(phone)).maxSeq, { timeout: SOON }).toBeGreaterThanOrEqual(desktopSeq);
    // Nothing sticks out sideways on a narrow screen.
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await shot(phone, "4-device-phone");
  });

  it("shows a dropped connection as reconnecting, then catches up from history with no hole", async () => {
    // The device makes 10 readings a second (this run's default interval), so an outage of ~20 s outruns
    // the 120 readings a reconnect's snapshot carries and only the readings API can fill the rest.
    const page = await newPage("desktop", operator.adminToken);
    let cut = false;
    const open: WebSocketRoute[] = [];
    await page.routeWebSocket(/\/parties\//, (ws) => {
      if (cut) {
        // The endpoint is "unreachable": refuse at once.
        void ws.close({ code: 1012, reason: "test: connection cut" });
        return;
      }
      open.push(ws.connectToServer(), ws);
    });
    await page.goto(`${endpoint.url}/devices/${DEVICE}`);
    await page.locator("#connection[data-state=connected]").waitFor({ timeout: SOON });
    await page.waitForFunction(() => performance.getEntriesByName("iot:first-live-reading").length > 0, null, { timeout: SOON });

    cut = true;
    for (const ws of open.splice(0)) await ws.close({ code: 1012, reason: "test: connection cut" }).catch(() => undefined);
    await expect.poll(() => page.locator("#connection").textContent(), { timeout: SOON }).toMatch(/^Reconnecting \(attempt \d+\)$/);
    const atCut = await chartFacts(page);
    await shot(page, "5-reconnecting");
    // Keep it cut until the device has made well over a snapshot's worth of readings (its fresh outbox
    // numbers them from 1, so the count it printed is its newest seq).
    await expect.poll(() => device!.readings.length, { timeout: 60_000, interval: 500 }).toBeGreaterThan(atCut.maxSeq + 200);
    expect((await chartFacts(page)).maxSeq).toBe(atCut.maxSeq);

    cut = false;
    await page.locator("#connection[data-state=connected]").waitFor({ timeout: 30_000 });
    // Caught up: every seq from the first to the newest is on the chart, none missing.
    await expect
      .poll(
        async () => {
          const f = await chartFacts(page);
          return f.maxSeq > atCut.maxSeq + 200 && f.points === f.maxSeq - f.firstSeq + 1;
        },
        { timeout: SOON },
      )
      .toBe(true);
    expect(Number(await page.locator("figure.chart").getAttribute("data-gaps"))).toBe(0);
    await shot(page, "6-caught-up");
  }, 120_000);

  it("says so when a device URL names a device that never registered", async () => {
    const page = await newPage("desktop", operator.adminToken);
    await page.goto(`${endpoint.url}/devices/${MISSING}`);
    // A not-found page, not a device page with nothing in it (issue 14).
    await page.getByRole("heading", { name: "Device not found" }).waitFor({ timeout: SOON });
    expect(await page.locator(".not-found").textContent()).toContain(`No device called ${MISSING} is registered with this endpoint.`);
    // The rest of the page still works: the fleet is there and the page's own connection is fine.
    await page.locator(`.fleet li[data-device="${DEVICE}"]`).waitFor({ timeout: SOON });
    await page.locator("#connection[data-state=connected]").waitFor({ timeout: SOON });
  });

  it("shows the device offline on every page when it stops", async () => {
    // SIGTERM, as systemd stops it: the agent lets the room ack what it sent, closes its socket and exits 0.
    expect(await device!.stop()).toEqual({ code: 0, signal: null });
    for (const page of [first, second]) {
      await page.locator(".presence[data-state=offline]").waitFor({ timeout: SOON });
      await page.locator(`.fleet li[data-device="${DEVICE}"][data-state=offline]`).waitFor({ timeout: SOON });
      expect(await page.locator(".presence-line").textContent()).toMatch(/^Offline · last seen /);
    }
    await shot(second, "7-device-offline");
  });

  it("pages through a fleet of 121 devices and finds them by id", async () => {
    // Provisioned through the API as an operator would (known to the registry, never connected).
    const ids = Array.from({ length: 120 }, (_, i) => `fleet-${String(i).padStart(3, "0")}`);
    for (const id of ids) await operator.token(id);
    const page = await newPage("desktop", operator.adminToken);
    await page.goto(`${endpoint.url}/devices/${DEVICE}`);
    const fleet = page.locator(".fleet");
    const range = fleet.locator(".pager .range");
    const shown = () => fleet.locator("li").evaluateAll((lis) => lis.map((li) => li.getAttribute("data-device")));
    // 50 a page, in id order; pi-kitchen sorts after every fleet-NNN.
    await expect.poll(() => range.textContent(), { timeout: SOON }).toBe("1\u201350 of 121");
    expect(await shown()).toEqual(ids.slice(0, 50));
    expect(await fleet.locator(".count").textContent()).toBe("(121)");
    expect(await fleet.getByRole("button", { name: "Previous" }).isDisabled()).toBe(true);
    await fleet.getByRole("button", { name: "Next" }).click();
    await expect.poll(() => range.textContent(), { timeout: SOON }).toBe("51\u2013100 of 121");
    expect(await shown()).toEqual(ids.slice(50, 100));
    await fleet.getByRole("button", { name: "Next" }).click();
    await expect.poll(() => range.textContent(), { timeout: SOON }).toBe("101\u2013121 of 121");
    expect(await shown()).toEqual([...ids.slice(100), DEVICE]);
    expect(await fleet.getByRole("button", { name: "Next" }).isDisabled()).toBe(true);
    await shot(page, "8-fleet-last-page");
    await fleet.getByRole("button", { name: "Previous" }).click();
    await expect.poll(() => range.textContent(), { timeout: SOON }).toBe("51\u2013100 of 121");

    // Search: ids containing the text, any case, from the first page; one page needs no pager.
    const search = page.getByRole("searchbox", { name: "Search devices by id" });
    await search.fill("FLEET-11");
    await expect.poll(shown, { timeout: SOON }).toEqual(ids.slice(110, 120));
    expect(await fleet.locator(".count").textContent()).toBe("(10)");
    expect(await fleet.locator(".pager").isVisible()).toBe(false);
    await shot(page, "9-fleet-search");
    await search.fill("nothing-like-this");
    await expect.poll(shown, { timeout: SOON }).toEqual([]);
    const empty = fleet.locator(".fleet-empty");
    expect(await empty.isVisible()).toBe(true);
    expect(await empty.textContent()).toBe("No device id contains \u201cnothing-like-this\u201d.");
    await search.fill("");
    await expect.poll(() => range.textContent(), { timeout: SOON }).toBe("1\u201350 of 121");
  }, 120_000);

  it("signs out: back to the sign-in form, and a reload stays signed out", async () => {
    await first.getByRole("button", { name: "Sign out" }).click();
    await first.getByLabel("Access token").waitFor({ timeout: SOON });
    expect(await first.locator(".fleet").count()).toBe(0);
    await first.reload();
    await first.getByLabel("Access token").waitFor({ timeout: SOON });
  });

  it("logged no console errors on any page", () => {
    expect(consoleErrors).toEqual([]);
  });
});
