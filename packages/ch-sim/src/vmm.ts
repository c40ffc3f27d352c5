/**
 * The VMM behind the API socket: cloud-hypervisor v53.0's routes, status
 * codes, error chains and state model (ADR 0003). A VM config is
 * kept from vm.create to vm.delete; a booted VM exists from vm.boot to
 * vm.shutdown, after which vm.info reports `Created` again.
 */
import fs from "node:fs";
import { apiErr, NO_CONTENT, routeOf } from "./api-routes.js";
import { ConsoleDevices } from "./console-devices.js";
import { DeviceCounters, nameDevices } from "./device-counters.js";
import type { EventMonitor } from "./event-monitor.js";
import { type Guest, NoGuest, parseGuestBehaviour, SimGuest } from "./guest.js";
import { HybridVsock } from "./hybrid-vsock.js";
import { InitGuest } from "./init-guest.js";
import type { HttpRequest, HttpResponse } from "./micro-http.js";
import { invalidConfig, readBody } from "./request-checks.js";
import { rustIoError, unreadable, VmmPanic } from "./rust-error.js";
import { RESTORE_CONFIG, VM_CONFIG, VM_SNAPSHOT_CONFIG } from "./serde-types.js";
import { readSnapshot, snapshotDirectory, writeSnapshot } from "./snapshot.js";
import type { VmConfig } from "./vm-config.js";
import type { VmmLog } from "./vmm-log.js";

/** CH_SIM_VERSION: report another version (`-V`, vmm.ping), for tests of a VMM too old to drive. */
export const SIM_VERSION = process.env.CH_SIM_VERSION ?? "53.0.0";
/** CH_SIM_PING_DELAY_MS: answer each vmm.ping this much later (for tests of a loaded host). */
const PING_DELAY_MS = Number(process.env.CH_SIM_PING_DELAY_MS ?? 0);

interface BootedVm {
  state: "Running" | "Paused";
  guest: Guest;
  vsock?: HybridVsock;
  counters: DeviceCounters;
}

/** What CH's default build (KVM, io_uring) lists in vmm.ping: the build the test VMM stands for. */
const FEATURES = ["io_uring", "kvm"];

export interface VmmOptions {
  events: EventMonitor;
  log: VmmLog;
  noShutdown: boolean;
  /** `--seccomp`: `true` (CH's default) kills the VMM with SIGSYS on a forbidden system call; `log` logs it; `false`/`errno` let it fail or pass. */
  seccomp: string;
  /** Called when the VMM process must end (vmm.shutdown, guest power-off, signal). */
  exit: (code: number) => void;
}

export class Vmm {
  private config: VmConfig | undefined;
  private vm: BootedVm | undefined;
  private readonly consoles = new ConsoleDevices((data) => this.vm?.guest.serialIn(data));
  /** A VM whose boot failed after it was made: it holds its devices, never ran, and is shut down like one that did. */
  private unbooted = false;

  constructor(private readonly opts: VmmOptions) {}

  handle = async (req: HttpRequest): Promise<HttpResponse> => {
    const routed = routeOf(req);
    if ("refused" in routed) return routed.refused;
    const { route } = routed;
    this.opts.log.log("INFO", `API request ${req.method} /api/v1/${route}`);
    try {
      return await this.dispatch(route, req.body);
    } catch (e) {
      if (!(e instanceof VmmPanic)) throw e;
      // The API thread finds the VMM thread's end of the channel gone; the process then exits as CH's does.
      const body = ["Error from API", "API response receive error", "receiving on a closed channel"];
      return { status: 500, body, afterSend: () => this.panicked(e) };
    }
  };

  private panicked(panic: VmmPanic): void {
    process.stderr.write(`\n${panic.message}\nError: Cloud Hypervisor exited with the following error:\n  Failed to join on VMM thread: Any { .. }\n`);
    this.opts.exit(1);
  }

  /** SIGTERM/SIGINT take the same path as vmm.shutdown. */
  shutdownVmm(): void {
    this.tearDown(true);
    this.opts.events.emit("vmm", "shutdown");
    this.opts.exit(0);
  }

  private async dispatch(route: string, body: Buffer | undefined): Promise<HttpResponse> {
    switch (route) {
      case "vmm.ping":
        // A test knob: a VMM on a loaded host that answers late.
        if (PING_DELAY_MS > 0) await new Promise((r) => setTimeout(r, PING_DELAY_MS));
        return { status: 200, body: { build_version: `v${SIM_VERSION}-sim`, version: SIM_VERSION, pid: process.pid, features: FEATURES } };
      case "vmm.shutdown":
        return { status: 200, afterSend: () => this.shutdownVmm() };
      case "vm.create":
        return await this.create(body);
      case "vm.boot":
        return this.boot();
      case "vm.snapshot":
        return await this.snapshot(body);
      case "vm.restore":
        return await this.restore(body);
      case "vm.shutdown":
        if (!this.vm && !this.unbooted) return apiErr(500, "The VM could not shutdown", "VM is not running");
        this.tearDown(false);
        return NO_CONTENT;
      case "vm.reboot":
        return this.reboot();
      case "vm.pause":
        return this.setPaused(true);
      case "vm.resume":
        return this.setPaused(false);
      case "vm.power-button":
        if (!this.vm) return apiErr(500, "Error triggering power button", "VM is not running");
        this.vm.guest.pressPowerButton();
        return NO_CONTENT;
      case "vm.delete":
        this.tearDown(true);
        return NO_CONTENT;
      case "vm.nmi":
        return this.vm ? NO_CONTENT : apiErr(500, "Error triggering NMI", "VM is not running");
      case "vm.info":
        if (!this.config) return apiErr(404, "The VM info is not available", "VM is not created");
        return { status: 200, body: { config: this.config, state: this.vm?.state ?? "Created", memory_actual_size: this.config.memory?.size ?? 512 << 20 } };
      case "vm.counters":
        return this.vm ? { status: 200, body: this.vm.counters.all } : apiErr(500, "The VM info is not available", "VM is not running");
      default:
        return apiErr(500, `cloud-hypervisor-sim does not implement ${route}`);
    }
  }

  private async create(body: Buffer | undefined): Promise<HttpResponse> {
    const parsed = readBody(body, VM_CONFIG);
    if ("refused" in parsed) return parsed.refused;
    const config = parsed.value;
    if (this.config) return apiErr(500, "The VM could not be created", "VM is already created");
    // The config is stored before the console devices are made, so a failure there leaves it stored.
    this.config = config as VmConfig;
    const serialError = await this.openConsoles("The VM could not be created", true);
    return serialError ?? NO_CONTENT;
  }

  /**
   * CH snapshots only a paused VM (announcing the attempt once there is a VM), then sends the snapshot: only to a
   * `file://` URL naming an existing directory, written as the user it runs as.
   */
  private async snapshot(body: Buffer | undefined): Promise<HttpResponse> {
    const parsed = readBody(body, VM_SNAPSHOT_CONFIG);
    if ("refused" in parsed) return parsed.refused;
    const failed = "The VM could not be snapshotted";
    if (!this.vm || !this.config) return apiErr(500, failed, "VM is not running");
    this.opts.events.emit("vm", "snapshotting");
    if (this.vm.state === "Running")
      return apiErr(500, failed, "Cannot snapshot VM", "Failed to snapshot migratable component", "Trying to snapshot while VM is running");
    const url = parsed.value.destination_url as string;
    const dir = snapshotDirectory(url);
    if ("refused" in dir) return apiErr(500, failed, "Cannot send VM snapshot", "Failed to send migratable component snapshot", dir.refused);
    try {
      await writeSnapshot(dir.path, this.config, this.config.memory?.size ?? 512 << 20);
    } catch (e) {
      return apiErr(500, failed, "Cannot send VM snapshot", "Failed to send migratable component snapshot", rustIoError(e));
    }
    this.opts.events.emit("vm", "snapshotted");
    return NO_CONTENT;
  }

  /**
   * Into a VMM that holds no VM: the config from the snapshot, its serial and vsock sockets bound as at boot, the
   * guest started afresh (it cannot be checkpointed here, and its console says so), Paused unless `resume`.
   */
  private async restore(body: Buffer | undefined): Promise<HttpResponse> {
    const parsed = readBody(body, RESTORE_CONFIG);
    if ("refused" in parsed) return parsed.refused;
    const { source_url, resume } = parsed.value;
    const failed = "The VM could not be restored";
    // A config and a VM go together here (vm.delete drops both), so the config alone says a VM is there.
    if (this.config) return apiErr(500, failed, "VM is already created");
    const dir = snapshotDirectory(source_url as string);
    if ("refused" in dir) return apiErr(500, failed, "Cannot restore VM", "Failed to send migratable component snapshot", dir.refused);
    let config: VmConfig;
    try {
      config = readSnapshot(dir.path) as VmConfig;
    } catch (e) {
      return apiErr(500, failed, "Cannot restore VM", "Failed to send migratable component snapshot", rustIoError(e));
    }
    this.opts.events.emit("vm", "restoring");
    this.config = config;
    const serialError = await this.openConsoles("The VM could not be restored");
    if (serialError) return serialError;
    this.serialSink()(Buffer.from("cloud-hypervisor-sim: restored from a snapshot: the guest starts afresh\r\n"));
    const guestError = await this.startGuest(parseGuestBehaviour(config.payload?.cmdline));
    if (guestError) return guestError;
    if (resume !== true && this.vm) {
      this.vm.guest.freeze();
      this.vm.state = "Paused";
    }
    this.opts.events.emit("vm", "restored");
    return NO_CONTENT;
  }

  /** The console devices for the config, or the 500 that fails the call (`failed`: the call's own link). */
  private async openConsoles(failed: string, anew = false): Promise<HttpResponse | undefined> {
    const chain = this.config && (await this.consoles.open(this.config, anew));
    return chain ? apiErr(500, failed, ...chain) : undefined;
  }

  private serialSink(): (data: Buffer) => Promise<void> | undefined {
    return this.consoles.sink(this.config ?? {});
  }

  /**
   * `sim.seccomp_violation=boot`: the VMM makes a system call its filter forbids, as CH would after an upgrade
   * of its dependencies. Under `--seccomp true` the kernel kills it with SIGSYS, after CH's handler prints
   * its line; under `log` the call is let through and logged.
   */
  private forbiddenSyscall(): void {
    const syscall = 321; // bpf(2): in no VMM thread's allow-list
    if (this.opts.seccomp === "true") {
      process.stderr.write(`Probable seccomp violation: si_syscall=${syscall}\n`);
      process.kill(process.pid, "SIGSYS");
    } else if (this.opts.seccomp === "log") this.opts.log.log("WARN", `seccomp (log): system call ${syscall} is outside the filter`);
  }

  /**
   * CH's vm_boot: refused without an event while a VM exists; then `booting`, the console devices if there are none,
   * the VM with its devices (a disk it cannot open fails here), and the boot itself, whose failure (a kernel it
   * cannot read) leaves the VM created but never run.
   */
  private async boot(): Promise<HttpResponse> {
    if (this.vm || this.unbooted) return apiErr(500, "The VM could not boot", "VM is already created");
    this.opts.events.emit("vm", "booting");
    if (!this.config) return apiErr(404, "The VM could not boot", "VM config is missing");
    const serialError = await this.openConsoles("The VM could not boot");
    if (serialError) return serialError;
    const invalid = invalidConfig(this.config);
    if (invalid) return apiErr(500, "The VM could not boot", ...invalid);
    // CH opens each disk at boot, read-write unless it is readonly, as the user it runs as.
    for (const disk of this.config.disks ?? []) {
      try {
        fs.accessSync(disk.path ?? "", disk.readonly ? fs.constants.R_OK : fs.constants.R_OK | fs.constants.W_OK);
      } catch (e) {
        // A VM that could not be made drops the devices made for it: the serial socket's file goes (CH keeps its
        // listener, which nothing can reach any more). CH's device manager takes the disks out of the config while it
        // opens them; a failure leaves none there.
        this.consoles.close();
        this.config.disks = undefined;
        return apiErr(
          500,
          "The VM could not boot",
          "Error from device manager",
          "Cannot open disk path",
          `I/O error (path=${disk.path} op=open)`,
          rustIoError(e),
        );
      }
    }
    nameDevices(this.config);
    const payload = this.config.payload ?? {};
    const initramfsError = payload.initramfs && unreadable(payload.initramfs);
    if (initramfsError) {
      this.consoles.close();
      return apiErr(500, "The VM could not boot", "Cannot open initramfs file", initramfsError);
    }
    const kernelError = unreadable(payload.kernel ?? payload.firmware ?? "");
    if (kernelError) {
      this.unbooted = true;
      return apiErr(500, "The VM could not boot", "Cannot open kernel file", kernelError);
    }
    const behaviour = parseGuestBehaviour(payload.cmdline);
    if (behaviour.seccompViolation === "boot") this.forbiddenSyscall();
    if (behaviour.bootMs > 0) await new Promise((r) => setTimeout(r, behaviour.bootMs));
    const vsockError = await this.startGuest(behaviour);
    if (vsockError) return vsockError;
    this.opts.events.emit("vm", "booted");
    this.opts.log.log("INFO", "VM booted");
    return NO_CONTENT;
  }

  /** Starts the guest and, if configured, the vsock device bridged to it. */
  private async startGuest(behaviour: ReturnType<typeof parseGuestBehaviour>): Promise<HttpResponse | undefined> {
    const payload = this.config?.payload ?? {};
    let guest: Guest;
    let guestVsockDir = "/nonexistent";
    if (behaviour.kind === "none") guest = new NoGuest();
    else if (behaviour.kind === "scripted") {
      const scripted = new SimGuest(behaviour, () => this.guestPowerOff(), this.serialSink());
      scripted.start(`cloud-hypervisor-sim: booting ${payload.kernel ?? payload.firmware} (cmdline: ${payload.cmdline ?? ""})`);
      guest = scripted;
    } else {
      const init = new InitGuest(
        payload.cmdline ?? "",
        this.serialSink(),
        (exit) => this.guestExited(exit),
        (m) => this.opts.log.log("INFO", m),
      );
      guestVsockDir = init.vsockDir;
      guest = init;
    }
    const counters = new DeviceCounters(this.config ?? {});
    if (behaviour.kind !== "none") counters.bootProbe();
    this.vm = { state: "Running", guest, counters };
    const socket = this.config?.vsock?.socket;
    if (socket) {
      try {
        this.vm.vsock = await HybridVsock.open(socket, guestVsockDir);
      } catch (e) {
        this.tearDown(false);
        return apiErr(500, "The VM could not boot", "Error creating VM", `Cannot create vsock device: ${(e as Error).message}`);
      }
    }
    return undefined;
  }

  /** init exiting is a power-off (exit 0, or SIGINT: reboot(POWER_OFF) in a PID namespace); anything else panics the guest kernel. */
  private guestExited(exit: { code: number | null; signal: string | null }): void {
    if (exit.code === 0 || exit.signal === "SIGINT") {
      this.guestPowerOff();
      return;
    }
    this.opts.log.log("ERROR", `guest init died (${exit.signal ?? `code ${exit.code}`}): kernel panic - not syncing: Attempted to kill init!`);
    this.opts.events.emit("guest", "panic", { event: "panicked" });
  }

  /**
   * The old VM and its serial device are dropped, then rebuilt from the same config: clients must reconnect. CH
   * announces the attempt (`rebooting`) before it looks for a VM.
   */
  private async reboot(): Promise<HttpResponse> {
    this.opts.events.emit("vm", "rebooting");
    if (!this.vm) return apiErr(404, "The VM could not reboot", "VM is not created");
    this.vm.guest.destroy();
    this.vm.vsock?.close();
    this.vm = undefined;
    this.consoles.close();
    const serialError = await this.openConsoles("The VM could not reboot");
    if (serialError) return serialError;
    const vsockError = await this.startGuest(parseGuestBehaviour(this.config?.payload?.cmdline));
    if (vsockError) return vsockError;
    this.opts.events.emit("vm", "rebooted");
    return NO_CONTENT;
  }

  /** CH announces the attempt (`pausing`, `resuming`) once a VM is booted, before it knows whether the transition is allowed. */
  private setPaused(pause: boolean): HttpResponse {
    const verb = pause ? "paused" : "resumed";
    const failed = pause ? "The VM could not be paused" : "The VM could not resume";
    if (!this.vm) return apiErr(500, failed, "VM is not running");
    this.opts.events.emit("vm", pause ? "pausing" : "resuming");
    const [from, to] = pause ? (["Running", "Paused"] as const) : (["Paused", "Running"] as const);
    if (this.vm.state !== from) {
      const [cannot, component] = pause
        ? ["Cannot pause VM", "Failed to pause migratable component"]
        : ["Cannot resume VM", "Failed to resume migratable component"];
      return apiErr(500, failed, cannot, component, `Invalid transition: InvalidStateTransition(${this.vm.state}, ${to})`);
    }
    if (pause) this.vm.guest.freeze();
    else this.vm.guest.thaw();
    this.vm.state = to;
    this.opts.events.emit("vm", verb);
    return NO_CONTENT;
  }

  /** ACPI S5 from the guest: the VMM exits 0 unless --no-shutdown. */
  private guestPowerOff(): void {
    this.opts.log.log("INFO", "guest requested power-off");
    if (this.opts.noShutdown) this.tearDown(false);
    else this.shutdownVmm();
  }

  /** vm_shutdown, then (with deleteConfig) vm_delete. A VM never booted keeps its console devices through a delete. */
  private tearDown(deleteConfig: boolean): void {
    if (this.vm || this.unbooted) {
      this.vm?.guest.destroy();
      this.vm?.vsock?.close();
      this.vm = undefined;
      this.unbooted = false;
      this.consoles.close();
      this.opts.events.emit("vm", "shutdown");
    }
    if (deleteConfig && this.config) {
      this.config = undefined;
      this.opts.events.emit("vm", "deleted");
    }
  }
}
