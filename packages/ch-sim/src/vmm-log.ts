/** CH's log line format and levels: Warn by default, -v Info, -vv Debug, -vvv Trace. */
import fs from "node:fs";

const LEVELS = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"] as const;
export type Level = (typeof LEVELS)[number];

export class VmmLog {
  private readonly started = process.hrtime.bigint();

  constructor(
    private readonly fd: number,
    private readonly verbosity: number,
  ) {}

  /** --log-file truncates (File::create); without it CH logs to stderr. */
  static open(path: string | undefined, verbosity: number): VmmLog {
    return new VmmLog(path === undefined ? 2 : fs.openSync(path, "w", 0o600), verbosity);
  }

  log(level: Level, msg: string): void {
    if (LEVELS.indexOf(level) > 1 + this.verbosity) return;
    const secs = (Number(process.hrtime.bigint() - this.started) / 1e9).toFixed(6);
    try {
      fs.writeSync(this.fd, `cloud-hypervisor: ${secs}s: <vmm> ${level}:cloud-hypervisor-sim -- ${msg}\n`);
    } catch {
      // a vanished log file must not kill the VMM
    }
  }
}
