/** The Updates page's and the firmware panel's wording and form parsing (dashboard/src/firmware-format.ts): pure, so tested in Node. */
import { describe, expect, it } from "vitest";
import type { Rollout, UpdateStatus } from "../../party/protocol";
import {
  bytesText,
  failureText,
  inProgress,
  pendingCount,
  phaseText,
  rolloutActions,
  rolloutPhase,
  rolloutRequest,
  stageText,
  targetText,
  UPDATE_STATES,
  updateText,
  type RolloutForm,
} from "../../dashboard/src/firmware-format";

const rollout = (over: Partial<Rollout> = {}): Rollout => ({
  id: "r-abcd1",
  release: "2.0.0",
  target: "all",
  stages: [5, 25, 100],
  stage: 0,
  failureThreshold: 3,
  stageMs: 0,
  state: "active",
  reason: null,
  createdAt: 1_000_000,
  createdBy: "admin",
  updatedAt: 1_000_000,
  stageStartedAt: 1_000_000,
  counts: {},
  failures: [],
  ...over,
});

const update = (over: Partial<UpdateStatus>): UpdateStatus => ({ version: "2.0.0", state: "applied", progress: null, reason: null, rollout: "r-abcd1", at: 0, ...over });

const form = (over: Partial<RolloutForm> = {}): RolloutForm => ({
  release: "2.0.0",
  target: "all",
  percent: "10",
  ids: "",
  stages: "100",
  failureThreshold: "5",
  stageMinutes: "0",
  ...over,
});

describe("rollout wording", () => {
  it("names every update step, in the order an update travels", () => {
    expect(UPDATE_STATES).toEqual(["downloading", "verifying", "installing", "restarting", "trial", "applied", "rolled-back", "failed", "unsupported"]);
  });

  it("says sizes and targets as people do", () => {
    expect(bytesText(840)).toBe("840 B");
    expect(bytesText(12_595)).toBe("12.3 KB");
    expect(bytesText(1_468_006)).toBe("1.4 MB");
    expect(targetText("all")).toBe("all devices");
    expect(targetText({ percent: 10 })).toBe("10 % of the fleet");
    expect(targetText({ ids: ["pi-1"] })).toBe("pi-1");
    expect(targetText({ ids: ["pi-1", "pi-2", "pi-3"] })).toBe("3 devices: pi-1, pi-2, pi-3");
    expect(targetText({ ids: ["a", "b", "c", "d", "e"] })).toBe("5 devices: a, b, c and 2 more");
  });

  it("says the stage in force as a share of the target", () => {
    expect(stageText(rollout({ stage: 1 }))).toBe("stage 2 of 3: 25 % of the target");
    expect(stageText(rollout({ stages: [100] }))).toBe("one stage: 100 % of the target");
  });

  it("offers pause or resume, advance until the last stage, and cancel until cancelled", () => {
    expect(rolloutActions(rollout())).toEqual(["pause", "advance", "cancel"]);
    expect(rolloutActions(rollout({ state: "paused" }))).toEqual(["resume", "advance", "cancel"]);
    expect(rolloutActions(rollout({ stage: 2 }))).toEqual(["pause", "cancel"]);
    expect(rolloutActions(rollout({ state: "cancelled" }))).toEqual([]);
  });

  it("counts listed devices that have not reported, and knows it cannot for all or a percentage", () => {
    expect(pendingCount(rollout({ target: { ids: ["a", "b", "c"] }, counts: { applied: 1 } }))).toBe(2);
    expect(pendingCount(rollout({ target: "all", counts: { applied: 1 } }))).toBeNull();
    expect(pendingCount(rollout({ target: { percent: 10 } }))).toBeNull();
  });

  it("calls a rollout complete only when every listed device finished at its last stage", () => {
    const done: Partial<Rollout> = { target: { ids: ["a", "b"] }, stages: [100], counts: { applied: 1, failed: 1 } };
    expect(rolloutPhase(rollout(done))).toBe("complete");
    expect(phaseText(rollout(done))).toBe("Complete");
    // One still downloading, one not started, or a stage still to come: not complete.
    expect(rolloutPhase(rollout({ ...done, counts: { applied: 1, downloading: 1 } }))).toBe("active");
    expect(rolloutPhase(rollout({ ...done, counts: { applied: 1 } }))).toBe("active");
    expect(rolloutPhase(rollout({ ...done, stages: [50, 100], stage: 0 }))).toBe("active");
    // Nobody can know when "all" is done.
    expect(rolloutPhase(rollout({ stages: [100], counts: { applied: 40 } }))).toBe("active");
  });

  it("gives the reason a rollout was paused or cancelled", () => {
    expect(phaseText(rollout({ state: "paused", reason: "3 device(s) failed or rolled back (threshold 3)" }))).toBe(
      "Paused: 3 device(s) failed or rolled back (threshold 3)",
    );
    expect(phaseText(rollout({ state: "cancelled", reason: null }))).toBe("Cancelled");
  });

  it("says each failure with its device, its reason and when", () => {
    expect(failureText({ device: "pi-7", state: "rolled-back", reason: "exited at start (code 1)", at: 1_000 }, 181_000)).toBe(
      "pi-7 rolled back: exited at start (code 1) (3 min ago)",
    );
    expect(failureText({ device: "pi-8", state: "failed", reason: null, at: 1_000 }, 2_000)).toBe("pi-8 failed (just now)");
  });

  it("says a device's update step with its progress or its reason", () => {
    expect(updateText(update({ state: "downloading", progress: 0.406 }))).toBe("Downloading 2.0.0: 40 %");
    expect(updateText(update({ state: "downloading", progress: null }))).toBe("Downloading 2.0.0");
    expect(updateText(update({ state: "trial" }))).toBe("On trial 2.0.0");
    expect(updateText(update({ state: "applied" }))).toBe("2.0.0 applied");
    expect(updateText(update({ version: "3.0.0", state: "rolled-back", reason: "exited at start" }))).toBe("3.0.0 rolled back: exited at start");
    expect(updateText(update({ version: "2.1.0", state: "failed", reason: "sha256 mismatch" }))).toBe("2.1.0 failed: sha256 mismatch");
    expect(updateText(update({ state: "unsupported", reason: "no IOT_RELEASE_KEY pinned" }))).toBe("2.0.0 not installed: no IOT_RELEASE_KEY pinned");
    expect(inProgress("unsupported")).toBe(false);
  });
});

describe("the Start a rollout form", () => {
  it("makes the request the endpoint takes, with its defaults filled in", () => {
    expect(rolloutRequest(form())).toEqual({ ok: true, body: { release: "2.0.0", target: "all", stages: [100], failureThreshold: 5, stageMs: 0 } });
    expect(rolloutRequest(form({ target: "percent", percent: "10%", stages: "5, 25,100", stageMinutes: "1.5", failureThreshold: "" }))).toEqual({
      ok: true,
      body: { release: "2.0.0", target: { percent: 10 }, stages: [5, 25, 100], failureThreshold: 5, stageMs: 90_000 },
    });
  });

  it("takes ids separated by commas, spaces or lines, once each", () => {
    const parsed = rolloutRequest(form({ target: "ids", ids: "pi-1, pi-2\npi-3 pi-1" }));
    expect(parsed.ok && parsed.body.target).toEqual({ ids: ["pi-1", "pi-2", "pi-3"] });
  });

  it("names the mistake before anything is sent", () => {
    const message = (f: Partial<RolloutForm>) => {
      const r = rolloutRequest(form(f));
      return r.ok ? null : r.message;
    };
    expect(message({ release: "" })).toBe("Choose a release.");
    expect(message({ target: "percent", percent: "0" })).toMatch(/Percentage/);
    expect(message({ target: "percent", percent: "150" })).toMatch(/Percentage/);
    expect(message({ target: "ids", ids: " , " })).toBe("Name at least one device id.");
    expect(message({ stages: "50, 10" })).toBe("stages: rising percentages, e.g. [5, 25, 100]");
    expect(message({ stages: "five" })).toMatch(/^Stages:/);
    expect(message({ failureThreshold: "0" })).toMatch(/^failureThreshold:/);
    expect(message({ target: "ids", ids: "bad id!" })).toMatch(/^target/);
    expect(message({ stageMinutes: "-1" })).toMatch(/Minutes/);
  });
});
