/**
 * Whether the guest's exec agent answers: after the VMM comes up, try its
 * port until it accepts (every 500 ms, then every 5 s after 30 s), and
 * remember since when. An exec that cannot reach it starts the probe again.
 */
import { attempt } from "./hybrid-vsock.js";
import { DEFAULT_EXEC_PORT } from "./protocol.js";

const FAST_MS = 500;
const SLOW_MS = 5_000;
const FAST_FOR_MS = 30_000;
const ATTEMPT_MS = 2_500;

export interface AgentStatus {
  ready: boolean;
  since: string | null;
}

export class AgentProbe {
  private status: AgentStatus = { ready: false, since: null };
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private startedAt = 0;

  constructor(
    private readonly vsockSocket: string,
    private readonly port = DEFAULT_EXEC_PORT,
  ) {}

  get current(): AgentStatus {
    return { ...this.status };
  }

  start(): void {
    this.stop();
    this.running = true;
    this.startedAt = Date.now();
    void this.tryOnce();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.status = { ready: false, since: null };
  }

  /** Something else reached the agent (an exec): it is ready, whatever the schedule says. */
  markReachable(): void {
    if (!this.running || this.status.ready) return;
    clearTimeout(this.timer);
    this.status = { ready: true, since: new Date().toISOString() };
  }

  markUnreachable(): void {
    if (this.running && !this.status.ready) return;
    this.start();
  }

  private async tryOnce(): Promise<void> {
    try {
      const conn = await attempt(this.vsockSocket, this.port, ATTEMPT_MS);
      conn.destroy();
      if (this.running) this.status = { ready: true, since: new Date().toISOString() };
    } catch {
      if (!this.running) return;
      const delay = Date.now() - this.startedAt < FAST_FOR_MS ? FAST_MS : SLOW_MS;
      this.timer = setTimeout(() => void this.tryOnce(), delay).unref();
    }
  }
}
