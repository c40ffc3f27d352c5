/**
 * The compute API: each method's name, schemas, errors (catalog entries) and
 * handler in one place. The adapter validates params against `params` and
 * `rpc.discover` is generated from this table, so only what is registered
 * here exists.
 */
import { ERRORS, invalidParams } from "../domain/errors.js";
import { VmStatsSchema } from "../domain/vm-stats.js";
import { type MethodDef, method } from "../jsonrpc/method.js";
import type { Orchestrator } from "../orchestrator/orchestrator.js";
import * as S from "./schemas.js";

const E = ERRORS;

export function computeMethods(orch: Orchestrator): MethodDef[] {
  return [
    method({
      name: "compute.vm.create",
      summary: "Define a VM; it is Configured when this returns",
      params: S.CreateParams,
      result: S.VmStatus,
      errors: [E.InvalidParams, E.VmExists, E.SiblingError, E.StorageError, E.NoVmmUid],
      handler: (p) => orch.create(p),
      audit: (p) => ({ id: p.id, vcpus: p.vcpus, memory_mib: p.memory_mib }),
    }),
    method({
      name: "compute.vm.start",
      summary: "Boot the VM in a new VMM; returns once it is Running (on failure it is Failed, with the reason)",
      params: S.StartParams,
      result: S.VmStatus,
      errors: [E.VmNotFound, E.InvalidState, E.VmmError, E.Timeout, E.StorageError, E.NoVmmUid, E.LimitsNotEnforceable],
      handler: (p) => orch.start(p.id, p.timeout_ms),
      audit: (p) => ({ id: p.id }),
    }),
    method({
      name: "compute.vm.stop",
      summary: "Stop the VM: ACPI power button, wait, then vmm.shutdown, SIGTERM, SIGKILL; returns once it is Stopped",
      params: S.StopParams,
      result: S.VmStatus,
      errors: [E.VmNotFound, E.InvalidState, E.Timeout],
      handler: (p) => orch.stop(p.id, { timeoutMs: p.timeout_ms, force: p.force }),
      audit: (p) => ({ id: p.id }),
    }),
    method({
      name: "compute.vm.pause",
      summary: "CH holds the guest (vm.pause): it stops running, its console and exec sessions stay attached; the VM stays Running, substate Paused",
      params: S.IdParams,
      result: S.VmStatus,
      errors: [E.VmNotFound, E.InvalidState, E.VmmError, E.Timeout],
      handler: (p) => orch.running.pause(p.id),
      audit: (p) => ({ id: p.id }),
    }),
    method({
      name: "compute.vm.resume",
      summary: "A paused guest runs again (vm.resume); substate Active",
      params: S.IdParams,
      result: S.VmStatus,
      errors: [E.VmNotFound, E.InvalidState, E.VmmError, E.Timeout],
      handler: (p) => orch.running.resume(p.id),
      audit: (p) => ({ id: p.id }),
    }),
    method({
      name: "compute.vm.reboot",
      summary: "A guest reboot through CH (vm.reboot): the console reconnects to the new serial device and the exec agent is probed again",
      params: S.IdParams,
      result: S.VmStatus,
      errors: [E.VmNotFound, E.InvalidState, E.VmmError, E.Timeout],
      handler: (p) => orch.running.reboot(p.id),
      audit: (p) => ({ id: p.id }),
    }),
    method({
      name: "compute.vm.snapshot",
      summary: "CH's snapshot of the VM, kept by the daemon under the VM's state dir; a running guest is paused for it and resumed after",
      params: S.SnapshotParams,
      result: S.SnapshotTaken,
      errors: [E.VmNotFound, E.InvalidState, E.InvalidParams, E.VmmError, E.Timeout, E.StorageError],
      handler: (p) => orch.running.snapshot(p.id, p.name, p.timeout_ms),
      audit: (p) => ({ id: p.id, name: p.name }),
    }),
    method({
      name: "compute.vm.snapshots",
      summary: "The VM's snapshots, with their size on disk and when each was taken",
      params: S.IdParams,
      result: S.SnapshotList,
      errors: [E.VmNotFound],
      handler: (p) => orch.running.snapshots(p.id),
    }),
    method({
      name: "compute.vm.snapshot.delete",
      summary: "Deletes one of the VM's snapshots",
      params: S.SnapshotRef,
      result: S.SnapshotDeleted,
      errors: [E.VmNotFound, E.SnapshotNotFound, E.StorageError],
      handler: (p) => orch.running.deleteSnapshot(p.id, p.name),
      audit: (p) => ({ id: p.id, name: p.name }),
    }),
    method({
      name: "compute.vm.restore",
      summary: "Starts a Stopped (or Failed) VM from one of its snapshots, in a fresh VMM, with the resources it holds",
      params: S.RestoreParams,
      result: S.VmStatus,
      errors: [E.VmNotFound, E.InvalidState, E.SnapshotNotFound, E.VmmError, E.Timeout, E.StorageError, E.NoVmmUid, E.LimitsNotEnforceable],
      handler: (p) => orch.restore(p.id, p.name, { resume: p.resume, timeoutMs: p.timeout_ms }),
      audit: (p) => ({ id: p.id, name: p.name }),
    }),
    method({
      name: "compute.vm.remove",
      summary: "Delete the VM and all its files; a running VM only with force",
      params: S.RemoveParams,
      result: S.Removed,
      errors: [E.VmNotFound, E.InvalidState, E.Timeout, E.StorageError],
      handler: (p) => orch.remove(p.id, p.force),
      audit: (p) => ({ id: p.id }),
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
      name: "compute.vm.stats",
      summary: "What the running VM's VMM uses of the host: CPU time, memory (with OOM kills), tasks and I/O, from its cgroup (or /proc where it has none)",
      params: S.IdParams,
      result: VmStatsSchema,
      errors: [E.VmNotFound, E.InvalidState],
      handler: (p) => orch.running.stats(p.id),
    }),
    method({
      name: "compute.vm.console.endpoint",
      summary: "A Unix socket on which any number of clients see the VM's serial console (recent backlog, then live) and type into it",
      params: S.IdParams,
      result: S.ConsoleEndpoint,
      errors: [E.VmNotFound, E.StorageError],
      handler: (p) => orch.consoleEndpoint(p.id),
    }),
    method({
      name: "compute.vm.logs",
      summary: "The VM's serial output by byte range, or its last bytes; for running, stopped and re-adopted VMs",
      params: S.LogsParams,
      result: S.LogsResult,
      errors: [E.VmNotFound, E.InvalidParams, E.StorageError],
      handler: async (p) => {
        if (p.tail !== undefined && p.offset !== undefined) throw invalidParams("/tail", "give offset or tail, not both");
        const encoding = p.encoding ?? "utf8";
        const slice = await orch.logs(p.id, { offset: p.offset, limit: p.limit ?? 65_536, tail: p.tail });
        return { data: slice.data.toString(encoding), encoding, offset: slice.offset, next: slice.next };
      },
    }),
    method({
      name: "compute.vm.events.tail",
      summary: "Events (transitions, VMM events, removals) after `since`, for all VMs or one; waits up to wait_ms for the first",
      params: S.EventsTailParams,
      result: S.EventsTailResult,
      errors: [E.EventsLost, E.InvalidParams],
      handler: (p) => orch.eventsTail({ id: p.id, since: p.since, limit: p.limit ?? 100, waitMs: p.wait_ms ?? 0 }),
    }),
    method({
      name: "compute.vm.exec",
      summary: "Run a command in the guest through my_hypervisor-init's exec agent; returns its output and exit status",
      params: S.ExecParams,
      result: S.ExecReply,
      errors: [E.InvalidParams, E.VmNotFound, E.InvalidState, E.AgentUnreachable, E.ExecFailed, E.StorageError],
      audit: (p) => ({ id: p.id, argv: p.argv, stream: p.stream ?? false }),
      handler: async (p) => {
        const req = { argv: p.argv, env: p.env, cwd: p.cwd, timeout_ms: p.timeout_ms };
        if (p.stream) {
          if (p.stdin !== undefined || p.encoding !== undefined)
            throw invalidParams("/stream", "with stream, stdin goes in Stdin frames on the socket, and output is bytes: no stdin or encoding");
          return orch.running.execStream(p.id, req);
        }
        const encoding = p.encoding ?? "utf8";
        const stdin = p.stdin !== undefined ? Buffer.from(p.stdin, encoding) : undefined;
        const r = await orch.running.exec(p.id, req, stdin);
        return { ...r, stdout: r.stdout.toString(encoding), stderr: r.stderr.toString(encoding) };
      },
    }),
    method({
      name: "compute.vm.list",
      summary: "Every VM with its state and VMM pid",
      params: S.EmptyParams,
      result: S.VmList,
      errors: [],
      handler: () => orch.list(),
    }),
    method({
      name: "compute.host.info",
      summary: "The host's CPUs, memory, hugepages, /dev/kvm, cgroup v2 controllers, the VMM binary (and whether it is supported), and what VMs have committed",
      params: S.EmptyParams,
      result: S.HostInfoSchema,
      errors: [],
      handler: () => orch.hostInfo(),
    }),
  ];
}
