import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, describe, expect, it } from "vitest";
import { DesiredState } from "../../../party/protocol.ts";
import { Outbox } from "../../../device/outbox.ts";
import { memoryLogger } from "./fakes.ts";

const dir = mkdtempSync(join(tmpdir(), "iot-outbox-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `outbox-${n++}.sqlite`);
const reading = (i: number) => ({ ts: 1_700_000_000_000 + i * 1000, temperature: 20 + i / 100, scale: "C" as const });
const seqs = (outbox: Outbox) => outbox.readAfter(0, 1_000_000).map((r) => r.seq);

describe("outbox", () => {
  it("numbers readings 1, 2, 3… and returns them in seq order, in batches", () => {
    const outbox = new Outbox(fresh(), { log: memoryLogger() });
    const stored = [0, 1, 2, 3, 4, 5].map((i) => outbox.append(reading(i)));
    expect(stored.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(stored[2]).toEqual({ seq: 3, ...reading(2) });
    expect(outbox.readAfter(3, 2)).toEqual([
      { seq: 4, ...reading(3) },
      { seq: 5, ...reading(4) },
    ]);
    expect(outbox.oldest).toBe(1);
    expect(outbox.next).toBe(7);
    expect(outbox.size).toBe(6);
    outbox.close();
  });

  it("prunes on ack, and never reuses a seq, even after everything was pruned and the file reopened", () => {
    const path = fresh();
    const outbox = new Outbox(path, { log: memoryLogger() });
    for (let i = 0; i < 10; i++) outbox.append(reading(i));
    expect(outbox.ack(4)).toBe(4);
    expect(outbox.oldest).toBe(5);
    expect(seqs(outbox)).toEqual([5, 6, 7, 8, 9, 10]);
    expect(outbox.ack(3)).toBe(0); // an old ack changes nothing
    expect(outbox.ack(1_000)).toBe(6); // more than we hold: everything goes, nothing breaks
    expect(outbox.size).toBe(0);
    expect(outbox.oldest).toBe(11); // hello.oldest of an empty outbox is the next seq
    const stream = outbox.stream;
    outbox.close();

    const again = new Outbox(path, { log: memoryLogger() });
    expect(again.stream).toBe(stream);
    expect(again.oldest).toBe(11);
    expect(again.append(reading(10)).seq).toBe(11);
    again.close();
  });

  it("bounds itself: when full it drops the oldest, counts them (persisted) and logs it", () => {
    const path = fresh();
    const log = memoryLogger();
    const outbox = new Outbox(path, { log, maxReadings: 5 });
    for (let i = 0; i < 8; i++) outbox.append(reading(i));
    expect(outbox.size).toBe(5);
    expect(seqs(outbox)).toEqual([4, 5, 6, 7, 8]);
    expect(outbox.oldest).toBe(4);
    expect(outbox.dropped).toBe(3);
    // Logged, but throttled: the first drop says so at once, the rest are summed into the next line.
    expect(log.warnings).toEqual([expect.stringMatching(/^Outbox full \(5 readings\): dropped the oldest 1 .*1 dropped in all/)]);
    outbox.close();
    const again = new Outbox(path, { log, maxReadings: 3 });
    expect(again.dropped).toBe(3);
    again.append(reading(9)); // a smaller bound after a restart trims down to it at the next append
    expect(seqs(again)).toEqual([7, 8, 9]);
    expect(again.dropped).toBe(6);
    again.close();
  });

  it("keeps the desired state, validated on the way out", () => {
    const path = fresh();
    const log = memoryLogger();
    const outbox = new Outbox(path, { log });
    expect(outbox.getJson("desired", DesiredState)).toBeUndefined();
    outbox.setJson("desired", { scale: "C", intervalMs: 2000 });
    outbox.close();
    const again = new Outbox(path, { log });
    expect(again.getJson("desired", DesiredState)).toEqual({ scale: "C", intervalMs: 2000 });
    again.setJson("desired", { scale: "K", intervalMs: 2000 });
    expect(again.getJson("desired", DesiredState)).toBeUndefined();
    expect(log.warnings).toEqual(["outbox: ignoring an invalid stored desired"]);
    again.close();
  });

  it("recovers after a kill -9 in the middle of writing: every committed reading is there, nothing torn, seqs contiguous", async () => {
    const path = fresh();
    let stream: string | undefined;
    for (let round = 0; round < 3; round++) {
      const { lastCommitted, streamLine } = await writeUntilKilled(path, 100 * (round + 1));
      stream ??= streamLine;
      expect(streamLine).toBe(stream);
      const db = new DatabaseSync(path);
      expect(db.prepare("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
      db.close();
      const outbox = new Outbox(path, { log: memoryLogger() });
      const all = seqs(outbox);
      // Everything the child saw committed survived; at most the one being written when killed is gone.
      expect(all.length).toBeGreaterThanOrEqual(lastCommitted);
      expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
      expect(outbox.readAfter(0, 1_000_000).every((r) => r.scale === "C" && r.temperature >= 20 && r.temperature < 21)).toBe(true);
      expect(outbox.next).toBe(all.length + 1);
      outbox.close();
    }
  });
});

/** Run the writer child until it has committed at least `atLeast` readings, then SIGKILL it. */
function writeUntilKilled(path: string, atLeast: number): Promise<{ lastCommitted: number; streamLine: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", join(import.meta.dirname, "outbox-writer.ts"), path], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let lastCommitted = 0;
    let streamLine = "";
    let buffered = "";
    let killed = false;
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith("stream ")) streamLine = line.slice(7);
        if (line.startsWith("committed ")) lastCommitted = Number(line.slice(10));
      }
      if (!killed && lastCommitted >= atLeast) {
        killed = true;
        child.kill("SIGKILL");
      }
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`writer committed only ${lastCommitted} readings in 20 s`));
    }, 20_000);
    child.on("exit", (_code, signal) => {
      clearTimeout(timer);
      if (signal !== "SIGKILL") return reject(new Error(`writer exited on its own (${signal ?? _code})`));
      resolve({ lastCommitted, streamLine });
    });
  });
}
