/**
 * A duration as people say it, for texts the room writes (alert messages, a rule's latency)
 * and the dashboard shows (alerts-format.ts): one function, so both say "5 min" the same way.
 * Pure: no Workers or DOM types.
 */

/** "5 min", "75 s", "1 h 30 min", "250 ms". */
export function durationText(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 1000);
  if (s < 120 && s % 60 !== 0) return `${s} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  return [h ? `${h} h` : "", m ? `${m} min` : "", rest && !h ? `${rest} s` : ""].filter(Boolean).join(" ");
}
