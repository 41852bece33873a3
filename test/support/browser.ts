/**
 * Debian's Chromium for the browser tests, launched one way: headless, no sandbox
 * (containers, root), and nothing that phones home on a machine with no internet.
 */
import { chromium, type Browser } from "playwright-core";

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** Wait for `p` at most `ms`, ignoring its failure: a teardown step must not hang or throw the others away. */
export function bounded(p: Promise<unknown> | undefined, ms: number): Promise<unknown> {
  return Promise.race([Promise.resolve(p).catch(() => undefined), new Promise((r) => setTimeout(r, ms))]);
}
