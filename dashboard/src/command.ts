/**
 * The scale switch's command state, as every dashboard should see it.
 *
 * The room is the authority: it reports each command queued → delivered →
 * applied / failed / timed-out to every dashboard (`command-status`), and a
 * dashboard that connects later finds the recent ones in its snapshot. This
 * reducer folds those into the one thing the switch shows: the latest scale
 * command and its phase. The only state it invents is `sending` — the few
 * milliseconds (or, while reconnecting, seconds) between a click and the
 * room's first answer — and a local time-out if that answer never comes.
 *
 * Pure: unit-tested in Node (test/node/dashboard-command.test.ts).
 */
import type { CommandRecord, CommandStatus, Scale } from "../../party/protocol";

export type CommandPhase = "sending" | "pending" | "applied" | "failed" | "timed-out";

export type ScaleCommandView = {
  id: string;
  target: Scale;
  phase: CommandPhase;
  /** The room's status, once it has said anything. */
  status: CommandStatus | null;
  error?: string;
  /** When it was made: the room's createdAt, or the local click time while sending. */
  createdAt: number;
};

export type CommandEvent =
  /** This dashboard sent a command (over its socket). */
  | { type: "sent"; id: string; target: Scale; at: number }
  /** The room reported a command's status (ours or another dashboard's). */
  | { type: "record"; record: CommandRecord }
  /** A (re)connect: the room's recent commands, newest first. */
  | { type: "snapshot"; commands: readonly CommandRecord[] }
  /** The clock moved: a command still `sending` after SEND_TIMEOUT_MS gives up. */
  | { type: "tick"; now: number };

/**
 * How long a click may wait for the room's first word. The room itself times
 * a delivered command out after COMMAND_TIMEOUT_MS (10 s); this only covers a
 * command that never reached the room (socket down the whole time).
 */
export const SEND_TIMEOUT_MS = 15_000;

/** Statuses only move forward; a late `applied` may still follow `timed-out` (the room lets the truth win). */
const RANK: Record<CommandStatus, number> = { queued: 0, delivered: 1, "timed-out": 2, applied: 3, failed: 3 };

export function phaseOf(status: CommandStatus): CommandPhase {
  switch (status) {
    case "queued":
    case "delivered":
      return "pending";
    default:
      return status;
  }
}

function fromRecord(record: CommandRecord): ScaleCommandView | null {
  if (record.command.cmd !== "scale") return null;
  return {
    id: record.id,
    target: record.command.scale,
    phase: phaseOf(record.status),
    status: record.status,
    ...(record.error ? { error: record.error } : {}),
    createdAt: record.createdAt,
  };
}

export function reduceScaleCommand(view: ScaleCommandView | null, event: CommandEvent): ScaleCommandView | null {
  switch (event.type) {
    case "sent":
      return { id: event.id, target: event.target, phase: "sending", status: null, createdAt: event.at };
    case "record":
      return applyRecord(view, event.record);
    case "snapshot": {
      // Newest scale command the room remembers; the rest are history.
      const latest = event.commands
        .filter((c) => c.command.cmd === "scale")
        .reduce<CommandRecord | undefined>((a, c) => (!a || c.createdAt > a.createdAt ? c : a), undefined);
      return latest ? applyRecord(view, latest) : view;
    }
    case "tick":
      if (view?.phase === "sending" && event.now - view.createdAt >= SEND_TIMEOUT_MS) {
        return { ...view, phase: "timed-out", error: "the endpoint did not answer; is the connection up?" };
      }
      return view;
  }
}

function applyRecord(view: ScaleCommandView | null, record: CommandRecord): ScaleCommandView | null {
  const next = fromRecord(record);
  if (!next) return view;
  if (!view) return next;
  if (record.id === view.id) {
    // Our own local guesses (sending, or the local time-out) give way to anything the room says.
    if (view.status === null) return next;
    return RANK[record.status] >= RANK[view.status] ? next : view;
  }
  // Another command (from another dashboard, or the REST API): the newer one is what the switch shows.
  // While ours is still `sending`, an older record (say, in a reconnect's snapshot) must not hide it.
  return record.createdAt >= view.createdAt ? next : view;
}

/** What the switch says, and how it looks. */
export function describeCommand(view: ScaleCommandView | null): { text: string; tone: "busy" | "ok" | "bad" | "none" } {
  if (!view) return { text: "", tone: "none" };
  const to = view.target === "F" ? "°F" : "°C";
  switch (view.phase) {
    case "sending":
      return { text: `Sending: switch to ${to}…`, tone: "busy" };
    case "pending":
      return {
        text: view.status === "delivered" ? `Pending: switch to ${to} delivered, waiting for the device…` : `Pending: switch to ${to} queued until the device is online…`,
        tone: "busy",
      };
    case "applied":
      return { text: `Applied: the device switched to ${to}`, tone: "ok" };
    case "failed":
      return { text: `Failed: switch to ${to}${view.error ? ` (${view.error})` : ""}`, tone: "bad" };
    case "timed-out":
      return { text: `Timed out: switch to ${to}${view.error ? ` (${view.error})` : ""}`, tone: "bad" };
  }
}
