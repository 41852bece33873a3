/**
 * Commands and desired state from the room (DESIGN.md, contract 2).
 *
 * A command is applied, persisted, and answered with `result` carrying the
 * new reported state; the room marks it applied. One that cannot be applied,
 * or that this agent does not know, is answered `ok: false` with the reason,
 * so the dashboard shows "failed" instead of waiting for a time-out.
 */
import { z } from "zod";
import {
  CommandId,
  type CommandBody,
  type DesiredState,
  type DeviceMessage,
} from "../party/protocol.ts";

export type ResultMessage = Extract<DeviceMessage, { type: "result" }>;

/** The desired state after a command: the one function in party/protocol.ts, which the room uses too. */
export { applyCommand } from "../party/protocol.ts";

/** Just enough of a frame to answer it: a command with an id we can echo. */
const CommandEnvelope = z.object({ type: z.literal("command"), id: CommandId, command: z.unknown() });

/**
 * A frame that failed `ToDeviceMessage` validation. If it still is a command
 * with a usable id (an unknown `cmd`, a bad value), the answer is a failed
 * result naming the problem; anything else has nobody to answer, so null
 * (the caller logs it).
 */
export function rejectInvalidCommand(raw: string, reason: string): ResultMessage | null {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    // Not JSON at all: there is no id to answer.
    return null;
  }
  const envelope = CommandEnvelope.safeParse(json);
  if (!envelope.success) return null;
  const cmd = (envelope.data.command as { cmd?: unknown } | null)?.cmd;
  const error =
    typeof cmd === "string" && !["scale", "interval"].includes(cmd)
      ? `unknown command ${JSON.stringify(cmd).slice(0, 80)}`
      : `invalid command: ${reason}`;
  return { type: "result", id: envelope.data.id, ok: false, error: error.slice(0, 500) };
}
