import { describe, expect, it } from "vitest";
import { canCommand, loadSession, login, SessionUnavailable } from "../../dashboard/src/session";

/** A fetch that answers one fixed response and records what it was asked. */
function answer(status: number, body?: unknown) {
  const calls: { path: string; init?: RequestInit }[] = [];
  const fetchFn = async (path: string, init?: RequestInit) => {
    calls.push({ path, init });
    return new Response(body === undefined ? null : JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json" },
    });
  };
  return { fetchFn, calls };
}

describe("dashboard session", () => {
  it("treats an endpoint without /api/session (404) as open: anyone may command", async () => {
    const session = await loadSession(answer(404).fetchFn);
    expect(session).toEqual({ kind: "open" });
    expect(canCommand(session)).toBe(true);
  });

  it("asks for sign-in on 401", async () => {
    const session = await loadSession(answer(401, { error: { code: "unauthorized", message: "sign in" } }).fetchFn);
    expect(session).toEqual({ kind: "signed-out" });
    expect(canCommand(session)).toBe(false);
  });

  it("reads the role from GET /api/session, which need not say when the session ends", async () => {
    expect(await loadSession(answer(200, { role: "operator" }).fetchFn)).toEqual({ kind: "signed-in", role: "operator" });
  });

  it("knows operators from viewers, and only operators command", async () => {
    const operator = await loadSession(answer(200, { role: "operator", expiresAt: 5 }).fetchFn);
    const viewer = await loadSession(answer(200, { role: "viewer", expiresAt: 5 }).fetchFn);
    expect(operator).toEqual({ kind: "signed-in", role: "operator", expiresAt: 5 });
    expect(canCommand(operator)).toBe(true);
    expect(canCommand(viewer)).toBe(false);
  });

  it("reports an unreachable or broken endpoint as unavailable, to be retried", async () => {
    await expect(loadSession(answer(503).fetchFn)).rejects.toBeInstanceOf(SessionUnavailable);
    await expect(loadSession(answer(200, { role: "admin" }).fetchFn)).rejects.toBeInstanceOf(SessionUnavailable);
    const down = async () => {
      throw new TypeError("Failed to fetch");
    };
    await expect(loadSession(down)).rejects.toBeInstanceOf(SessionUnavailable);
  });

  it("posts the token as JSON to sign in and reads the role back", async () => {
    const { fetchFn, calls } = answer(200, { role: "viewer", expiresAt: 9 });
    expect(await login("s3cret", fetchFn)).toEqual({ ok: true, session: { kind: "signed-in", role: "viewer", expiresAt: 9 } });
    expect(calls[0]!.path).toBe("/api/login");
    expect(calls[0]!.init?.method).toBe("POST");
    expect(JSON.parse(String(calls[0]!.init?.body))).toEqual({ token: "s3cret" });
  });

  it("says plainly when a token is refused or attempts are limited", async () => {
    expect(await login("nope", answer(401, { error: { code: "unauthorized", message: "bad token" } }).fetchFn)).toEqual({
      ok: false,
      message: "That token was not accepted. Check it and try again.",
    });
    const limited = await login("x", answer(429).fetchFn);
    expect(limited.ok).toBe(false);
  });
});
