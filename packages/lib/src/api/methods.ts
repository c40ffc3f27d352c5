/**
 * The compute API: each method's contract (schemas, errors from the catalog,
 * what its audit line names) in one table, and the handlers that bind it to
 * the orchestrator. The adapter validates params against the contract;
 * `rpc.discover` and the typed client (packages/client) are generated from
 * it, so only what is in the table exists, and nothing can describe it twice.
 */
import { ERRORS, invalidParams } from "../domain/errors.js";
import { VmStatsSchema } from "../domain/vm-stats.js";
import { bindMethods, contract, type Handler, type MethodDef } from "../jsonrpc/method.js";
import { type ApiInfo, openRpcDocument } from "../jsonrpc/openrpc.js";
import type { Orchestrator } from "../orchestrator/orchestrator.js";
import * as S from "./schemas.js";

const E = ERRORS;

/** Pause, resume and reboot: an id in, the VM's status out, done by the VMM. */
const throughVmm = (summary: string) =>
  contract({
    summary,
    params: S.IdParams,
    result: S.VmStatus,
    errors: [E.VmNotFound, E.InvalidState, E.VmmError, E.Timeout],
    audit: (p) => ({ id: p.id }),
  });

/** What each method takes, answers and may fail with: the contract, without the code behind it. */
export const COMPUTE_API = {
  "compute.vm.create": contract({
    summary: "Define a VM; it is Configured when this returns",
    params: S.CreateParams,
    result: S.VmStatus,
    errors: [E.InvalidParams, E.VmExists, E.SiblingError, E.StorageError, E.NoVmmUid],
    audit: (p) => ({ id: p.id, vcpus: p.vcpus, memory_mib: p.memory_mib }),
  }),
  "compute.vm.start": contract({
    summary: "Boot the VM in a new VMM; returns once it is Running (on failure it is Failed, with the reason)",
    params: S.StartParams,
    result: S.VmStatus,
    errors: [E.VmNotFound, E.InvalidState, E.VmmError, E.Timeout, E.StorageError, E.NoVmmUid, E.LimitsNotEnforceable],
    audit: (p) => ({ id: p.id }),
  }),
  "compute.vm.stop": contract({
    summary: "Stop the VM: ACPI power button, wait, then vmm.shutdown, SIGTERM, SIGKILL; returns once it is Stopped",
    params: S.StopParams,
    result: S.VmStatus,
    errors: [E.VmNotFound, E.InvalidState, E.Timeout],
    audit: (p) => ({ id: p.id }),
  }),
  "compute.vm.pause": throughVmm(
    "CH holds the guest (vm.pause): it stops running, its console and exec sessions stay attached; the VM stays Running, substate Paused",
  ),
  "compute.vm.resume": throughVmm("A paused guest runs again (vm.resume); substate Active"),
  "compute.vm.reboot": throughVmm("A guest reboot through CH (vm.reboot): the console reconnects to the new serial device and the exec agent is probed again"),
  "compute.vm.snapshot": contract({
    summary: "CH's snapshot of the VM, kept by the daemon under the VM's state dir; a running guest is paused for it and resumed after",
    params: S.SnapshotParams,
    result: S.SnapshotTaken,
    errors: [E.VmNotFound, E.InvalidState, E.InvalidParams, E.VmmError, E.Timeout, E.StorageError],
    audit: (p) => ({ id: p.id, name: p.name }),
  }),
  "compute.vm.snapshots": contract({
    summary: "The VM's snapshots, with their size on disk and when each was taken",
    params: S.IdParams,
    result: S.SnapshotList,
    errors: [E.VmNotFound],
  }),
  "compute.vm.snapshot.delete": contract({
    summary: "Deletes one of the VM's snapshots",
    params: S.SnapshotRef,
    result: S.SnapshotDeleted,
    errors: [E.VmNotFound, E.SnapshotNotFound, E.StorageError],
    audit: (p) => ({ id: p.id, name: p.name }),
  }),
  "compute.vm.restore": contract({
    summary: "Starts a Stopped (or Failed) VM from one of its snapshots, in a fresh VMM, with the resources it holds",
    params: S.RestoreParams,
    result: S.VmStatus,
    errors: [E.VmNotFound, E.InvalidState, E.SnapshotNotFound, E.VmmError, E.Timeout, E.StorageError, E.NoVmmUid, E.LimitsNotEnforceable],
    audit: (p) => ({ id: p.id, name: p.name }),
  }),
  "compute.vm.remove": contract({
    summary: "Delete the VM and all its files; a running VM only with force",
    params: S.RemoveParams,
    result: S.Removed,
    errors: [E.VmNotFound, E.InvalidState, E.Timeout, E.StorageError],
    audit: (p) => ({ id: p.id }),
  }),
  "compute.vm.status": contract({
    summary: "The VM's state, VMM pid, spec and recent transitions",
    params: S.IdParams,
    result: S.VmStatus,
    errors: [E.VmNotFound],
  }),
  "compute.vm.stats": contract({
    summary: "What the running VM's VMM uses of the host: CPU time, memory (with OOM kills), tasks and I/O, from its cgroup (or /proc where it has none)",
    params: S.IdParams,
    result: VmStatsSchema,
    errors: [E.VmNotFound, E.InvalidState],
  }),
  "compute.vm.console.endpoint": contract({
    summary: "A Unix socket on which any number of clients see the VM's serial console (recent backlog, then live) and type into it",
    params: S.IdParams,
    result: S.ConsoleEndpoint,
    errors: [E.VmNotFound, E.StorageError],
  }),
  "compute.vm.logs": contract({
    summary: "The VM's serial output by byte range, or its last bytes; for running, stopped and re-adopted VMs",
    params: S.LogsParams,
    result: S.LogsResult,
    errors: [E.VmNotFound, E.InvalidParams, E.StorageError],
  }),
  "compute.vm.events.tail": contract({
    summary: "Events (transitions, VMM events, removals) after `since`, for all VMs or one; waits up to wait_ms for the first",
    params: S.EventsTailParams,
    result: S.EventsTailResult,
    errors: [E.EventsLost, E.InvalidParams],
  }),
  "compute.vm.exec": contract({
    summary: "Run a command in the guest through my_hypervisor-init's exec agent; returns its output and exit status",
    params: S.ExecParams,
    result: S.ExecReply,
    errors: [E.InvalidParams, E.VmNotFound, E.InvalidState, E.AgentUnreachable, E.ExecFailed, E.StorageError],
    audit: (p) => ({ id: p.id, argv: p.argv, stream: p.stream ?? false }),
  }),
  "compute.vm.list": contract({
    summary: "Every VM with its state and VMM pid",
    params: S.EmptyParams,
    result: S.VmList,
    errors: [],
  }),
  "compute.host.info": contract({
    summary: "The host's CPUs, memory, hugepages, /dev/kvm, cgroup v2 controllers, the VMM binary (and whether it is supported), and what VMs have committed",
    params: S.EmptyParams,
    result: S.HostInfoSchema,
    errors: [],
  }),
};

export type ComputeApi = typeof COMPUTE_API;
export type ComputeMethodName = keyof ComputeApi;

/** What `rpc.discover` says of the compute API. */
export const COMPUTE_API_INFO: ApiInfo = {
  title: "my_hypervisor compute API",
  description: "JSON-RPC 2.0, one message per line, on the daemon's Unix socket. See docs/rpc.md.",
};

/** The OpenRPC document `rpc.discover` serves, from the contract alone (the typed client is generated from it). */
export const computeApiDocument = (version: string) =>
  openRpcDocument(
    Object.entries(COMPUTE_API).map(([name, c]) => ({ name, ...c })),
    version,
    COMPUTE_API_INFO,
  );

/** The compute API bound to an orchestrator: each method of the contract and the code that answers it. */
export function computeMethods(orch: Orchestrator): MethodDef[] {
  const handlers: { [M in ComputeMethodName]: Handler<ComputeApi[M]> } = {
    "compute.vm.create": (p) => orch.create(p),
    "compute.vm.start": (p) => orch.start(p.id, p.timeout_ms),
    "compute.vm.stop": (p) => orch.stop(p.id, { timeoutMs: p.timeout_ms, force: p.force }),
    "compute.vm.pause": (p) => orch.running.pause(p.id),
    "compute.vm.resume": (p) => orch.running.resume(p.id),
    "compute.vm.reboot": (p) => orch.running.reboot(p.id),
    "compute.vm.snapshot": (p) => orch.running.snapshot(p.id, p.name, p.timeout_ms),
    "compute.vm.snapshots": (p) => orch.running.snapshots(p.id),
    "compute.vm.snapshot.delete": (p) => orch.running.deleteSnapshot(p.id, p.name),
    "compute.vm.restore": (p) => orch.restore(p.id, p.name, { resume: p.resume, timeoutMs: p.timeout_ms }),
    "compute.vm.remove": (p) => orch.remove(p.id, p.force),
    "compute.vm.status": (p) => orch.status(p.id),
    "compute.vm.stats": (p) => orch.running.stats(p.id),
    "compute.vm.console.endpoint": (p) => orch.consoleEndpoint(p.id),
    "compute.vm.logs": async (p) => {
      if (p.tail !== undefined && p.offset !== undefined) throw invalidParams("/tail", "give offset or tail, not both");
      const encoding = p.encoding ?? "utf8";
      const slice = await orch.logs(p.id, { offset: p.offset, limit: p.limit ?? 65_536, tail: p.tail });
      return { data: slice.data.toString(encoding), encoding, offset: slice.offset, next: slice.next };
    },
    "compute.vm.events.tail": (p) => orch.eventsTail({ id: p.id, since: p.since, limit: p.limit ?? 100, waitMs: p.wait_ms ?? 0 }),
    "compute.vm.exec": async (p) => {
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
    "compute.vm.list": () => orch.list(),
    "compute.host.info": () => orch.hostInfo(),
  };
  return bindMethods(COMPUTE_API, handlers);
}
