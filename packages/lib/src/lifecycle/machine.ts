/**
 * The per-VM lifecycle: the one place that decides what may happen to a VM.
 * Eight states; every event a state does not list is refused. `REMOVE` is a
 * self-transition accepted only where a VM may be deleted: the orchestrator
 * asks whether it is allowed, then deletes the record (there is no ninth state).
 */
import { setup } from "xstate";

export const VM_STATES = ["Pending", "Provisioning", "Configured", "Starting", "Running", "Stopping", "Stopped", "Failed"] as const;
export type VmState = (typeof VM_STATES)[number];

export type LifecycleEvent =
  | { type: "PROVISION" }
  | { type: "PROVISIONED" }
  | { type: "PROVISION_FAILED"; reason: string }
  | { type: "START" }
  | { type: "STARTED" }
  | { type: "START_FAILED"; reason: string }
  | { type: "STOP" }
  | { type: "STOPPED"; reason?: string }
  | { type: "STOP_FAILED"; reason: string }
  | { type: "VMM_EXITED"; reason: string }
  | { type: "GUEST_POWERED_OFF"; reason?: string }
  | { type: "REMOVE" };

export type LifecycleEventType = LifecycleEvent["type"];

export const vmLifecycleMachine = setup({ types: { events: {} as LifecycleEvent } }).createMachine({
  id: "vm",
  initial: "Pending",
  states: {
    Pending: { on: { PROVISION: "Provisioning" } },
    Provisioning: { on: { PROVISIONED: "Configured", PROVISION_FAILED: "Failed" } },
    Configured: { on: { START: "Starting", REMOVE: "Configured" } },
    // A failed start is the transition Starting → Failed (the original design's StartFailed).
    Starting: { on: { STARTED: "Running", START_FAILED: "Failed" } },
    Running: { on: { STOP: "Stopping", VMM_EXITED: "Failed", GUEST_POWERED_OFF: "Stopped" } },
    Stopping: { on: { STOPPED: "Stopped", STOP_FAILED: "Failed" } },
    Stopped: { on: { START: "Starting", REMOVE: "Stopped" } },
    Failed: { on: { START: "Starting", REMOVE: "Failed" } },
  },
});
