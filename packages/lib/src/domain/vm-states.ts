/** The eight states of a VM's life (the lifecycle machine decides the moves between them). */
export const VM_STATES = ["Pending", "Provisioning", "Configured", "Starting", "Running", "Stopping", "Stopped", "Failed"] as const;
export type VmState = (typeof VM_STATES)[number];
/**
 * Within Running: the guest runs (Active), CH holds it Paused, or a paused VM's snapshot is being taken
 * (Snapshotting). Substates, not more states: a client that knows only the eight reads such a VM as Running, which
 * it is (its VMM is up, its resources held). ADR 0010.
 */
export const RUNNING_SUBSTATES = ["Active", "Paused", "Snapshotting"] as const;
export type RunningSubstate = (typeof RUNNING_SUBSTATES)[number];
