/**
 * One VM's lifecycle state plus the ring buffer of its recent transitions.
 * Callers ask `can()` before acting and `apply()` to record what happened;
 * an event the machine does not accept is never half-applied. The machine
 * runs as a pure function over a snapshot (xstate's `transition`), not as an
 * actor: it has no timers, children or side effects to host, and an actor per
 * VM would cost memory and CPU for nothing (docs/benchmarks.md).
 */
import { type SnapshotFrom, transition } from "xstate";
import { type LifecycleEvent, type LifecycleEventType, type RunningSubstate, type VmState, vmLifecycleMachine } from "./machine.js";

export const TRANSITION_HISTORY = 64;

export interface Transition {
  seq: number;
  from: VmState;
  to: VmState;
  event: LifecycleEventType;
  at: string;
  reason?: string;
  /** Where `to` is Running: which of its substates the VM is in after this transition. */
  substate?: RunningSubstate;
}

export class VmLifecycle {
  private snapshot: SnapshotFrom<typeof vmLifecycleMachine>;
  private history: Transition[];

  /** Restores a VM at `state` (and `substate`, for a Running one) after a restart, or starts a new one at Pending. */
  constructor(state: VmState = "Pending", history: Transition[] = [], opts: { startable: boolean; substate?: RunningSubstate } = { startable: true }) {
    const value = state === "Running" ? { Running: opts.substate ?? "Active" } : state;
    this.snapshot = vmLifecycleMachine.resolveState({ value, context: { startable: opts.startable } });
    this.history = history.slice(-TRANSITION_HISTORY);
  }

  /** One of the eight. */
  get state(): VmState {
    const value = this.snapshot.value;
    return (typeof value === "string" ? value : Object.keys(value)[0]) as VmState;
  }

  /** Within Running, Active or Paused; undefined in every other state. */
  get substate(): RunningSubstate | undefined {
    const value = this.snapshot.value;
    return typeof value === "string" ? undefined : ((value as { Running?: RunningSubstate }).Running ?? undefined);
  }

  get transitions(): readonly Transition[] {
    return this.history;
  }

  can(type: LifecycleEventType): boolean {
    return this.snapshot.can({ type } as LifecycleEvent);
  }

  /** Applies an event the machine accepts; returns the transition, or throws. */
  apply(event: LifecycleEvent): Transition {
    const from = this.state;
    if (!this.can(event.type)) throw new Error(`lifecycle: ${event.type} is not allowed in ${from}`);
    [this.snapshot] = transition(vmLifecycleMachine, this.snapshot, event);
    const reason = "reason" in event ? event.reason : undefined;
    const t: Transition = { seq: (this.history.at(-1)?.seq ?? 0) + 1, from, to: this.state, event: event.type, at: new Date().toISOString() };
    if (reason !== undefined) t.reason = reason;
    if (this.substate !== undefined) t.substate = this.substate;
    this.history = [...this.history.slice(1 - TRANSITION_HISTORY), t];
    return t;
  }
}
