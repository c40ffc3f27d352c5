/**
 * The logger every binary uses (pino): JSON lines with ISO times and level
 * names, which journald and log shippers read as they are; or, for a person
 * at a terminal, pino's own pretty printer (pino-pretty). Both go to stderr.
 */
import { destination, type Logger, pino } from "pino";
import pretty from "pino-pretty";

export const LOG_FORMATS = ["json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** Pretty when stderr is a terminal, JSON otherwise. */
export const defaultLogFormat = (): LogFormat => (process.stderr.isTTY ? "pretty" : "json");

export function createLogger(name: string, level: string, format: LogFormat): Logger {
  const options = { level, base: { daemon: name } };
  // Synchronous, as destination(2) is: a line is out before the next one is logged, and none is lost at exit.
  if (format === "pretty") return pino(options, pretty({ destination: 2, sync: true, ignore: "pid,hostname,daemon", translateTime: "SYS:HH:MM:ss.l" }));
  return pino({ ...options, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label: string) => ({ level: label }) } }, destination(2));
}
