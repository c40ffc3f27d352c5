/**
 * How a VM is reported: its state (one of the eight), VMM pid, spec, recent
 * transitions, resources and health. The orchestrator builds it, the compute
 * API returns it; TypeBox schemas are the single source of both the types and
 * the OpenRPC description.
 */
import { type Static, Type } from "@sinclair/typebox";
import { PendingReleaseSchema, ResourcesSchema } from "./resources.js";
import { VmLimitsSchema } from "./vm-limits.js";
import { VmId, VmSpecSchema } from "./vm-spec.js";
import { RUNNING_SUBSTATES, VM_STATES } from "./vm-states.js";

export const State = Type.Union(
  VM_STATES.map((s) => Type.Literal(s)),
  { title: "VmState" },
);
const Substate = Type.Union(
  RUNNING_SUBSTATES.map((s) => Type.Literal(s)),
  { title: "RunningSubstate", description: "Within Running: Active (the guest runs) or Paused (CH holds it); ADR 0010" },
);
const Pid = Type.Union([Type.Integer(), Type.Null()], { description: "The VMM's pid while it runs" });
export const TransitionSchema = Type.Object({
  seq: Type.Integer(),
  from: State,
  to: State,
  event: Type.String(),
  at: Type.String({ format: "date-time" }),
  reason: Type.Optional(Type.String()),
  substate: Type.Optional(Substate),
});
const GuestSyncSchema = Type.Object(
  {
    at: Type.String({ format: "date-time" }),
    after: Type.String({ description: "What made the guest stand still: resume or restore" }),
    skew_ms: Type.Optional(Type.Integer({ description: "The host's time minus the guest's" })),
    clock_set: Type.Optional(Type.Boolean()),
    clock_error: Type.Optional(Type.String()),
    reseeded: Type.Optional(Type.Boolean()),
    seed_error: Type.Optional(Type.String()),
    error: Type.Optional(Type.String({ description: "Why the guest could not be reached or did not answer" })),
  },
  {
    description: "The last time the daemon gave the guest the host's time (set if off by more than 1 s) and fresh randomness, after it stood still",
  },
);
export type GuestSyncStatus = Static<typeof GuestSyncSchema>;

export const VmStatus = Type.Object(
  {
    id: VmId,
    state: State,
    substate: Type.Union([Substate, Type.Null()], { description: "Within Running, Active or Paused; null in every other state" }),
    pid: Pid,
    spec: Type.Union([VmSpecSchema, Type.Null()], { description: "null only when the VM's state.json could not be read" }),
    created_at: Type.String({ format: "date-time" }),
    updated_at: Type.String({ format: "date-time" }),
    transitions: Type.Array(TransitionSchema, { description: "The most recent transitions, oldest first (at most 64)" }),
    resources: ResourcesSchema,
    pending_releases: Type.Array(PendingReleaseSchema, { description: "Sibling releases not done yet; retried by the reconcile loop" }),
    agent: Type.Object(
      { ready: Type.Boolean(), since: Type.Union([Type.String({ format: "date-time" }), Type.Null()]) },
      { description: "Whether the guest's exec agent answers, and since when" },
    ),
    console: Type.Object(
      { lost_bytes: Type.Integer({ description: "Serial output that could not be written to the log (full or read-only disk) since the daemon started" }) },
      { description: "The serial log's health" },
    ),
    vmm_uid: Type.Optional(Type.Integer({ description: "The uid and gid the VM's VMMs run under (ADR 0009); absent when they run as the daemon's user" })),
    guest_sync: Type.Optional(GuestSyncSchema),
    vmm_state_unknown: Type.Optional(
      Type.Object(
        { after: Type.String({ description: "The VMM call that got no answer in time" }), since: Type.String({ format: "date-time" }) },
        {
          description:
            "Present after a call to the VMM got no answer in time: CH may carry it out later, so whether the guest runs or is paused is unknown until vm.info says (asked once the call's queue frees, and at every reconcile sweep); substate is the last known one",
        },
      ),
    ),
    limits: Type.Union([VmLimitsSchema, Type.Null()], { description: "What the host holds the VM to (ADR 0009); null only when the spec could not be read" }),
    unsaved: Type.Optional(
      Type.Object(
        { error: Type.String(), since: Type.String({ format: "date-time" }) },
        {
          description:
            "Present while the VM's newest state could not be written to its state.json (full or read-only disk): why, and since when. The daemon goes on from memory and writes it once it can",
        },
      ),
    ),
  },
  { title: "VmStatus" },
);
export type VmStatus = Static<typeof VmStatus>;
export const VmList = Type.Object({ vms: Type.Array(Type.Object({ id: VmId, state: State, pid: Pid })) });
export type VmList = Static<typeof VmList>;
