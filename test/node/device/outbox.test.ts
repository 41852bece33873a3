import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, describe, expect, it } from "vitest";
import { DesiredState } from "../../../party/protocol.ts";
import { DEFAULT_SPILL_MS, DEFAULT_SPILL_UNWATCHED_MS, ISSUED_EVERY, Outbox, ReadingRefused } from "../../../device/outbox.ts";
import { memoryLogger } from "./fakes.ts";
import { mountSmallDisk } from "./tmpfs.ts";

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
    expect(outbox.ack(10)).toBe(6);
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

  it("continues numbering after an ack past its last seq (readings the room got from memory before a restart), not after a wild one", () => {
    const log = memoryLogger();
    const outbox = new Outbox(fresh(), { log, memoryMax: 100 });
    for (let i = 0; i < 3; i++) outbox.append(reading(i));
    // The room acks 7: seqs 4..7 were numbered in memory by a run that died on a full disk.
    expect(outbox.ack(7)).toBe(7);
    expect(outbox.oldest).toBe(8);
    expect(outbox.append(reading(3)).seq).toBe(8); // not 4: the room keeps a 4 already
    expect(log.warnings).toEqual([expect.stringMatching(/acked seq 7, past this outbox's last \(3\)/)]);
    // An ack further ahead than any memory-held run could reach is not followed.
    expect(outbox.ack(1_000_000)).toBe(1);
    expect(outbox.next).toBe(9);
    outbox.close();
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

  it("strict: recovers after a kill -9 in the middle of writing: every committed reading is there, nothing torn, seqs contiguous", async () => {
    const path = fresh();
    let stream: string | undefined;
    for (let round = 0; round < 3; round++) {
      const { last: lastCommitted, streamLine } = await writeUntilKilled(path, "strict", "committed", 100 * (round + 1));
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

/** Bytes in the outbox's WAL now (0 when there is none yet). */
const walBytes = (path: string) => (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);
/** The file's rows, read after the outbox closed (it holds an exclusive lock while open). */
function rowsOnDisk(path: string): { seqs: number[]; issued: string | undefined } {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const seqs = (db.prepare("SELECT seq FROM readings ORDER BY seq").all() as { seq: number }[]).map((r) => r.seq);
    const issued = (db.prepare("SELECT value FROM meta WHERE key = 'issued'").get() as { value: string } | undefined)?.value;
    return { seqs, issued };
  } finally {
    db.close();
  }
}

describe("outbox, memory first (the default)", () => {
  /** A clock the test moves by hand: the spill deadline is checked against it. */
  const clock = () => {
    const c = { t: 0, now: () => c.t };
    return c;
  };

  it("is the default, and strict is spillMs 0", () => {
    const a = new Outbox(fresh(), { log: memoryLogger() });
    expect(a.spillMs).toBe(DEFAULT_SPILL_MS);
    a.close();
    const b = new Outbox(fresh(), { log: memoryLogger(), spillMs: 0 });
    b.append(reading(0));
    expect(b.inMemory).toBe(0); // strict: on disk before append returns
    b.close();
  });

  it("readings acked promptly never touch the disk: the WAL does not grow, and the file learns only how far numbering went", () => {
    const path = fresh();
    const c = clock();
    const outbox = new Outbox(path, { log: memoryLogger(), now: c.now });
    const wal = walBytes(path);
    for (let i = 0; i < 200; i++) {
      c.t += 1000;
      const r = outbox.append(reading(i));
      // The room acks 15 s late (its group commit while watched): still inside the 30 s bound.
      if (r.seq > 15) outbox.ack(r.seq - 15);
    }
    expect(outbox.inMemory).toBe(15);
    expect(walBytes(path)).toBe(wal); // before: ~21 KB written per reading
    outbox.ack(200);
    expect(outbox.size).toBe(0);
    outbox.close();
    expect(rowsOnDisk(path)).toEqual({ seqs: [], issued: "200" });
    const again = new Outbox(path, { log: memoryLogger() });
    expect(again.append(reading(200)).seq).toBe(201); // never 1 again: seqs are not reused
    again.close();
  });

  it("writes what is not acked within spillMs, all of memory in one go, and again spillMs later", () => {
    const path = fresh();
    const c = clock();
    const outbox = new Outbox(path, { log: memoryLogger(), now: c.now, spillMs: 30_000 });
    for (let i = 0; i < 30; i++) {
      outbox.append(reading(i));
      c.t += 1000;
    }
    // t = 30 s: the first reading (t = 0) is due; this append writes all 31 held.
    expect(outbox.inMemory).toBe(30);
    outbox.append(reading(30));
    expect(outbox.inMemory).toBe(0);
    for (let i = 31; i < 40; i++) {
      c.t += 1000;
      outbox.append(reading(i));
    }
    expect(outbox.inMemory).toBe(9);
    // Disk first, then memory, one sequence; an ack prunes both.
    expect(seqs(outbox)).toEqual(range(1, 40));
    expect(outbox.ack(35)).toBe(35);
    expect(seqs(outbox)).toEqual(range(36, 40));
    expect(outbox.inMemory).toBe(5);
    outbox.close(); // a clean stop writes the memory part
    expect(rowsOnDisk(path).seqs).toEqual(range(36, 40));
  });

  it("while the room batches (setBatching), waits spillUnwatchedMs instead; back to spillMs at once when it stops, and strict ignores it", () => {
    const path = fresh();
    const c = clock();
    const outbox = new Outbox(path, { log: memoryLogger(), now: c.now });
    expect([outbox.spillMs, outbox.spillUnwatchedMs, outbox.spillAfterMs]).toEqual([DEFAULT_SPILL_MS, DEFAULT_SPILL_UNWATCHED_MS, DEFAULT_SPILL_MS]);
    outbox.setBatching(true);
    expect(outbox.spillAfterMs).toBe(DEFAULT_SPILL_UNWATCHED_MS);
    const every = DEFAULT_SPILL_UNWATCHED_MS / 1000;
    for (let i = 0; i < every; i++) {
      outbox.append(reading(i));
      c.t += 1000;
    }
    expect(outbox.inMemory).toBe(every); // past 30 s, held: the room cannot ack before its batch
    outbox.append(reading(every));
    expect(outbox.inMemory).toBe(0); // the oldest waited the unwatched bound: all written in one go
    for (let i = 0; i < 45; i++) {
      c.t += 1000;
      outbox.append(reading(every + 1 + i));
    }
    expect(outbox.inMemory).toBe(45);
    outbox.setBatching(false); // offline, or watched again: 30 s, counted from each append
    expect(outbox.inMemory).toBe(0);
    outbox.close();
    expect(rowsOnDisk(path).seqs).toEqual(range(1, every + 46));
    const strict = new Outbox(fresh(), { log: memoryLogger(), spillMs: 0 });
    strict.setBatching(true);
    expect(strict.spillAfterMs).toBe(0);
    strict.append(reading(0));
    expect(strict.inMemory).toBe(0);
    strict.close();
  });

  it("the spill timer follows the bound as it changes while readings wait: lengthened, nothing is written early; shortened, past-due readings are written at once", async () => {
    const path = fresh();
    const outbox = new Outbox(path, { log: memoryLogger(), spillMs: 100, spillUnwatchedMs: 60_000 });
    for (let i = 0; i < 3; i++) outbox.append(reading(i)); // a 100 ms timer armed
    outbox.setBatching(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(outbox.inMemory).toBe(3); // the 100 ms bound does not apply while batching
    outbox.setBatching(false);
    expect(outbox.inMemory).toBe(0);
    outbox.append(reading(3)); // and the 100 ms timer again, with no append after it
    await expect.poll(() => outbox.inMemory, { timeout: 2_000 }).toBe(0);
    outbox.close();
    expect(rowsOnDisk(path).seqs).toEqual([1, 2, 3, 4]);
  });

  it("writes once spillMax readings wait, whatever their age", () => {
    const c = clock();
    const outbox = new Outbox(fresh(), { log: memoryLogger(), now: c.now, spillMax: 10 });
    for (let i = 0; i < 9; i++) outbox.append(reading(i));
    expect(outbox.inMemory).toBe(9);
    outbox.append(reading(9));
    expect(outbox.inMemory).toBe(0);
    outbox.close();
  });

  it("writes on time when no new reading comes (a timer, not only the next append)", async () => {
    const path = fresh();
    const outbox = new Outbox(path, { log: memoryLogger(), spillMs: 50 });
    for (let i = 0; i < 3; i++) outbox.append(reading(i));
    expect(outbox.inMemory).toBe(3);
    await expect.poll(() => outbox.inMemory, { timeout: 2_000 }).toBe(0);
    outbox.close();
    expect(rowsOnDisk(path).seqs).toEqual([1, 2, 3]);
  });

  it("close writes the memory part: nothing is lost on a clean stop, and numbering continues after it", () => {
    const path = fresh();
    const outbox = new Outbox(path, { log: memoryLogger() });
    for (let i = 0; i < 7; i++) outbox.append(reading(i));
    outbox.ack(2);
    expect(outbox.inMemory).toBe(5);
    outbox.close();
    const again = new Outbox(path, { log: memoryLogger() });
    expect(again.readAfter(0)).toEqual(range(3, 7).map((seq) => ({ seq, ...reading(seq - 1) })));
    expect(again.append(reading(7)).seq).toBe(8);
    again.close();
  });

  it("kill -9 mid-spill: every spilled reading is there, in order, no seq twice; the loss is within spillMax (and spillMs)", async () => {
    const path = fresh();
    const spillMax = 50;
    let expected = 0;
    for (let round = 0; round < 3; round++) {
      const { last: spilled, appended } = await writeUntilKilled(path, "memory", "spilled", expected + 150, ["100", String(spillMax)]);
      const outbox = new Outbox(path, { log: memoryLogger(), spillMs: 0 });
      const all = outbox.readAfter(0, 1_000_000);
      const got = all.map((r) => r.seq);
      // Contiguous from 1: what an earlier round lost was numbered again, so no gap and no duplicate.
      expect(got).toEqual(range(1, got.length));
      expect(got.length).toBeGreaterThanOrEqual(spilled);
      // Lost: appended in this round but neither spilled nor (here) acked, at most spillMax.
      expect(appended - got.length).toBeLessThanOrEqual(spillMax);
      expect(appended - got.length).toBeGreaterThanOrEqual(0);
      // Ordered by time too: a renumbered seq carries a later reading, never an earlier one.
      for (let i = 1; i < all.length; i++) expect(all[i]!.ts).toBeGreaterThanOrEqual(all[i - 1]!.ts);
      expected = got.length;
      outbox.close();
    }
  });

  it("kill -9 while the room batches: spilled readings survive, and only readings younger than spillUnwatchedMs are lost", async () => {
    const path = fresh();
    const spillUnwatchedMs = 400;
    // Timer and scheduling lateness in a busy test run: a spill may come this much after its deadline.
    const slack = 150;
    let expected = 0;
    for (let round = 0; round < 3; round++) {
      const { last: spilled, appended, times, spills } = await writeUntilKilled(path, "batching", "spilled", expected + 300, ["100", "5000", String(spillUnwatchedMs)]);
      const outbox = new Outbox(path, { log: memoryLogger(), spillMs: 0 });
      const got = outbox.readAfter(0, 1_000_000).map((r) => r.seq);
      expect(got).toEqual(range(1, got.length));
      expect(got.length).toBeGreaterThanOrEqual(spilled);
      // The unwatched bound was the one used: each spill held ~400 ms of readings (with
      // spillMs 100, as before, ~100 ms).
      expect(spills.filter((seq) => seq > expected).length).toBeGreaterThan(0);
      // A new run numbers after what the file holds; its first `spilled` line is that.
      const start = Math.min(...times.keys());
      let previous = start - 1;
      for (const s of spills.filter((seq) => seq >= start)) {
        expect(times.get(s)! - times.get(previous + 1)!).toBeGreaterThanOrEqual(spillUnwatchedMs - 100);
        previous = s;
      }
      const lastAt = times.get(appended)!;
      // Every lost reading (appended, not on disk) was younger than the bound when the writer died.
      for (let seq = got.length + 1; seq <= appended; seq++) expect(lastAt - times.get(seq)!).toBeLessThanOrEqual(spillUnwatchedMs + slack);
      expected = got.length;
      outbox.close();
    }
  });

  it("kill -9 after readings were acked from memory: the next run numbers after them (the issued mark, every ISSUED_EVERY)", async () => {
    const path = fresh();
    const { appended } = await writeUntilKilled(path, "acked", "appended", 2 * ISSUED_EVERY + 500);
    const outbox = new Outbox(path, { log: memoryLogger() });
    expect(outbox.size).toBe(0);
    // Numbering resumes at most ISSUED_EVERY behind where it was...
    expect(outbox.next).toBeGreaterThan(appended - ISSUED_EVERY);
    expect(outbox.next).toBeLessThanOrEqual(appended + 1);
    // ...and the room's ack on hello (everything it stored) moves it past every seq it keeps.
    outbox.ack(appended);
    expect(outbox.append(reading(0)).seq).toBe(appended + 1);
    outbox.close();
  });
});

/**
 * Run the writer child (outbox-writer.ts, in `mode`) until its `<word> <seq>` lines reach
 * `atLeast`, then SIGKILL it. Returns the last seq it printed for `word`, and for `appended`.
 */
function writeUntilKilled(
  path: string,
  mode: "strict" | "memory" | "batching" | "acked",
  word: "committed" | "spilled" | "appended",
  atLeast: number,
  args: string[] = [],
): Promise<{ last: number; appended: number; streamLine: string; times: Map<number, number>; spills: number[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", join(import.meta.dirname, "outbox-writer.ts"), path, mode, ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let last = 0;
    let appended = 0;
    let streamLine = "";
    let buffered = "";
    // When each seq was appended (the writer's clock), and each seq a spill reached, in order.
    const times = new Map<number, number>();
    const spills: number[] = [];
    const note = (line: string) => {
      const [key, value, at] = line.split(" ");
      if (key === "appended" && at) times.set(Number(value), Number(at));
      if (key === "spilled" && value) spills.push(Number(value));
    };
    let killed = false;
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        note(line);
        const [key, value] = line.split(" ");
        if (key === "stream") streamLine = value!;
        if (key === word) last = Number(value);
        if (key === "appended") appended = Number(value);
      }
      if (!killed && last >= atLeast) {
        killed = true;
        child.kill("SIGKILL");
      }
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`writer reached only ${word} ${last} in 20 s`));
    }, 20_000);
    child.on("exit", (_code, signal) => {
      clearTimeout(timer);
      if (signal !== "SIGKILL") return reject(new Error(`writer exited on its own (${signal ?? _code})`));
      // Lines still in the pipe when it died: a reading printed is a reading the child had.
      for (const line of buffered.split("\n")) {
        if (line.split(" ").length === 3) note(line); // a whole line (a torn last one has no time yet)
        const [key, value] = line.split(" ");
        if (key === word && value) last = Math.max(last, Number(value));
        if (key === "appended" && value) appended = Math.max(appended, Number(value));
      }
      resolve({ last, appended, streamLine, times, spills });
    });
  });
}

/**
 * A full disk, for real: a 256 KB tmpfs filled with a filler file (issue 13, item 5). Before,
 * the outbox died at open with "disk I/O error" and, filling while running, threw
 * "cannot rollback - no transaction is active" for every reading, which was then lost.
 */
const disk = mountSmallDisk(256);
afterAll(() => disk?.unmount());

describe.skipIf(!disk)("outbox on a full disk (a real 256 KB tmpfs)", () => {
  let k = 0;
  const onDisk = () => join(disk!.dir, `state-${k++}`, "outbox.sqlite");
  const problemText = /^no space left on device \(SQLITE_FULL\) in \/.+: readings held in memory \(up to \d+\)$/;

  it("opens an outbox on a full disk, holds new readings in memory with the cause named, and writes them in order when space returns", () => {
    const path = onDisk();
    const first = new Outbox(path, { log: memoryLogger() });
    for (let i = 0; i < 5; i++) first.append(reading(i));
    first.setJson("desired", { scale: "C", intervalMs: 2000 });
    first.ack(2);
    const stream = first.stream;
    first.close();

    disk!.fill();
    const log = memoryLogger();
    // Strict: each append tries the disk, as memory first does once a spill is due.
    const outbox = new Outbox(path, { log, retryMs: 0, spillMs: 0 });
    expect(outbox.stream).toBe(stream);
    expect(outbox.getJson("desired", DesiredState)).toEqual({ scale: "C", intervalMs: 2000 });
    expect(outbox.readAfter(0).map((r) => r.seq)).toEqual([3, 4, 5]);
    for (let i = 5; i < 25; i++) expect(outbox.append(reading(i)).seq).toBe(i + 1);
    expect(outbox.problem).toMatch(problemText);
    expect(log.warnings[0]).toMatch(/^Outbox: cannot write .*outbox\.sqlite: no space left on device \(SQLITE_FULL\), 0 KB free/);
    expect(log.warnings.join("\n")).not.toMatch(/rollback/);
    expect(outbox.inMemory).toBe(20);
    // Disk rows and memory rows read as one sequence; an ack prunes memory too, and the disk can wait.
    expect(outbox.readAfter(0, 1000).map((r) => r.seq)).toEqual(range(3, 25));
    expect(outbox.readAfter(4, 3)).toEqual([4, 5, 6].map((i) => ({ seq: i + 1, ...reading(i) })));
    expect(outbox.ack(10)).toBe(8);
    expect(outbox.inMemory).toBe(15);
    outbox.setJson("desired", { scale: "F", intervalMs: 1000 });
    expect(outbox.getJson("desired", DesiredState)).toEqual({ scale: "F", intervalMs: 1000 });

    disk!.free();
    expect(outbox.append(reading(25)).seq).toBe(26);
    expect(outbox.problem).toBeUndefined();
    expect(outbox.inMemory).toBe(0);
    expect(log.lines.at(-1)).toMatch(/^Outbox: writing to disk again \(was: no space left on device.*\); 15 readings held in memory are now in /);
    outbox.close();

    const again = new Outbox(path, { log: memoryLogger() });
    expect(again.readAfter(0, 1000)).toEqual(range(11, 26).map((seq) => ({ seq, ...reading(seq - 1) })));
    expect(again.next).toBe(27);
    expect(again.getJson("desired", DesiredState)).toEqual({ scale: "F", intervalMs: 1000 });
    again.close();
  });

  it("fills up while running: no append throws and no reading is lost until memory is full; then the newest are refused, said once", () => {
    const path = onDisk();
    const log = memoryLogger();
    const outbox = new Outbox(path, { log, memoryMax: 200, retryMs: 0, spillMs: 0 });
    outbox.append(reading(0));
    disk!.fill(48 * 1024); // a few more commits' worth of WAL, then full
    const kept: number[] = [];
    let refused = 0;
    for (let i = 1; i < 400; i++) {
      try {
        kept.push(outbox.append(reading(i)).seq);
      } catch (err) {
        expect(err).toBeInstanceOf(ReadingRefused);
        refused++;
      }
    }
    const onFile = 1 + kept.length - outbox.inMemory;
    expect(onFile).toBeGreaterThan(1); // some went to the file before it filled
    expect(outbox.inMemory).toBe(200);
    expect(kept).toEqual(range(2, kept.length + 1)); // contiguous: a refused reading takes no seq
    expect(refused).toBe(399 - kept.length);
    expect(outbox.problem).toMatch(/^no space left on device \(SQLITE_FULL\) in .*: memory full \(200 readings\): newer readings are lost$/);
    expect(log.warnings.filter((w) => /memory full too/.test(w))).toHaveLength(1);
    expect(outbox.readAfter(0, 1000).map((r) => r.temperature)).toEqual([0, ...kept.map((s) => s - 1)].map((i) => reading(i).temperature));

    disk!.free();
    outbox.append(reading(400));
    expect(outbox.problem).toBeUndefined();
    outbox.close();
    const again = new Outbox(path, { log: memoryLogger() });
    expect(again.readAfter(0, 1000).map((r) => r.seq)).toEqual(range(1, kept.length + 2));
    again.close();
  });

  it("a fresh state directory on a full disk: runs from memory, and makes the file (same stream) when space returns", () => {
    disk!.fill();
    const path = onDisk();
    const log = memoryLogger();
    const outbox = new Outbox(path, { log, retryMs: 0, spillMs: 0 });
    expect(outbox.problem).toMatch(/^no space left on device/);
    for (let i = 0; i < 3; i++) outbox.append(reading(i));
    expect(outbox.readAfter(0).map((r) => r.seq)).toEqual([1, 2, 3]);
    disk!.free();
    outbox.append(reading(3));
    expect(outbox.problem).toBeUndefined();
    const stream = outbox.stream;
    outbox.close();
    const again = new Outbox(path, { log: memoryLogger() });
    expect(again.stream).toBe(stream);
    expect(again.readAfter(0).map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    again.close();
  });
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
