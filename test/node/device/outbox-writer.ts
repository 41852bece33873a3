/**
 * Child process for the crash test: appends readings as fast as the disk
 * allows and prints each committed seq, until it is killed with SIGKILL.
 *   node outbox-writer.ts <path>
 */
import { Outbox } from "../../../device/outbox.ts";

const quiet = { info() {}, warn() {}, error() {} };
const outbox = new Outbox(process.argv[2]!, { log: quiet, maxReadings: 1_000_000 });
process.stdout.write(`stream ${outbox.stream}\n`);
for (;;) {
  const r = outbox.append({ ts: Date.now(), temperature: 20 + Math.random(), scale: "C" });
  process.stdout.write(`committed ${r.seq}\n`);
}
