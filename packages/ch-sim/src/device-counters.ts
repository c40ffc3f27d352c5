/**
 * vm.counters: CH's per-device counters, keyed by device id (the config's
 * `id`, else the name CH gives: `_disk<n>`, `_net<n>`, numbered in the order
 * devices are added). The test VMM's guest is processes and does no virtio
 * I/O; what it does do is counted: at each boot the kernel reads each disk's
 * first 4 KiB looking for a partition table, as a real guest kernel does.
 */
import fs from "node:fs";
import type { VmConfig } from "./vmm.js";

const PARTITION_PROBE_BYTES = 4096;

interface DiskCounters {
  read_bytes: number;
  read_ops: number;
  write_bytes: number;
  write_ops: number;
}
type Counters = DiskCounters | Record<string, number>;

export class DeviceCounters {
  private readonly disks: { id: string; path: string; counters: DiskCounters }[] = [];
  private readonly nets: { id: string; counters: Counters }[] = [];

  constructor(config: VmConfig) {
    let n = 0;
    for (const d of config.disks ?? [])
      this.disks.push({
        id: (d.id as string | undefined) ?? `_disk${n++}`,
        path: d.path ?? "",
        counters: { read_bytes: 0, read_ops: 0, write_bytes: 0, write_ops: 0 },
      });
    for (const net of (config.net as { id?: string }[] | undefined) ?? [])
      this.nets.push({ id: net.id ?? `_net${n++}`, counters: { rx_bytes: 0, rx_frames: 0, tx_bytes: 0, tx_frames: 0 } });
  }

  /** The guest kernel's partition scan at boot: one read of each disk's first block. */
  bootProbe(): void {
    for (const disk of this.disks) {
      try {
        const fd = fs.openSync(disk.path, "r");
        try {
          disk.counters.read_bytes += fs.readSync(fd, Buffer.alloc(PARTITION_PROBE_BYTES), 0, PARTITION_PROBE_BYTES, 0);
          disk.counters.read_ops += 1;
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
