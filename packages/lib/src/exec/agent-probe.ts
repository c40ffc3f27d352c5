/**
 * Whether the guest's exec agent answers: after the VMM comes up, try its
 * port until it accepts (after 250 ms, then twice as long each time, up to
 * every 5 s: a guest without an agent costs a connection every 5 s, not
 * two a second), and
 * remember since when. An exec that cannot reach it starts the probe again.
 */

import { DEFAULT_EXEC_PORT } from "../domain/exec-protocol.js";
import type { ProcessSocket } from "../os/process-socket.js";
import { attempt } from "./hybrid-vsock.js";

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5_000;
const ATTEMPT_MS = 2_500;

export interface AgentStatus {
  ready: boolean;
  since: string | null;
}

export class AgentProbe {
  private status: AgentStatus = { ready: false, since: null };
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private retryMs = FIRST_RETRY_MS;
  /** The vsock socket of the VMM that is up, and its pid. */
  private vsockSocket: ProcessSocket | undefined;

  constructor(private readonly port = DEFAULT_EXEC_PORT) {}

  /** Replaced, never changed in place: callers may keep it. */
  get current(): Readonly<AgentStatus> {
    return this.status;
  }

  /** Probes the agent behind the VMM `vsockSocket`, from now on. */
  watch(vsockSocket: ProcessSocket): void {
    this.vsockSocket = vsockSocket;
    this.start();
  }

  start(): void {
    this.stop();
    if (!this.vsockSocket) return;
    this.running = true;
    this.retryMs = FIRST_RETRY_MS;
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
    if (!this.vsockSocket) return;
    try {
      const conn = await attempt(this.vsockSocket, this.port, ATTEMPT_MS);
      conn.destroy();
      if (this.running) this.status = { ready: true, since: new Date().toISOString() };
    } catch {
      if (!this.running) return;
      this.timer = setTimeout(() => void this.tryOnce(), this.retryMs).unref();
      this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    }
  }
}
