/**
 * Issue 12, item 5: the Origin check. A signed-in browser's cookie must only
 * change things from our own page: same scheme and host (an http page on our
 * https host is another origin), and a change with no Origin at all (a
 * `text/plain` form post, a script with a copied cookie) is refused unless it
 * is an API client's `Authorization: Bearer`. Both fail on the check that
 * compared hosts only and let a missing Origin through.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ADMIN_TOKEN, asAdmin, json, postJson, register, ticket, uniqueId } from "./helpers";

const COMMAND = JSON.stringify({ cmd: "scale", scale: "C" });

/** A request as a browser on `url`'s scheme would send it (the helpers' BASE is plain http). */
function fetchAt(url: string, init: RequestInit): Promise<Response> {
  const request = new Request(url, init);
  request.headers.set("cf-connecting-ip", "198.51.100.250");
  return exports.default.fetch(request);
}

async function signIn(): Promise<string> {
  const res = await postJson("/api/login", { token: ADMIN_TOKEN });
  expect(res.status).toBe(200);
  return (res.headers.get("set-cookie") ?? "").split(";")[0]!;
}

describe("the Origin check on cookie sessions", () => {
  it("refuses a cookie change with no Origin (a text/plain form post), and lets API clients and same-origin fetches through", async () => {
    const id = uniqueId("origin");
    await register(id);
    const cookie = await signIn();
    const path = `http://iot.test/api/devices/${id}/commands`;

    // What a cross-site <form enctype="text/plain"> from a browser without Origin would be.
    const form = await fetchAt(path, { method: "POST", headers: { cookie, "content-type": "text/plain" }, body: COMMAND });
    expect(form.status).toBe(403);
    expect((await json(form)).error.code).toBe("origin_required");
    const put = await fetchAt(`http://iot.test/api/devices/${id}/batching`, {
      method: "PUT",
      headers: { cookie, "content-type": "application/json" },
      body: JSON.stringify({ unwatchedMs: 60_000 }),
    });
    expect(put.status).toBe(403);
    expect((await json(await fetchAt(`http://iot.test/api/devices/${id}`, { headers: asAdmin }))).commands).toEqual([]);

    // A fetch from our own page that carries Sec-Fetch-Site instead of Origin.
    const sameOrigin = await fetchAt(path, { method: "POST", headers: { cookie, "sec-fetch-site": "same-origin" }, body: COMMAND });
    expect(sameOrigin.status).toBe(202);
    const crossSite = await fetchAt(path, { method: "POST", headers: { cookie, "sec-fetch-site": "cross-site" }, body: COMMAND });
    expect(crossSite.status).toBe(403);
    // An API client: no Origin, a bearer token.
    const api = await fetchAt(path, { method: "POST", headers: asAdmin, body: COMMAND });
    expect(api.status).toBe(202);
  });

  it("compares the scheme: an http page may not use an https endpoint's session, directly or behind a TLS proxy", async () => {
    const id = uniqueId("origin");
    await register(id);
    const cookie = await signIn();

    const direct = `https://iot.test/api/devices/${id}/commands`;
    const insecure = await fetchAt(direct, { method: "POST", headers: { cookie, origin: "http://iot.test" }, body: COMMAND });
    expect(insecure.status).toBe(403);
    expect((await json(insecure)).error.code).toBe("bad_origin");
    expect((await fetchAt(direct, { method: "POST", headers: { cookie, origin: "https://iot.test" }, body: COMMAND })).status).toBe(202);

    // nginx terminates TLS and forwards plain http with X-Forwarded-Proto: https.
    const proxied = `http://iot.test/api/devices/${id}/commands`;
    const viaProxy = (origin: string) =>
      fetchAt(proxied, { method: "POST", headers: { cookie, origin, "x-forwarded-proto": "https" }, body: COMMAND });
    expect((await viaProxy("http://iot.test")).status).toBe(403);
    expect((await viaProxy("https://iot.test")).status).toBe(202);
  });

  it("refuses a socket upgrade from our host over another scheme", async () => {
    const id = uniqueId("origin");
    await register(id);
    const open = async (origin: string) =>
      fetchAt(`https://iot.test/parties/device/${id}?ticket=${await ticket(id, "dashboard")}`, { headers: { Upgrade: "websocket", origin } });
    const insecure = await open("http://iot.test");
    expect(insecure.status).toBe(403);
    expect((await json(insecure)).error.code).toBe("bad_origin");
    const own = await open("https://iot.test");
    expect(own.status).toBe(101);
    own.webSocket!.accept();
    own.webSocket!.close();
  });
});
