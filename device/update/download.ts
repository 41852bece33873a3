/**
 * A release download that survives a flaky link: the bytes go to a `.part` file in the state
 * directory, and each attempt asks for the rest only (`Range: bytes=<have>-`), so a Pi on bad
 * Wi-Fi that loses the link at 80 % fetches the last 20 %, not the whole artifact again.
 * One attempt per call; the caller retries.
 */
import { mkdirSync } from "node:fs";
import { open, stat, truncate } from "node:fs/promises";
import { dirname } from "node:path";

/** No byte for this long: the attempt is given up (and resumed by the next one). */
const IDLE_MS = 30_000;

export type DownloadOptions = {
  url: URL;
  token?: string;
  /** The `.part` file: kept between attempts and across restarts. */
  path: string;
  size: number;
  /** Bytes held so far, after each chunk. */
  onProgress?: (bytes: number) => void;
  fetch?: typeof fetch;
};

/** Bring `path` to `size` bytes from `url`; throws (the `.part` kept) when the attempt fails. Returns bytes fetched. */
export async function downloadResumable(o: DownloadOptions): Promise<{ fetched: number; resumedFrom: number }> {
  mkdirSync(dirname(o.path), { recursive: true });
  let have = await sizeOf(o.path);
  if (have > o.size) {
    await truncate(o.path, 0);
    have = 0;
  }
  if (have === o.size) return { fetched: 0, resumedFrom: have };
  const abort = new AbortController();
  let idle = setTimeout(() => abort.abort(new Error(`no data for ${IDLE_MS / 1000} s`)), IDLE_MS);
  const headers: Record<string, string> = {};
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (have > 0) headers.range = `bytes=${have}-`;
  try {
    const res = await (o.fetch ?? fetch)(o.url, { headers, signal: abort.signal });
    if (res.status === 416) {
      // What we hold does not fit this artifact (it changed under the same name?): start again.
      await truncate(o.path, 0);
      throw new Error("the endpoint refused the range; starting the download again");
    }
    if (res.status !== 200 && res.status !== 206) {
      const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
      throw new Error(`${res.status} ${body?.error?.code ?? ""}: ${body?.error?.message ?? res.statusText}`.trim());
    }
    const start = res.status === 206 ? Number(/^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "")?.[1] ?? NaN) : 0;
    if (res.status === 206 && start !== have) throw new Error(`asked for bytes from ${have}, got a range from ${start}`);
    const resumedFrom = start;
    const file = await open(o.path, res.status === 200 ? "w" : "a");
    let fetched = 0;
    try {
      have = start;
      for await (const chunk of res.body ?? []) {
        clearTimeout(idle);
        idle = setTimeout(() => abort.abort(new Error(`no data for ${IDLE_MS / 1000} s`)), IDLE_MS);
        const bytes = chunk as Uint8Array;
        if (have + bytes.length > o.size) throw new Error(`the endpoint sent more than the signed size (${o.size} bytes)`);
        await file.write(bytes);
        have += bytes.length;
        fetched += bytes.length;
        o.onProgress?.(have);
      }
      await file.sync();
    } finally {
      await file.close();
    }
    if (have !== o.size) throw new Error(`the download ended at ${have} of ${o.size} bytes`);
    return { fetched, resumedFrom };
  } finally {
    clearTimeout(idle);
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}
