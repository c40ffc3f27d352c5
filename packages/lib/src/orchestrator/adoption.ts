/**
 * Re-adoption after a daemon restart: for a record that needs a live VMM,
 * check the process's identity (pid, start time, and that its argv names this
 * VM's API socket), then ask vm.info, and say what the VM now is.
 * A process that fails the identity check is never signalled.
 */
import { ChApiError, ChClient } from "../ch/client.js";
import { type ChEvent, endedWithVmmShutdown, readEvents } from "../ch/event-monitor.js";
import { VmmProcess } from "../ch/vmm-process.js";
import type { LifecycleEvent } from "../lifecycle/machine.js";
import { isAlive, type ProcessIdentity, readCmdline, readProcStat } from "../os/proc.js";
import type { VmmRecord, VmRecord } from "../state/record.js";
import type { VmPaths } from "../state/vm-paths.js";
import { killVmm, type RunningVmm } from "./vmm-control.js";

const ADOPT_CALL_TIMEOUT_MS = 2_000;

export type Adoption =
  /** Nothing to do: the record's state needs no VMM. */
  | { kind: "unchanged" }
  /** The VMM runs and is ours; `event` completes a transition the restart interrupted; `paused`: CH holds the guest. */
  | { kind: "running"; vmm: RunningVmm; event?: LifecycleEvent; paused: boolean }
  /** The VM was being stopped and its VMM still runs: finish the stop. */
  | { kind: "finish-stop"; vmm: RunningVmm }
  /** The VMM is gone (or was discarded): apply this transition. */
  | { kind: "gone"; event: LifecycleEvent };

export async function adoptRecord(record: VmRecord, paths: VmPaths): Promise<Adoption> {
  const { state } = record;
  if (state === "Provisioning") return { kind: "gone", event: { type: "PROVISION_FAILED", reason: "daemon restarted during provisioning" } };
  if (state !== "Starting" && state !== "Running" && state !== "Stopping") return { kind: "unchanged" };

  const identity = record.vmm ? establishIdentity(record.vmm, paths) : undefined;
  if (!identity) return { kind: "gone", event: deadVmmEvent(state, record.vmm?.pid, await readEvents(paths.eventMonitor)) };

  const vmm: RunningVmm = { process: VmmProcess.adopt(identity, paths), client: new ChClient({ path: paths.apiSocket, pid: identity.pid }) };
  if (state === "Stopping") return { kind: "finish-stop", vmm };
  const vmState = await vmmVmState(vmm);
  const decision = liveVmmDecision(state, vmState, identity.pid);
  // Unreachable: what the record says stands until the API answers.
  const paused = vmState === "unreachable" ? record.substate === "Paused" : vmState === "Paused";
  if (decision.keep) return { kind: "running", vmm, event: decision.event, paused };
  await killVmm(vmm, paths);
  return { kind: "gone", event: decision.event };
}

/**
 * What a live VMM of ours means for a record that was Starting or Running,
 * by what vm.info says (`unreachable` when the API does not answer): keep it
 * (completing an interrupted start), or stop it and record why.
 */
export function liveVmmDecision(
  state: "Starting" | "Running",
  vmState: string,
  pid: number,
): { keep: true; event?: LifecycleEvent } | { keep: false; event: LifecycleEvent } {
  if (vmState === "Running" || vmState === "Paused")
    return state === "Starting" ? { keep: true, event: { type: "STARTED", reason: "the start completed while the daemon restarted" } } : { keep: true };
  // The process is verified ours; the API may recover.
  if (state === "Running" && vmState === "unreachable") return { keep: true };
  // A VMM that lives but holds no running VM: a start cut short, or a guest that powered off under --no-shutdown.
  const reason = `daemon restarted; VMM pid ${pid} reported ${vmState}, so it was stopped`;
  return { keep: false, event: state === "Starting" ? { type: "START_FAILED", reason } : { type: "GUEST_POWERED_OFF", reason } };
}

/** The process the record names, if it still runs and is a VMM for this VM. */
export function establishIdentity(vmm: VmmRecord, paths: VmPaths): ProcessIdentity | undefined {
  const stat = readProcStat(vmm.pid);
  if (!stat) return undefined;
  const identity = { pid: vmm.pid, start_time: vmm.start_time ?? stat.startTime };
  if (!isAlive(identity)) return undefined;
  // A v1 record has no start time: the argv naming this VM's API socket is what makes the pid ours.
  const argv = readCmdline(vmm.pid);
  return argv.includes(`path=${paths.apiSocket}`) ? identity : undefined;
}

/** vm.info alone: an answer proves the API is up, and says what the VM is. */
async function vmmVmState(vmm: RunningVmm): Promise<string> {
  try {
    return (await vmm.client.info(ADOPT_CALL_TIMEOUT_MS)).state;
  } catch (e) {
    if (!(e instanceof ChApiError)) throw e;
    return e.status === 404 ? "no VM" : "unreachable";
  }
}

/** The transition for a VM whose VMM ended while nobody watched, by the record's state and the VMM's last events. */
export function deadVmmEvent(state: "Starting" | "Running" | "Stopping", pid: number | undefined, events: ChEvent[]): LifecycleEvent {
  const who = pid ?? "none";
  if (state === "Starting") return { type: "START_FAILED", reason: `daemon restarted during start; VMM pid ${who} is not running` };
  if (state === "Stopping") return { type: "STOPPED", reason: `VMM pid ${who} exited while the daemon was down` };
  return vmmDeathEvent(events, `VMM pid ${who} exited while the daemon was down`);
}

/** CH ends with vmm/shutdown after a guest power-off; anything else is a death. */
export function vmmDeathEvent(events: ChEvent[], what: string): LifecycleEvent {
  return endedWithVmmShutdown(events)
    ? { type: "GUEST_POWERED_OFF", reason: `${what}; its event monitor ends with vmm/shutdown (guest powered off)` }
    : { type: "VMM_EXITED", reason: `${what} without shutting down` };
}
