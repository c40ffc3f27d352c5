/**
 * The simulated guest. It runs no code; its behaviour comes from `sim.*`
 * parameters on the kernel command line, the way a real guest's behaviour
 * comes from what it boots:
 *   sim.boot_ms=N           vm.boot takes N ms (the API thread is busy meanwhile)
 *   sim.power_button=ignore the guest ignores the ACPI power button (default: powers off)
 *   sim.poweroff_ms=N       delay between the power button and the power-off (default 50)
 *   sim.poweroff_after_ms=N the guest powers itself off N ms after booting
 */
export interface GuestBehaviour {
  bootMs: number;
  ignorePowerButton: boolean;
  poweroffMs: number;
  poweroffAfterMs: number | undefined;
}

export function parseGuestBehaviour(cmdline: string | undefined): GuestBehaviour {
  const params = new Map<string, string>();
  for (const token of (cmdline ?? "").split(/\s+/)) {
    const m = /^sim\.([a-z_]+)=(.*)$/.exec(token);
    if (m?.[1] !== undefined && m[2] !== undefined) params.set(m[1], m[2]);
  }
  const num = (key: string): number | undefined => {
    const v = params.get(key);
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
  };
  return {
    bootMs: num("boot_ms") ?? 0,
    ignorePowerButton: params.get("power_button") === "ignore",
    poweroffMs: num("poweroff_ms") ?? 50,
    poweroffAfterMs: num("poweroff_after_ms"),
  };
}

export class SimGuest {
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly behaviour: GuestBehaviour,
    /** ACPI S5: the guest asks the VMM to power off. */
    private readonly powerOff: () => void,
  ) {}

  start(): void {
    if (this.behaviour.poweroffAfterMs !== undefined) this.later(this.behaviour.poweroffAfterMs);
  }

  pressPowerButton(): void {
    if (!this.behaviour.ignorePowerButton) this.later(this.behaviour.poweroffMs);
  }

  /** The VM was torn down: nothing of the guest may act afterwards. */
  destroy(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private later(ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.powerOff();
    }, ms);
    this.timers.add(t);
  }
}
