// Preloaded into each child `npm start` runs (`node --import …/exit-with-parent.mjs`).
// npm start stops its children itself on Ctrl-C and SIGTERM, but nothing can catch a
// SIGKILL (the OOM killer, `kill -9`, an IDE that gives up): its children would live on,
// holding the port and the outbox. Each child gets a pipe as stdin from npm start
// instead; the kernel closes it when npm start dies, however it dies, and the child
// then sends SIGTERM to its own process group (it leads one: npm start spawns it
// detached), so the endpoint's workerd goes with it and each runs its own clean stop.
if (!process.stdin.isTTY) {
  let gone = false;
  const parentGone = () => {
    if (gone) return;
    gone = true;
    try {
      process.kill(-process.pid, "SIGTERM");
    } catch {
      process.kill(process.pid, "SIGTERM"); // not a group leader after all: this process alone
    }
  };
  process.stdin.on("end", parentGone);
  process.stdin.on("close", parentGone);
  process.stdin.on("error", parentGone);
  process.stdin.resume();
}
