/**
 * Starting and stopping one VMM through its API, in the order CH needs:
 * spawn, wait for vmm.ping, vm.create, vm.boot, confirm with vm.info; and to
 * stop, the power button, then vmm.shutdown, SIGTERM and SIGKILL, each with
 * its own wait, until the process is confirmed gone.
 */
import type { Logger } from "pino";
import { ChApiError, ChClient } from "../ch/client.js";
import { toChVmConfig } from "../ch/vm-config.js";
import type { VmmExecutable } from "../ch/vmm-binary.js";
import { type VmmJailConfig, vmmJailView, vmmNetwork } from "../ch/vmm-jail.js";
import { VmmLaunchError, VmmProcess } from "../ch/vmm-process.js";
import type { Resources } from "../domain/resources.js";
import type { VmSpec } from "../domain/vm-spec.js";
import { failpoint } from "../failpoints.js";
import type { UnprivilegedUser } from "../os/unprivileged-user.js";
import { unlinkSockets, type VmPaths } from "../state/vm-paths.js";
import { ensureStaging } from "./vm-snapshots.js";

export interface RunningVmm {
  process: VmmProcess;
  client: ChClient;
}

const ESCALATION_WAIT_MS = 2_000;
const SIGKILL_WAIT_MS = 5_000;
/** How long a VMM whose API went away mid-call is given to be seen gone (its exit is reported a moment after its socket closes). */
const DEATH_NOTICE_MS = 1_000;

/** How a VMM is started: which binary, under which uid, in which jail. */
export interface VmmLaunch {
  binary: string;
  executable: VmmExecutable | undefined;
  user?: UnprivilegedUser;
  jail?: VmmJailConfig;
  /** The VM's cgroup, limits written: the VMM is in it from its first instruction. */
  cgroup?: string;
}

export interface BootHooks {
  /** The process exists: record it before anything else can go wrong. */
  spawned(vmm: RunningVmm): Promise<void>;
  /** vm.create succeeded: the serial socket exists and can be connected before the guest prints. */
  created(vmm: RunningVmm): void;
}

/** A start from a snapshot: vm.restore instead of vm.create and vm.boot; the VM comes back paused unless `resume`. */
export interface RestoreFrom {
  dir: string;
  resume: boolean;
}

/** Boots the VM (or restores it, with `from`); on any failure the VMM is killed and its sockets removed before the error is thrown. */
export async function bootVmm(
  launch: VmmLaunch,
  spec: VmSpec,
  paths: VmPaths,
  resources: Resources,
  deadline: number,
  hooks: BootHooks,
  from?: RestoreFrom,
): Promise<RunningVmm> {
  // CH does not unlink before binding: a stale serial socket fails vm.create, a stale vsock socket vm.boot.
  unlinkSockets([paths.serialSocket, paths.vsockSocket]);
  const config = toChVmConfig(spec, paths, resources);
  const { binary, executable, user } = launch;
  // Made before the jail, which shows it.
  await ensureStaging(paths, user?.uid);
  const network = vmmNetwork(spec, resources);
  const jail = launch.jail && user && (await vmmJailView(launch.jail, config, paths, user, { binary, executable }, network, from?.dir));
  const process = await VmmProcess.spawn(binary, paths, { seccomp: spec.seccomp ?? "enforce", user, jail, cgroup: launch.cgroup });
  const vmm = { process, client: new ChClient({ path: paths.apiSocket, pid: process.pid }) };
  const left = () => Math.max(1, deadline - Date.now());
  try {
    failpoint("vmm.spawned");
    await hooks.spawned(vmm);
    await process.waitForApi(vmm.client, deadline);
    if (from) {
      // CH binds the snapshot's serial and vsock sockets without unlinking: the stale ones went above.
      await vmm.client.restore(from.dir, from.resume, left());
      failpoint("vmm.restored");
      hooks.created(vmm);
    } else {
      await vmm.client.createVm(config, left());
      failpoint("vmm.created");
      hooks.created(vmm);
      await vmm.client.boot(left());
      failpoint("vmm.booted");
    }
    const info = await vmm.client.info(left());
    const expected = from && !from.resume ? "Paused" : "Running";
    if (info.state !== expected) throw new Error(`vm.info reports ${info.state} after ${from ? "vm.restore" : "vm.boot"}`);
    return vmm;
  } catch (e) {
    // A VMM that died on its own (SIGSYS from its seccomp filter, a crash) explains the lost call better than the call does.
    const died = e instanceof ChApiError && e.unreachable && (await process.waitForExit(DEATH_NOTICE_MS));
    const error = died ? new VmmLaunchError(`the VMM died during ${e.call} (${await process.describeExit()})`) : e;
    await killVmm(vmm, paths);
    throw error;
  }
}

/** SIGKILL and clean up; for failed starts, where nothing in the guest is worth waiting for. */
export async function killVmm(vmm: RunningVmm, paths: VmPaths): Promise<void> {
  await vmm.process.signal("SIGKILL");
  await vmm.process.waitForExit(SIGKILL_WAIT_MS);
  await cleanUpAfterVmm(vmm, paths);
}

/**
 * Stops the VMM in stages; returns which stage ended it, or undefined if
 * even SIGKILL did not within its wait. `graceMs` 0 skips the power button.
 */
export async function haltVmm(vmm: RunningVmm, paths: VmPaths, graceMs: number, log: Logger): Promise<string | undefined> {
  const stages: [string, () => Promise<void> | void, number][] = [
    ["guest powered off after the ACPI power button", () => vmm.client.powerButton(ESCALATION_WAIT_MS), graceMs],
    ["VMM shut down by vmm.shutdown", () => vmm.client.shutdownVmm(ESCALATION_WAIT_MS), ESCALATION_WAIT_MS],
    ["VMM ended by SIGTERM", () => vmm.process.signal("SIGTERM"), ESCALATION_WAIT_MS],
    ["VMM killed by SIGKILL", () => vmm.process.signal("SIGKILL"), SIGKILL_WAIT_MS],
  ];
  let outcome: string | undefined;
  for (const [name, act, waitMs] of stages) {
    if (vmm.process.hasExited) {
      outcome ??= "VMM had already exited";
      break;
    }
    if (waitMs === 0) continue;
    try {
      await act();
      failpoint("vmm.stop-sent");
    } catch (e) {
      log.warn({ stage: name, err: (e as Error).message }, "stop stage failed; escalating");
    }
    if (await vmm.process.waitForExit(waitMs)) {
      outcome = name;
      break;
    }
  }
  if (outcome !== undefined) await cleanUpAfterVmm(vmm, paths);
  return outcome;
}

/** After the process is gone: close the client and remove what CH leaves behind on a crash. */
export async function cleanUpAfterVmm(vmm: RunningVmm, paths: VmPaths): Promise<void> {
  await vmm.client.close();
  unlinkSockets([paths.apiSocket, paths.serialSocket, paths.vsockSocket]);
}
