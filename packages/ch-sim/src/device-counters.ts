/**
 * vm.counters: CH's per-device counters, keyed by device id (the config's
 * `id`, else the name CH gives: `_disk<n>`, `_net<n>`, numbered in the order
 * devices are added). The test VMM's guest is processes and does no virtio
 * I/O; what it does do is counted: at each boot the kernel reads each disk's
 * first 4 KiB looking for a partition table, as a real guest kernel does
 * (unless no guest runs: `sim.guest=none`). Latencies are in microseconds;
 * until a first request CH reports u64::MAX for them (the average scaled
 * down by its LATENCY_SCALE of 10000), and so does the test VMM.
 */
import fs from "node:fs";
import type { VmConfig } from "./vm-config.js";

const PARTITION_PROBE_BYTES = 4096;
const U64_MAX = 18446744073709551615n;
const LATENCY_SCALE = 10000n;

interface DiskCounters {
  read_bytes: number;
  read_ops: number;
  write_bytes: number;
  write_ops: number;
  read_latency_min: bigint;
  read_latency_max: bigint;
  read_latency_avg: bigint;
  write_latency_min: bigint;
  write_latency_max: bigint;
  write_latency_avg: bigint;
}

function diskCounters(): DiskCounters {
  const none = { min: U64_MAX, max: U64_MAX, avg: U64_MAX / LATENCY_SCALE };
  return {
    read_bytes: 0,
    read_ops: 0,
    write_bytes: 0,
    write_ops: 0,
    read_latency_min: none.min,
    read_latency_max: none.max,
    read_latency_avg: none.avg,
    write_latency_min: none.min,
    write_latency_max: none.max,
    write_latency_avg: none.avg,
  };
}
type Counters = DiskCounters | Record<string, number>;

/** The first bytes of the image formats CH tells apart; anything else is raw. */
const IMAGE_MAGIC: [string, Buffer][] = [
  ["Qcow2", Buffer.from("QFI\xfb", "latin1")],
  ["Vhdx", Buffer.from("vhdxfile", "latin1")],
];

function imageType(file: string): string {
  const head = Buffer.alloc(8);
  const fd = fs.openSync(file, "r");
  try {
    fs.readSync(fd, head, 0, head.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  return IMAGE_MAGIC.find(([, magic]) => head.subarray(0, magic.length).equals(magic))?.[0] ?? "Raw";
}

/**
 * What CH's device manager writes back into the config as it makes the devices at boot: each virtio device without
 * an `id` gets `_<kind><n>`, one count across kinds in the order it makes them (disks, NICs, then vsock), and each
 * disk the image type it found.
 */
export function nameDevices(config: VmConfig): void {
  let n = 0;
  for (const d of config.disks ?? []) {
    d.id ??= `_disk${n++}`;
    if (d.path !== undefined && d.image_type === "Unknown") d.image_type = imageType(d.path);
  }
  for (const net of (config.net as { id?: string }[] | undefined) ?? []) net.id ??= `_net${n++}`;
  if (config.vsock) config.vsock.id ??= `_vsock${n++}`;
}

export class DeviceCounters {
  private readonly disks: { id: string; path: string; counters: DiskCounters }[] = [];
  private readonly nets: { id: string; counters: Counters }[] = [];

  /** `config` has its devices named (nameDevices). */
  constructor(config: VmConfig) {
    for (const d of config.disks ?? []) this.disks.push({ id: d.id ?? "", path: d.path ?? "", counters: diskCounters() });
    for (const net of (config.net as { id?: string }[] | undefined) ?? [])
      this.nets.push({ id: net.id ?? "", counters: { rx_bytes: 0, rx_frames: 0, tx_bytes: 0, tx_frames: 0 } });
  }

  /** The guest kernel's partition scan at boot: one read of each disk's first block. */
  bootProbe(): void {
    for (const disk of this.disks) {
      try {
        const fd = fs.openSync(disk.path, "r");
        try {
          const started = process.hrtime.bigint();
          disk.counters.read_bytes += fs.readSync(fd, Buffer.alloc(PARTITION_PROBE_BYTES), 0, PARTITION_PROBE_BYTES, 0);
          const micros = (process.hrtime.bigint() - started) / 1000n;
          // The first and only request: min, max and average are its latency.
          Object.assign(disk.counters, { read_ops: disk.counters.read_ops + 1, read_latency_min: micros, read_latency_max: micros, read_latency_avg: micros });
        } finally {
          fs.closeSync(fd);
        }
      } catch {
        // A disk that cannot be read failed vm.boot already.
      }
    }
  }

  get all(): Record<string, Counters> {
    return Object.fromEntries([...this.disks, ...this.nets].map((d) => [d.id, { ...d.counters }]));
  }
}
