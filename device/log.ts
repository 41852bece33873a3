/**
 * The agent's log: plain lines a person greps (journald adds the time stamps).
 * Status lines keep the old agent's wording verbatim, see LINES.
 */

export type Logger = {
  info(line: string): void;
  warn(line: string): void;
  error(line: string): void;
};

export const consoleLogger: Logger = {
  info: (line) => console.log(line),
  warn: (line) => console.warn(line),
  error: (line) => console.error(line),
};

/** The agent's status lines: the old agent's byte for byte (scripts and people grep for them), then the newer ones. */
export const LINES = {
  awaiting: "Awaiting IoT Endpoint Connection ...",
  connected: "IoT Connected to the Endpoint.",
  failure: "IoT Endpoint Communication Failure. Attempting Restart ...",
  temperature: (temperature: number, scale: string) => `Temperature: ${temperature.toFixed(2)}${scale}`,
  // Newer lines, greppable the same way: what the room asked and what the agent did about it.
  commandApplied: (id: string, command: unknown) => `Command ${id}: ${JSON.stringify(command)} applied`,
  scaleSet: (scale: string) => `Scale set to °${scale}`,
  intervalSet: (intervalMs: number) => `Sample interval set to ${intervalMs} ms`,
} as const;

/**
 * A gate that opens at most once per `intervalMs`: a sensor unplugged at 1 Hz,
 * or an outbox full for a week, must not write a line per second forever.
 */
export function throttle(intervalMs: number, now: () => number = Date.now): () => boolean {
  let last = Number.NEGATIVE_INFINITY;
  return () => {
    const t = now();
    if (t - last < intervalMs) return false;
    last = t;
    return true;
  };
}

/** One line about an error: its code and message, and its cause's (fetch hides ECONNREFUSED in `cause`). */
export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  const text = code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  return err.cause !== undefined && err.cause !== err ? `${text} (${errorText(err.cause)})` : text;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
