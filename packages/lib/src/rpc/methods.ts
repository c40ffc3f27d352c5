/**
 * The daemon's methods: name, schemas and handler in one place. The adapter
 * validates params against `params` and `rpc.discover` is generated from
 * this table, so only what is registered here exists.
 */
import type { Static, TSchema } from "@sinclair/typebox";
import { ErrorCode } from "../errors.js";
import type { Orchestrator } from "../orchestrator/orchestrator.js";
import * as S from "./schemas.js";

export interface MethodDef<P extends TSchema = TSchema, R extends TSchema = TSchema> {
  name: string;
  summary: string;
  params: P;
  result: R;
  errors: number[];
  handler: (params: Static<P>) => Promise<Static<R>> | Static<R>;
}

const method = <P extends TSchema, R extends TSchema>(def: MethodDef<P, R>) => def as unknown as MethodDef;

const E = ErrorCode;

export function computeMethods(orch: Orchestrator): MethodDef[] {
  return [
    method({
      name: "compute.vm.create",
      summary: "Define a VM; it is Configured when this returns",
      params: S.CreateParams,
      result: S.VmStatus,
      errors: [E.InvalidParams, E.VmExists],
      handler: (p) => orch.create(p),
    }),
    method({
      name: "compute.vm.start",
      summary: "Boot the VM in a new VMM; returns once it is Running (on failure it is Failed, with the reason)",
      params: S.StartParams,
      result: S.VmStatus,
      errors: [E.VmNotFound, E.InvalidState, E.VmmError, E.Timeout],
      handler: (p) => orch.start(p.id, p.timeout_ms),
    }),
    method({
      name: "compute.vm.stop",
      summary: "Stop the VM: ACPI power button, wait, then vmm.shutdown, SIGTERM, SIGKILL; returns once it is Stopped",
      params: S.StopParams,
      result: S.VmStatus,
      errors: [E.VmNotFound, E.InvalidState, E.Timeout],
      handler: (p) => orch.stop(p.id, { timeoutMs: p.timeout_ms, force: p.force }),
    }),
    method({
      name: "compute.vm.remove",
      summary: "Delete the VM and all its files; a running VM only with force",
      params: S.RemoveParams,
      result: S.Removed,
      errors: [E.VmNotFound, E.InvalidState, E.Timeout],
      handler: (p) => orch.remove(p.id, p.force),
    }),
    method({
      name: "compute.vm.status",
      summary: "The VM's state, VMM pid, spec and recent transitions",
      params: S.IdParams,
      result: S.VmStatus,
      errors: [E.VmNotFound],
      handler: (p) => orch.status(p.id),
    }),
    method({
      name: "compute.vm.list",
      summary: "Every VM with its state and VMM pid",
      params: S.EmptyParams,
      result: S.VmList,
      errors: [],
      handler: () => orch.list(),
    }),
  ];
}
