import { describe, expect, it } from "vitest";
import { type LifecycleEventType, VM_STATES, type VmState } from "../src/lifecycle/machine.js";
import { TRANSITION_HISTORY, VmLifecycle } from "../src/lifecycle/vm-lifecycle.js";

const ALLOWED: Record<VmState, Partial<Record<LifecycleEventType, VmState>>> = {
  Pending: { PROVISION: "Provisioning", LOAD_FAILED: "Failed" },
  Provisioning: { PROVISIONED: "Configured", PROVISION_FAILED: "Failed" },
  Configured: { START: "Starting", REMOVE: "Configured" },
  Starting: { STARTED: "Running", START_FAILED: "Failed" },
  Running: { STOP: "Stopping", VMM_EXITED: "Failed", GUEST_POWERED_OFF: "Stopped", EXEC: "Running" },
  Stopping: { STOPPED: "Stopped", STOP_FAILED: "Failed" },
  Stopped: { START: "Starting", REMOVE: "Stopped" },
  Failed: { START: "Starting", REMOVE: "Failed" },
};
const EVENTS: LifecycleEventType[] = [
  "EXEC",
  "LOAD_FAILED",
  "PROVISION",
  "PROVISIONED",
  "PROVISION_FAILED",
  "START",
  "STARTED",
  "START_FAILED",
  "STOP",
  "STOPPED",
  "STOP_FAILED",
  "VMM_EXITED",
  "GUEST_POWERED_OFF",
  "REMOVE",
];

describe("the lifecycle machine", () => {
  it("has exactly the eight states", () => {
    expect(VM_STATES).toEqual(["Pending", "Provisioning", "Configured", "Starting", "Running", "Stopping", "Stopped", "Failed"]);
  });

  for (const state of VM_STATES) {
    it(`in ${state} accepts exactly ${Object.keys(ALLOWED[state]).join(", ")}`, () => {
      for (const type of EVENTS) {
        const vm = new VmLifecycle(state);
        const target = ALLOWED[state][type];
        expect(vm.can(type), `${state} + ${type}`).toBe(target !== undefined);
        if (target === undefined) {
          expect(() => vm.apply({ type, reason: "x" } as never)).toThrow(/not allowed/);
          expect(vm.state).toBe(state);
          expect(vm.transitions).toHaveLength(0);
        } else {
          const t = vm.apply({ type, reason: "why" } as never);
          expect(vm.state).toBe(target);
          expect(t).toMatchObject({ from: state, to: target, event: type, seq: 1 });
        }
      }
    });
  }

  it("records a failed start as Starting → Failed with its reason", () => {
    const vm = new VmLifecycle("Starting");
    expect(vm.apply({ type: "START_FAILED", reason: "vm.boot failed" })).toMatchObject({ from: "Starting", to: "Failed", reason: "vm.boot failed" });
  });

  it("keeps the last 64 transitions with increasing seq, across a restore", () => {
    let vm = new VmLifecycle("Stopped");
    for (let i = 0; i < 50; i++) {
      vm.apply({ type: "START" });
      vm.apply({ type: "START_FAILED", reason: `try ${i}` });
    }
    expect(vm.transitions).toHaveLength(TRANSITION_HISTORY);
    expect(vm.transitions[0]?.seq).toBe(100 - TRANSITION_HISTORY + 1);
    expect(vm.transitions.at(-1)?.seq).toBe(100);
    vm = new VmLifecycle(vm.state, [...vm.transitions]);
    expect(vm.apply({ type: "START" }).seq).toBe(101);
    expect(vm.transitions).toHaveLength(TRANSITION_HISTORY);
  });
});
