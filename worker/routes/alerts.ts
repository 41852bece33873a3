/**
 * Alert rules and alerts (docs/alerts.md). Rules are evaluated in each device's room
 * (party/room/alerts.ts); fleet-wide defaults are copied into every fleet shard, where rooms
 * pick them up with their next push (party/fleet.ts). Who may call what:
 *
 *   GET    /api/alerts                                  viewer, operator (?limit=N) → devices with alerts not yet cleared
 *   GET    /api/alerts/defaults                         viewer, operator → {version, rules}
 *   PUT    /api/alerts/defaults/:rule  {kind, …}        operator → {version, rules}
 *   DELETE /api/alerts/defaults/:rule                   operator → {version, rules}
 *   GET    /api/devices/:id/alerts                      viewer, operator → {active, history, deliveries}
 *   POST   /api/devices/:id/alerts/:alert/acknowledge   operator → the alert (409 once cleared)
 *   GET    /api/devices/:id/alerts/rules                viewer, operator → {rules (each with its latency), unwatchedBatchingMs}
 *   PUT    /api/devices/:id/alerts/rules/:rule {kind, …} operator → the same as GET, after the change
 *   DELETE /api/devices/:id/alerts/rules/:rule          operator → the same as GET, after the change
 *
 * Every change and acknowledgement is in the audit trail (worker/audit.ts).
 */
import { Hono } from "hono";
import { z } from "zod";
import { alertDefaults, fleetFor, listAlerting, setAlertDefaultsEverywhere } from "../../party/fleet";
import {
  ALERT_LIMITS,
  AlertRuleBody,
  AlertRuleId,
  DeviceId,
  type ActiveAlertsPage,
  type AlertDefaults,
  type AlertRecord,
  type AlertRule,
  type AlertRulesAnswer,
  type DeviceAlerts,
} from "../../party/protocol";
import { audit } from "../audit";
import { actorOf, requireRole, type AuthEnv } from "../auth";
import { room } from "../env";
import { ApiError } from "../errors";
import { validate, validateJson } from "../validate";

const DeviceParam = z.object({ id: DeviceId });
const RuleParam = z.object({ id: DeviceId, rule: AlertRuleId });
const DefaultParam = z.object({ rule: AlertRuleId });
const AckParam = z.object({ id: DeviceId, alert: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER) });
const AlertingQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(500).default(100) });

/** A known device's room, or 404 (as worker/routes/api.ts does for every device route). */
async function knownRoom(env: Env, id: string) {
  if (!(await fleetFor(env, id).get(id))) throw new ApiError(404, "unknown_device", `no device ${id}`);
  return room(env, id);
}

/** A rule from the path's id and the body. */
function ruleOf(id: string, body: AlertRuleBody): AlertRule {
  return { ...body, id };
}

/** New defaults: a version that only grows (a timestamp, so rooms can also date them), written to every shard. */
async function changeDefaults(env: Env, change: (rules: AlertRule[]) => AlertRule[]): Promise<AlertDefaults> {
  const current = await alertDefaults(env);
  const next: AlertDefaults = { version: Math.max(Date.now(), current.version + 1), rules: change(current.rules) };
  await setAlertDefaultsEverywhere(env, next);
  return next;
}

export const alerts = new Hono<AuthEnv>()
  .get("/alerts", requireRole("viewer"), validate("query", AlertingQuery), async (c) =>
    c.json((await listAlerting(c.env, c.req.valid("query").limit)) satisfies ActiveAlertsPage),
  )
  .get("/alerts/defaults", requireRole("viewer"), async (c) => c.json((await alertDefaults(c.env)) satisfies AlertDefaults))
  .put("/alerts/defaults/:rule", requireRole("operator"), validate("param", DefaultParam), validateJson(AlertRuleBody), async (c) => {
    const rule = ruleOf(c.req.valid("param").rule, c.req.valid("json"));
    const defaults = await changeDefaults(c.env, (rules) => {
      const others = rules.filter((r) => r.id !== rule.id);
      if (others.length >= ALERT_LIMITS.maxRules) throw new ApiError(409, "too_many_rules", `at most ${ALERT_LIMITS.maxRules} default rules`);
      return [...others, rule];
    });
    await audit(c, "alert.default.set", `rule:${rule.id}`, { rule });
    return c.json(defaults);
  })
  .delete("/alerts/defaults/:rule", requireRole("operator"), validate("param", DefaultParam), async (c) => {
    const id = c.req.valid("param").rule;
    const defaults = await changeDefaults(c.env, (rules) => {
      if (!rules.some((r) => r.id === id)) throw new ApiError(404, "unknown_rule", `no default rule ${id}`);
      return rules.filter((r) => r.id !== id);
    });
    await audit(c, "alert.default.delete", `rule:${id}`);
    return c.json(defaults);
  })
  .get("/devices/:id/alerts", requireRole("viewer"), validate("param", DeviceParam), async (c) => {
    const stub = await knownRoom(c.env, c.req.valid("param").id);
    return c.json((await stub.alerts()) satisfies DeviceAlerts);
  })
  .get("/devices/:id/alerts/rules", requireRole("viewer"), validate("param", DeviceParam), async (c) => {
    const stub = await knownRoom(c.env, c.req.valid("param").id);
    return c.json((await stub.alertRules()) satisfies AlertRulesAnswer);
  })
  .put("/devices/:id/alerts/rules/:rule", requireRole("operator"), validate("param", RuleParam), validateJson(AlertRuleBody), async (c) => {
    const { id, rule: ruleId } = c.req.valid("param");
    const rule = ruleOf(ruleId, c.req.valid("json"));
    const stub = await knownRoom(c.env, id);
    if (!(await stub.setAlertRule(rule))) throw new ApiError(409, "too_many_rules", `a device has at most ${ALERT_LIMITS.maxRules} rules of its own`);
    await audit(c, "alert.rule.set", `device:${id}`, { rule });
    return c.json((await stub.alertRules()) satisfies AlertRulesAnswer);
  })
  .delete("/devices/:id/alerts/rules/:rule", requireRole("operator"), validate("param", RuleParam), async (c) => {
    const { id, rule } = c.req.valid("param");
    const stub = await knownRoom(c.env, id);
    if (!(await stub.deleteAlertRule(rule))) throw new ApiError(404, "unknown_rule", `device ${id} has no rule ${rule} of its own`);
    await audit(c, "alert.rule.delete", `device:${id}`, { rule });
    return c.json((await stub.alertRules()) satisfies AlertRulesAnswer);
  })
  .post("/devices/:id/alerts/:alert/acknowledge", requireRole("operator"), validate("param", AckParam), async (c) => {
    const { id, alert } = c.req.valid("param");
    const stub = await knownRoom(c.env, id);
    const answer = await stub.acknowledgeAlert(alert, actorOf(c).actor);
    if (answer === "not_found") throw new ApiError(404, "unknown_alert", `device ${id} has no alert ${alert}`);
    if (answer === "cleared") throw new ApiError(409, "alert_cleared", `alert ${alert} is already cleared`);
    // Acknowledged twice (two operators at once): one row in the audit trail, for the first.
    if (answer.changed) await audit(c, "alert.acknowledge", `device:${id}`, { alert, rule: answer.alert.rule });
    return c.json(answer.alert satisfies AlertRecord);
  });
