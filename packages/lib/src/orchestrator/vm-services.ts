/**
 * What runs beside a VM's VMM while it is up: the console (the daemon as the
 * serial socket's only client, logging and fanning out), the tail of CH's
 * event monitor, whose events join the daemon's event stream, and the probe
 * that tells whether the guest's exec agent answers.
 */
import type { Logger } from "pino";
import { EventMonitorTail } from "../ch/event-monitor.js";
import { VmConsole } from "../console/vm-console.js";
import type { EventBus } from "../events/event-bus.js";
import { AgentProbe } from "../exec/agent-probe.js";
import type { VmPaths } from "../state/vm-paths.js";

export class VmServices {
  private monitor: EventMonitorTail | undefined;
  readonly agent: AgentProbe;

  private constructor(
    private readonly id: string,
    private readonly paths: VmPaths,
    readonly console: VmConsole,
    private readonly events: EventBus,
  ) {
    this.agent = new AgentProbe();
  }

  static async open(id: string, paths: VmPaths, consoleSocket: string, maxLogBytes: number, events: EventBus, log: Logger): Promise<VmServices> {
    return new VmServices(id, paths, await VmConsole.open(paths.dir, consoleSocket, maxLogBytes, log), events);
  }

  /**
   * The VMM `pid` is up and its serial socket exists. Events are read from
   * where a previous daemon stopped for this same VMM, else from the start.
   */
  vmmUp(pid: number): void {
    this.console.attach({ path: this.paths.serialSocket, pid });
    const last = this.events.findLast((e) => e.id === this.id && e.type === "vmm" && e.data?.pid === pid);
    const from = typeof last?.data?.offset === "number" ? last.data.offset : 0;
    void this.monitor?.stop();
    this.monitor = new EventMonitorTail(this.paths.eventMonitor, from, (ev, offset) =>
      this.events.publish({
        id: this.id,
        type: "vmm",
        data: { source: ev.source, event: ev.event, properties: ev.properties, timestamp: ev.timestamp, pid, offset },
      }),
    );
    this.monitor.start();
    this.agent.watch({ path: this.paths.vsockSocket, pid });
  }

  /** The guest rebooted: its agent starts again, so it is probed again (the console reconnects by itself). */
  guestRebooted(): void {
    this.agent.start();
  }

  /** The VMM is gone: read its last events, let go of the serial socket. */
  async vmmDown(): Promise<void> {
    this.agent.stop();
    this.console.detach();
    await this.monitor?.stop();
    this.monitor = undefined;
  }

  async close(): Promise<void> {
    await this.vmmDown();
    await this.console.close();
  }
}
