/**
 * Child process for the crash tests: appends readings and prints what is safe on
 * disk after each, until it is killed with SIGKILL.
 *   node outbox-writer.ts <path> [strict|memory|batching|acked] [spillMs] [spillMax] [spillUnwatchedMs]
 *  - strict: every append is committed; prints `committed <seq>`;
 *  - memory: memory first, one reading every 2 ms; prints `appended <seq>` and
 *    `spilled <seq>` (the highest seq on disk) whenever a spill moved it; each
 *    `appended` line also carries when (performance.now(), ms);
 *  - batching: the same while the room batches (setBatching(true)): the unwatched bound;
 *  - acked: memory first, every reading acked at once as a prompt room would: nothing
 *    is spilled, only the `issued` mark is written; prints `appended <seq>`.
 */
import { Outbox } from "../../../device/outbox.ts";

const [path, mode = "strict", spillMs = "100", spillMax = "50", spillUnwatchedMs = "500"] = process.argv.slice(2);
const quiet = { info() {}, warn() {}, error() {} };
const outbox = new Outbox(path!, { log: quiet, maxReadings: 1_000_000, spillMs: mode === "strict" ? 0 : Number(spillMs), spillMax: Number(spillMax), spillUnwatchedMs: Number(spillUnwatchedMs) });
if (mode === "batching") outbox.setBatching(true);
process.stdout.write(`stream ${outbox.stream}\n`);
const reading = () => ({ ts: Date.now(), temperature: 20 + Math.random(), scale: "C" as const });
if (mode === "strict") {
  for (;;) process.stdout.write(`committed ${outbox.append(reading()).seq}\n`);
}
if (mode === "acked") {
  // Yielding between bursts: a loop that never yields starves the pipe to the parent.
  setInterval(() => {
    for (let i = 0; i < 50; i++) {
      const r = outbox.append(reading());
      outbox.ack(r.seq);
      process.stdout.write(`appended ${r.seq}\n`);
    }
  }, 1);
} else {
  let spilled = 0;
  // Paced, so the spill deadline (not only the count bound) is what spills.
  setInterval(() => {
    const r = outbox.append(reading());
    process.stdout.write(`appended ${r.seq} ${performance.now().toFixed(1)}\n`);
    const onDisk = outbox.next - 1 - outbox.inMemory;
    if (onDisk > spilled) process.stdout.write(`spilled ${(spilled = onDisk)}\n`);
  }, 2);
}
