/** The eight states of a VM's life (the lifecycle machine decides the moves between them). */
export const VM_STATES = ["Pending", "Provisioning", "Configured", "Starting", "Running", "Stopping", "Stopped", "Failed"] as const;
export type VmState = (typeof VM_STATES)[number];
