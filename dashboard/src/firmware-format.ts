/**
 * Pure wording and form parsing for over-the-air updates (docs/updates.md): the Updates page
 * (rollouts-view.ts) and the device page's firmware panel (firmware-panel.ts). No DOM, no clock
 * (callers pass `now`), so it is unit-tested in Node (test/node/dashboard-firmware.test.ts).
 */
import {
  FINAL_UPDATE_STATES,
  RELEASE_LIMITS,
  RolloutRequest,
  UpdateState,
  type Rollout,
  type RolloutTarget,
  type UpdateStatus,
} from "../../party/protocol";

/** Every step a device reports, in the order an update travels: the columns of a rollout's counts. */
export const UPDATE_STATES: readonly UpdateState[] = UpdateState.options;

/** How people name each step. */
const STATE_WORDS: Record<UpdateState, string> = {
  downloading: "Downloading",
  verifying: "Verifying",
  installing: "Installing",
  restarting: "Restarting",
  trial: "On trial",
  applied: "Applied",
  "rolled-back": "Rolled back",
  failed: "Failed",
  unsupported: "Unsupported",
};

export function stateWord(state: UpdateState): string {
  return STATE_WORDS[state];
}

/** A step a device has not finished yet (its panel is polled faster meanwhile). */
export function inProgress(state: UpdateState): boolean {
  return !FINAL_UPDATE_STATES.includes(state);
}

/** "840 B", "12.3 KB", "1.4 MB": an artifact's size. */
export function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${trim(n / 1024)} KB`;
  return `${trim(n / (1024 * 1024))} MB`;
}

/** "all devices", "10 % of the fleet", "pi-1", "3 devices: pi-1, pi-2, pi-3", "40 devices: pi-1, pi-2, pi-3 and 37 more". */
export function targetText(target: RolloutTarget): string {
  if (target === "all") return "all devices";
  if ("percent" in target) return `${trim(target.percent)} % of the fleet`;
  const { ids } = target;
  if (ids.length === 1) return ids[0]!;
  const shown = ids.slice(0, 3).join(", ");
  return `${ids.length} devices: ${shown}${ids.length > 3 ? ` and ${ids.length - 3} more` : ""}`;
}

/** "stage 2 of 3: 25 % of the target", or "one stage: 100 % of the target". */
export function stageText(rollout: Pick<Rollout, "stages" | "stage">): string {
  const share = `${trim(rollout.stages[rollout.stage] ?? 100)} % of the target`;
  return rollout.stages.length === 1 ? `one stage: ${share}` : `stage ${rollout.stage + 1} of ${rollout.stages.length}: ${share}`;
}

/** The stage in force is the last one: `advance` has nowhere to go. */
export function atLastStage(rollout: Pick<Rollout, "stages" | "stage">): boolean {
  return rollout.stage >= rollout.stages.length - 1;
}

/**
 * Devices a rollout names that have not reported a step yet. Only a rollout to listed ids knows
 * how many devices it is for; "all" and a percentage are counted as devices report (null).
 */
export function pendingCount(rollout: Pick<Rollout, "target" | "counts">): number | null {
  if (typeof rollout.target !== "object" || !("ids" in rollout.target)) return null;
  const reported = Object.values(rollout.counts).reduce((a, b) => a + b, 0);
  return Math.max(0, rollout.target.ids.length - reported);
}

/**
 * The word for where a rollout stands: "active", "paused", "cancelled", or "complete" — the
 * last only when it can be known: every listed device at its last stage reached a final step.
 */
export type RolloutPhase = Rollout["state"] | "complete";

export function rolloutPhase(rollout: Rollout): RolloutPhase {
  if (rollout.state !== "active") return rollout.state;
  const pending = pendingCount(rollout);
  const underWay = UPDATE_STATES.filter(inProgress).some((s) => (rollout.counts[s] ?? 0) > 0);
  return pending === 0 && !underWay && atLastStage(rollout) && (rollout.stages[rollout.stage] ?? 100) >= 100 ? "complete" : "active";
}

/** "Active", "Paused: 3 device(s) failed …", "Cancelled by an operator", "Complete". */
export function phaseText(rollout: Rollout): string {
  const phase = rolloutPhase(rollout);
  const words = { active: "Active", paused: "Paused", cancelled: "Cancelled", complete: "Complete" }[phase];
  return (phase === "paused" || phase === "cancelled") && rollout.reason ? `${words}: ${rollout.reason}` : words;
}

/** What an operator may do to a rollout now, in the order the buttons appear. */
export type RolloutAction = "pause" | "resume" | "advance" | "cancel";

export function rolloutActions(rollout: Pick<Rollout, "state" | "stages" | "stage">): RolloutAction[] {
  if (rollout.state === "cancelled") return [];
  const actions: RolloutAction[] = [rollout.state === "paused" ? "resume" : "pause"];
  if (!atLastStage(rollout)) actions.push("advance");
  actions.push("cancel");
  return actions;
}

/** "pi-7 rolled back: no hello ack within 120000 ms (3 min ago)". */
export function failureText(f: Rollout["failures"][number], now: number): string {
  return `${f.device} ${f.state === "rolled-back" ? "rolled back" : "failed"}${f.reason ? `: ${f.reason}` : ""} (${ago(now - f.at)})`;
}

/**
 * A device's update in a sentence: "Downloading 2.0.0: 40 %", "2.0.0 applied",
 * "3.0.0 rolled back: exited at start (code 1)", "2.1.0 failed: sha256 mismatch".
 */
export function updateText(update: UpdateStatus): string {
  switch (update.state) {
    case "downloading":
      return `Downloading ${update.version}${update.progress === null ? "" : `: ${Math.floor(update.progress * 100)} %`}`;
    case "applied":
      return `${update.version} applied`;
    case "rolled-back":
    case "failed":
      return `${update.version} ${update.state === "failed" ? "failed" : "rolled back"}${update.reason ? `: ${update.reason}` : ""}`;
    case "unsupported":
      // Not a failure: the device is not set up for updates (e.g. no release key pinned).
      return `${update.version} not installed: ${update.reason ?? "updates are off on this device"}`;
    default:
      return `${stateWord(update.state)} ${update.version}`;
  }
}

// ---------------------------------------------------------------------------
// The Start a rollout form: text in, a request the endpoint accepts (or why not)
// ---------------------------------------------------------------------------

export type RolloutForm = {
  release: string;
  target: "all" | "percent" | "ids";
  percent: string;
  ids: string;
  stages: string;
  failureThreshold: string;
  /** Minutes between stages; empty or 0: an operator advances it. */
  stageMinutes: string;
};

/**
 * The form's text as a `POST /api/rollouts` body, checked with the same schema the endpoint
 * uses, so a mistake is named before anything is sent ("stages: rising percentages …").
 */
export function rolloutRequest(form: RolloutForm): { ok: true; body: RolloutRequest } | { ok: false; message: string } {
  if (!form.release) return { ok: false, message: "Choose a release." };
  let target: RolloutTarget;
  if (form.target === "all") target = "all";
  else if (form.target === "percent") {
    const percent = Number(form.percent.trim().replace(/%$/, ""));
    if (!form.percent.trim() || !Number.isFinite(percent) || percent <= 0 || percent > 100) {
      return { ok: false, message: "Percentage: a number above 0 and at most 100." };
    }
    target = { percent };
  } else {
    // Ids separated by commas, spaces or lines, as people paste them.
    const ids = [...new Set(form.ids.split(/[\s,]+/).filter(Boolean))];
    if (ids.length === 0) return { ok: false, message: "Name at least one device id." };
    if (ids.length > RELEASE_LIMITS.maxRolloutIds) return { ok: false, message: `At most ${RELEASE_LIMITS.maxRolloutIds} device ids.` };
    target = { ids };
  }
  const stageParts = form.stages.split(/[\s,]+/).filter(Boolean);
  const stages = stageParts.map((s) => Number(s.replace(/%$/, "")));
  if (stages.some((s) => !Number.isFinite(s))) return { ok: false, message: "Stages: percentages separated by commas, e.g. 5, 25, 100." };
  const minutes = form.stageMinutes.trim() ? Number(form.stageMinutes) : 0;
  if (!Number.isFinite(minutes) || minutes < 0) return { ok: false, message: "Minutes between stages: 0 or more." };
  const body = {
    release: form.release,
    target,
    ...(stages.length ? { stages } : {}),
    ...(form.failureThreshold.trim() ? { failureThreshold: Number(form.failureThreshold) } : {}),
    stageMs: Math.round(minutes * 60_000),
  };
  const parsed = RolloutRequest.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.join(".") || "rollout";
    // The schema's own messages often name their field already ("stages: rising percentages …").
    return { ok: false, message: issue.message.startsWith(`${where}:`) ? issue.message : `${where}: ${issue.message}` };
  }
  return { ok: true, body: parsed.data };
}

function ago(ms: number): string {
  if (ms < 5_000) return "just now";
  if (ms < 120_000) return `${Math.round(ms / 1000)} s ago`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min ago`;
  if (ms < 172_800_000) return `${Math.round(ms / 3_600_000)} h ago`;
  return `${Math.round(ms / 86_400_000)} days ago`;
}

function trim(n: number): string {
  return String(Math.round(n * 10) / 10);
}
