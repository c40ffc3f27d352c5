/**
 * What the daemon does for systemd, without systemd's library: socket
 * activation (the listening socket comes as fd 3, LISTEN_FDS/LISTEN_PID) and
 * readiness, status and watchdog notifications. Node has no datagram Unix
 * sockets, so notifications go through systemd's own systemd-notify(1)
 * (installed with systemd, no native addon to build): one short process per
 * message, sent for our pid (--pid), which the unit allows with
 * NotifyAccess=all. Without NOTIFY_SOCKET nothing is sent.
 */
import { execFile } from "node:child_process";
import type { Logger } from "pino";

/** sd_listen_fds(3): the first passed fd. */
const SD_LISTEN_FDS_START = 3;

/**
 * The listening socket systemd (or systemd-socket-activate) passed to this process, if any. The variables are
 * removed, so that no child (a VMM) takes them for its own.
 */
export function activatedSocket(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const fds = Number(env.LISTEN_FDS ?? 0);
  const forUs = env.LISTEN_PID === undefined || Number(env.LISTEN_PID) === process.pid;
  for (const name of ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]) delete env[name];
  return forUs && fds >= 1 ? SD_LISTEN_FDS_START : undefined;
}

export class SystemdNotifier {
  private watchdog: NodeJS.Timeout | undefined;

  private constructor(private readonly log: Logger) {}

  /** A notifier when the service manager asked for notifications (NOTIFY_SOCKET); undefined otherwise. */
  static fromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): SystemdNotifier | undefined {
    return env.NOTIFY_SOCKET ? new SystemdNotifier(log) : undefined;
  }

  /** READY=1, STATUS=..., STOPPING=1, WATCHDOG=1: sent as given; a failure is logged, never thrown. */
  notify(fields: Record<string, string>): Promise<void> {
    const assignments = Object.entries(fields).map(([k, v]) => `${k}=${v}`);
    return new Promise((resolve) =>
      execFile("systemd-notify", [`--pid=${process.pid}`, ...assignments], (err, _out, stderr) => {
        if (err) this.log.warn({ fields: assignments, err: stderr.trim() || err.message }, "cannot notify the service manager");
        resolve();
      }),
    );
  }

  /**
   * With WATCHDOG_USEC (WatchdogSec= in the unit), WATCHDOG=1 at half the interval, from the event loop: a daemon
   * whose loop is stuck stops sending, and the service manager restarts it.
   */
  startWatchdog(env: NodeJS.ProcessEnv = process.env): void {
    const usec = Number(env.WATCHDOG_USEC ?? 0);
    const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
    if (!forUs || !(usec > 0)) return;
    this.watchdog = setInterval(() => void this.notify({ WATCHDOG: "1" }), Math.max(1, Math.floor(usec / 2000))).unref();
  }

  stop(): void {
    clearInterval(this.watchdog);
  }
}
