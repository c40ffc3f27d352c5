/**
 * The per-VM lifecycle: the one place that decides what may happen to a VM.
 * Eight states; every event a state does not list is refused. `REMOVE` is a
 * self-transition accepted only where a VM may be deleted: the orchestrator
 * asks whether it is allowed, then deletes the record (there is no ninth state).
 * `START` needs a startable VM: one whose record could be read and whose provisioning did not fail;
 * such a VM can only be removed.
 * `EXEC` (a command in the guest) is likewise asked, never applied: only a Running, Active VM has a guest that runs.
 * Running has substates (ADR 0010): Active, Paused (CH holds the guest) and Snapshotting (a paused VM's snapshot
 * being taken); PAUSE and RESUME move between the first two, SNAPSHOT from Paused and back, and
 * what ends a Running VM (STOP, VMM_EXITED, GUEST_POWERED_OFF) ends it from either.
 */
import { assign, setup } from "xstate";

export { RUNNING_SUBSTATES, type RunningSubstate, VM_STATES, type VmState } from "../domain/vm-states.js";

export type LifecycleEvent =
  | { type: "PROVISION" }
  | { type: "PROVISIONED" }
  | { type: "PROVISION_FAILED"; reason: string }
  | { type: "LOAD_FAILED"; reason: string }
  | { type: "START" }
  | { type: "STARTED"; reason?: string }
  | { type: "START_FAILED"; reason: string }
  | { type: "STOP" }
  | { type: "STOPPED"; reason?: string }
  | { type: "STOP_FAILED"; reason: string }
  | { type: "VMM_EXITED"; reason: string }
  | { type: "GUEST_POWERED_OFF"; reason?: string }
  | { type: "REBOOT"; reason?: string }
  | { type: "SNAPSHOT"; reason?: string }
  | { type: "SNAPSHOTTED"; reason?: string }
  | { type: "SNAPSHOT_FAILED"; reason: string }
  | { type: "RESTORE"; reason?: string }
  | { type: "PAUSE"; reason?: string }
  | { type: "RESUME"; reason?: string }
  | { type: "REMOVE" }
  | { type: "EXEC" };

export type LifecycleEventType = LifecycleEvent["type"];

const start = { target: "Starting", guard: "startable" } as const;
/** A start from a snapshot (vm.restore into a fresh VMM) instead of a boot. */
const restore = start;

export const vmLifecycleMachine = setup({
  types: { events: {} as LifecycleEvent, context: {} as { startable: boolean }, input: {} as { startable: boolean } },
  guards: { startable: ({ context }) => context.startable },
  actions: { notStartable: assign({ startable: false }) },
}).createMachine({
  id: "vm",
  initial: "Pending",
  context: ({ input }) => ({ startable: input.startable }),
  states: {
    // LOAD_FAILED: a record found at start-up that cannot be read.
    Pending: { on: { PROVISION: "Provisioning", LOAD_FAILED: { target: "Failed", actions: "notStartable" } } },
    Provisioning: { on: { PROVISIONED: "Configured", PROVISION_FAILED: { target: "Failed", actions: "notStartable" } } },
    Configured: { on: { START: start, REMOVE: "Configured" } },
    // A failed start is the transition Starting → Failed (the original design's StartFailed).
    Starting: { on: { STARTED: "Running", START_FAILED: "Failed" } },
    Running: {
      initial: "Active",
      on: { STOP: "Stopping", VMM_EXITED: "Failed", GUEST_POWERED_OFF: "Stopped" },
      states: {
        Active: { on: { PAUSE: "Paused", REBOOT: "Active", EXEC: "Active" } },
        Paused: { on: { RESUME: "Active", SNAPSHOT: "Snapshotting" } },
        // CH snapshots only a paused VM; either way it is paused again after.
        Snapshotting: { on: { SNAPSHOTTED: "Paused", SNAPSHOT_FAILED: "Paused" } },
      },
    },
    Stopping: { on: { STOPPED: "Stopped", STOP_FAILED: "Failed" } },
    Stopped: { on: { START: start, RESTORE: restore, REMOVE: "Stopped" } },
    Failed: { on: { START: start, RESTORE: restore, REMOVE: "Failed" } },
  },
});
