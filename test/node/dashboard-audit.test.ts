import { describe, expect, it } from "vitest";
import { AuditAction } from "../../party/protocol";
import { actionText, browserText, detailText, targetText } from "../../dashboard/src/audit-format";
import { parseRoute } from "../../dashboard/src/router";
import { describeSession, loadSession } from "../../dashboard/src/session";

describe("dashboard: sessions and audit views", () => {
  it("routes /sessions and /audit to their views", () => {
    expect(parseRoute("/sessions")).toEqual({ view: "sessions" });
    expect(parseRoute("/audit/")).toEqual({ view: "audit" });
    // A device may be called "audit": its URL is still the device's.
    expect(parseRoute("/devices/audit")).toEqual({ view: "device", id: "audit" });
  });

  it("words every audit action", () => {
    for (const action of AuditAction.options) expect(actionText(action)).toMatch(/^[a-z][a-z ']+$/);
    expect(actionText("login.failed")).toBe("failed to sign in");
  });

  it("shows targets without their kind prefix, and session ids shortened", () => {
    expect(targetText("device:pi-kitchen")).toBe("pi-kitchen");
    expect(targetText("session:AbCdEfGhIjKlMnOpQrStUv")).toBe("session AbCdEfGh…");
    expect(targetText("alice")).toBe("alice");
    expect(targetText(null)).toBe("");
  });

  it("words the details of commands, accounts and failed sign-ins", () => {
    expect(detailText({ action: "device.command", detail: { id: "x", cmd: "scale", scale: "C" } })).toBe("scale → °C");
    expect(detailText({ action: "device.command", detail: { id: "x", cmd: "interval", intervalMs: 2000 } }, "en-US")).toBe("interval → 2,000 ms");
    expect(detailText({ action: "account.remove", detail: { role: "viewer", sessionsEnded: 2 } })).toBe("role viewer, 2 session(s) ended");
    expect(detailText({ action: "login.failed", detail: { reason: "wrong token" } })).toBe("wrong token");
    expect(detailText({ action: "device.revoke", detail: { hadCredentials: false } })).toBe("it had no token");
    expect(detailText({ action: "logout", detail: null })).toBe("");
    // Anything it has no words for is still shown, not dropped.
    expect(detailText({ action: "device.provision", detail: { note: "x", n: 1 } })).toBe("note x, n 1");
  });

  it("names a browser in a few words", () => {
    expect(browserText("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")).toBe("Firefox on Linux");
    expect(browserText("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")).toBe("Safari on iOS");
    expect(browserText("curl/8.5.0")).toBe("curl/8.5.0");
    expect(browserText("")).toBe("unknown");
  });

  it("names a person's account in the header, and only the role for the shared tokens", async () => {
    const signedIn = async (body: unknown) => loadSession(async () => new Response(JSON.stringify(body), { status: 200 }));
    expect(describeSession(await signedIn({ role: "operator", account: "alice" }))).toBe("alice · Operator");
    expect(describeSession(await signedIn({ role: "viewer", account: "viewer" }))).toBe("Viewer (read-only)");
    expect(describeSession(await signedIn({ role: "operator", account: "admin", session: "AbCdEfGhIjKlMnOpQrStUv", expiresAt: 5 }))).toBe("Operator");
  });
});
