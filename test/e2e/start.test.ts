/**
 * `npm start` (scripts/start.mjs) as a user runs it, in the two ways it used to
 * leave a mess (issue 11): a second one on another PORT over the same state, and
 * the first one killed outright (SIGKILL: nothing can catch it) with its endpoint,
 * workerd and agent still running behind it.
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { portFree } from "../../scripts/lib/port.mjs";
import { freePort, nodeProc, ROOT, waitFor, type Proc } from "../support/processes";

const tmp = mkdtempSync(join(tmpdir(), "iot-start-"));
const deviceIds: string[] = [];
const procs: Proc[] = [];

/** npm start's environment: its own state, secrets and device, nothing from the test's IOT_*. */
function startEnv(port: number, deviceId: string): NodeJS.ProcessEnv {
  deviceIds.push(deviceId);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("IOT_") && k !== "VERBOSE"));
  return {
    ...env,
    PORT: String(port),
    STATE_DIR: join(tmp, "state"),
    DEV_VARS: join(tmp, ".dev.vars"),
    DEVICE_ID: deviceId,
    // npm test built the dashboard already; a rebuild here would pull it from under the other projects' endpoints.
    SKIP_BUILD: "1",
  };
}

function npmStart(port: number, deviceId: string): Proc {
  const p = nodeProc("npm start", [join(ROOT, "scripts/start.mjs")], { env: startEnv(port, deviceId) });
  procs.push(p);
  return p;
}

/** Every live process and its process group, from /proc. */
function processes(): { pid: number; ppid: number; pgid: number; cmd: string }[] {
  const out = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // comm may hold spaces and parentheses: after its closing parenthesis come state, ppid, pgrp.
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const [, ppid, pgid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number) as number[];
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      out.push({ pid: Number(name), ppid: ppid!, pgid: pgid!, cmd });
    } catch {
      // It exited while we looked: not live.
    }
  }
  return out;
}

afterAll(async () => {
  for (const p of procs) await p.stop(5_000);
  // Whatever a failed test left: every group npm start made.
  rmSync(tmp, { recursive: true, force: true });
  for (const id of deviceIds) rmSync(join(ROOT, "device/.state", id), { recursive: true, force: true });
});

describe("npm start", () => {
  let first: Proc;
  let port: number;

  it("refuses a second npm start on another PORT over the same state, naming the first, and leaves it running", async () => {
    port = await freePort();
    first = npmStart(port, `start-a-${process.pid}`);
    await first.waitForLine("start: ready.", 0, 120_000);

    const otherPort = await freePort();
    const second = npmStart(otherPort, `start-b-${process.pid}`);
    const exit = await Promise.race([second.exited, new Promise((r) => setTimeout(r, 60_000, "still running"))]);
    expect(exit, second.tail()).toEqual({ code: 1, signal: null });
    expect(second.output()).toMatch(new RegExp(`in use by another endpoint \\(pid \\d+, port ${port}\\)`));
    // It started no agent (none printed its connected line) and left the port it was given alone.
    expect(second.output()).not.toContain("IoT Connected");
    expect(await portFree("127.0.0.1", otherPort)).toBe(true);

    // The first still answers and its device still streams.
    const res = await fetch(`http://127.0.0.1:${port}/api/session`);
    expect(res.status).toBe(401);
    expect(first.running).toBe(true);
  });

  it("leaves nothing running when it is killed outright (SIGKILL): endpoint, workerd and agent stop, the port and the state come free", async () => {
    const pid = first.child.pid!;
    // Its children lead process groups of their own (the endpoint's holds workerd).
    const groups = processes().filter((p) => p.ppid === pid).map((p) => p.pgid);
    expect(groups.length).toBeGreaterThanOrEqual(2); // the endpoint and the agent
    const inGroups = () => processes().filter((p) => groups.includes(p.pgid));
    expect(inGroups().some((p) => /workerd/.test(p.cmd))).toBe(true);

    process.kill(pid, "SIGKILL");
    await first.exited;
    await waitFor("npm start's children to stop", () => (inGroups().length === 0 ? true : null), 30_000, 200).catch((e) => {
      throw new Error(`${e.message}; still running:\n${inGroups().map((p) => `${p.pid} ${p.cmd}`).join("\n")}`);
    });
    expect(await portFree("127.0.0.1", port)).toBe(true);

    // The state is free again: a new npm start over it comes up.
    const again = npmStart(port, `start-a-${process.pid}`);
    await again.waitForLine("start: ready.", 0, 120_000);
  });
});
