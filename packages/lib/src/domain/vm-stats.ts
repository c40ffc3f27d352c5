/** compute.vm.stats: what a VM's VMM uses of the host, from its cgroup, or from /proc where it has none. */
import { type Static, Type } from "@sinclair/typebox";
import { VmId } from "./vm-spec.js";

const nullable = <T extends ReturnType<typeof Type.Integer>>(schema: T) => Type.Union([schema, Type.Null()]);

export const VmStatsSchema = Type.Object(
  {
    id: VmId,
    pid: Type.Integer({ description: "The VMM's pid" }),
    source: Type.Union([Type.Literal("cgroup"), Type.Literal("process")], {
      description: "cgroup: the VM's cgroup (the VMM and everything it started); process: the VMM process alone, from /proc, where the VM has no cgroup",
    }),
    cgroup: Type.Union([Type.String(), Type.Null()]),
    cpu: Type.Object({
      usage_us: Type.Integer({ description: "CPU time used, user plus system" }),
      user_us: Type.Integer(),
      system_us: Type.Integer(),
      throttled_us: nullable(Type.Integer({ description: "Time held back by cpu.max; null without a cgroup" })),
      nr_throttled: nullable(Type.Integer()),
    }),
    memory: Type.Object({
      current_bytes: Type.Integer({ description: "Memory charged now (cgroup: memory.current, page cache included; process: resident set)" }),
      peak_bytes: nullable(Type.Integer({ description: "The most ever charged (memory.peak); null without a cgroup" })),
      max_events: nullable(Type.Integer({ description: "Times usage reached memory.max" })),
      oom_kills: nullable(Type.Integer({ description: "Processes the kernel OOM-killed in the VM's cgroup" })),
    }),
    pids: Type.Object({ current: Type.Integer({ description: "Tasks (threads and processes)" }) }),
    io: Type.Object({
      read_bytes: Type.Integer(),
      write_bytes: Type.Integer(),
      read_ops: nullable(Type.Integer({ description: "null without a cgroup" })),
      write_ops: nullable(Type.Integer()),
    }),
    devices: Type.Union([Type.Record(Type.String(), Type.Record(Type.String(), Type.Union([Type.Integer(), Type.Null()]))), Type.Null()], {
      description:
        "CH's own counters (vm.counters) by device id: read/write bytes, ops and latencies (µs; null until a first request) of each disk, rx/tx bytes and frames of each NIC; null if CH did not answer in time",
    }),
    memory_actual_size: Type.Union([Type.Integer(), Type.Null()], {
      description: "The guest memory CH holds, in bytes (vm.info); null if CH did not answer in time",
    }),
  },
  { title: "VmStats" },
);
export type VmStats = Static<typeof VmStatsSchema>;
