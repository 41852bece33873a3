/**
 * Recording a change the Worker made (a device provisioned, rotated, revoked, a command sent)
 * in the directory's audit trail, after it succeeded. Changes to the directory itself
 * (accounts, sessions, sign-ins) are recorded by the directory in the same transaction.
 */
import type { Context } from "hono";
import { directory } from "../party/directory";
import type { AuditAction } from "../party/protocol";
import { actorOf, type AuthEnv } from "./auth";

/**
 * Awaited, so the row exists when the caller hears back; a directory that cannot be reached
 * is logged, not turned into an error: the change itself has already happened.
 *
 * @example await audit(c, "device.rotate", `device:${id}`)
 */
export async function audit(c: Context<AuthEnv>, action: AuditAction, target: string, detail?: Record<string, unknown>): Promise<void> {
  const entry = { ...actorOf(c), action, target, detail: detail ?? null };
  try {
    await directory(c.env).record(entry);
  } catch (err) {
    console.error(`audit: could not record ${action} on ${target} by ${entry.actor}:`, err);
  }
}
