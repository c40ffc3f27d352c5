/**
 * The simulated guest. It runs no code; its behaviour comes from `sim.*`
 * parameters on the kernel command line, the way a real guest's behaviour
 * comes from what it boots:
 *   sim.boot_ms=N           vm.boot takes N ms (the API thread is busy meanwhile)
 *   sim.power_button=ignore the guest ignores the ACPI power button (default: powers off)
 *   sim.poweroff_ms=N       delay between the power button and the power-off (default 50)
 *   sim.poweroff_after_ms=N the guest powers itself off N ms after booting
 *   sim.serial_interval_ms=N a line on the serial console every N ms (default 1000; 0: none)
 *   sim.serial_flood_bytes=N right after the banner, N bytes of numbered lines as fast as the port takes them
 * These apply to the scripted guest, chosen with `sim.guest=scripted`;
 * without it the test VMM boots the real my_hypervisor-init (init-guest.ts).
 * `sim.guest=none` is a kernel that never runs, as on a host whose KVM cannot
 * run it (a PVM host and a stock kernel): the vCPU spins, nothing is printed,
 * no disk is read, the power button goes unanswered and no agent listens.
 * On the serial console it prints a boot banner, then periodic lines, and
 * echoes back whatever it receives.
 */
/** What the VMM needs of whatever runs in the VM. */
export interface Guest {
  serialIn(data: Buffer): void;
  pressPowerButton(): void;
  /** vm.pause / vm.resume: the guest stops running, and later goes on where it stopped. */
  freeze(): void;
  thaw(): void;
  destroy(): void;
}

export interface GuestBehaviour {
  /** What runs in the VM: the real init (the default), the scripted guest, or nothing at all. */
  kind: "init" | "scripted" | "none";
  bootMs: number;
  ignorePowerButton: boolean;
  poweroffMs: number;
  poweroffAfterMs: number | undefined;
  serialIntervalMs: number;
  serialFloodBytes: number;
  /** `sim.seccomp_violation=boot`: the VMM makes a forbidden system call while booting. */
  seccompViolation: "boot" | undefined;
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
    kind: params.get("guest") === "scripted" ? "scripted" : params.get("guest") === "none" ? "none" : "init",
    bootMs: num("boot_ms") ?? 0,
    ignorePowerButton: params.get("power_button") === "ignore",
    poweroffMs: num("poweroff_ms") ?? 50,
    poweroffAfterMs: num("poweroff_after_ms"),
    serialIntervalMs: num("serial_interval_ms") ?? 1000,
    serialFloodBytes: num("serial_flood_bytes") ?? 0,
    seccompViolation: params.get("seccomp_violation") === "boot" ? "boot" : undefined,
  };
}

const FLOOD_LINES = 1024;
/** 1024 lines of "flood NNNNNNNNNN xxx…\n", 64 bytes each; the numbers are filled in per chunk. */
const FLOOD_TEMPLATE = Buffer.from(`${"flood 0000000000 ".padEnd(63, "x")}\n`.repeat(FLOOD_LINES), "latin1");

/** `sim.guest=none`: a vCPU that spins and never runs guest code. */
export class NoGuest implements Guest {
  serialIn(): void {}
  pressPowerButton(): void {}
  freeze(): void {}
  thaw(): void {}
  destroy(): void {}
}

export class SimGuest implements Guest {
  private readonly timers = new Set<NodeJS.Timeout>();

  private ticks = 0;
  private destroyed = false;
  /** While paused: what the guest would have done, done at thaw (typed bytes echoed, a power button pressed). */
  private held: (() => void)[] | undefined;

  constructor(
    readonly behaviour: GuestBehaviour,
    /** ACPI S5: the guest asks the VMM to power off. */
    private readonly powerOff: () => void,
    /** The serial port's output (the UART's transmit side); a promise while the host is not reading. */
    private readonly serialOut: (data: Buffer) => Promise<void> | undefined = () => undefined,
  ) {}

  start(banner: string): void {
    this.serialOut(Buffer.from(`${banner}\r\n`));
    if (this.behaviour.serialFloodBytes > 0) void this.flood(this.behaviour.serialFloodBytes);
    if (this.behaviour.poweroffAfterMs !== undefined) this.later(this.behaviour.poweroffAfterMs);
    if (this.behaviour.serialIntervalMs > 0) {
      const t = setInterval(() => {
        if (this.held) return;
        this.ticks += 1;
        this.serialOut(Buffer.from(`sim-guest: tick ${this.ticks}\r\n`));
      }, this.behaviour.serialIntervalMs);
      this.timers.add(t);
    }
  }

  /**
   * Numbered 64-byte lines in 64 KiB chunks, one chunk per turn of the event
   * loop; while the serial socket is full the guest waits, as a UART's
   * transmitter does when the host is not reading.
   */
  private async flood(total: number): Promise<void> {
    for (let line = 0; !this.destroyed && total > 0; line += FLOOD_LINES) {
      const chunk = Buffer.allocUnsafe(FLOOD_TEMPLATE.length);
      FLOOD_TEMPLATE.copy(chunk);
      for (let n = 0; n < FLOOD_LINES; n++) writeDecimal(chunk, n * 64 + 6, 10, line + n);
      const out = chunk.subarray(0, Math.min(total, chunk.length));
      total -= out.length;
      await (this.serialOut(out) ?? new Promise(setImmediate));
    }
  }

  /** Bytes typed on the serial console: the guest echoes them. */
  serialIn(data: Buffer): void {
    if (this.held) this.held.push(() => this.serialIn(data));
    else this.serialOut(data);
  }

  pressPowerButton(): void {
    if (this.held) this.held.push(() => this.pressPowerButton());
    else if (!this.behaviour.ignorePowerButton) this.later(this.behaviour.poweroffMs);
  }

  freeze(): void {
    this.held ??= [];
  }

  thaw(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const act of held) act();
  }

  /** The VM was torn down: nothing of the guest may act afterwards. */
  destroy(): void {
    this.destroyed = true;
    for (const t of this.timers) clearInterval(t);
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

/** `value` as `width` zero-padded ASCII digits at `at`. */
function writeDecimal(buf: Buffer, at: number, width: number, value: number): void {
  let v = value;
  for (let i = width - 1; i >= 0; i--) {
    buf[at + i] = 48 + (v % 10);
    v = Math.floor(v / 10);
  }
}
