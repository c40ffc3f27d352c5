/**
 * cloud-hypervisor v53.0's request types (vmm/src/vm_config.rs, vmm/src/api/mod.rs), as serde sees them: field order,
 * which fields have defaults and what they are, which structs are flattened into another (their errors are placed at
 * the end of the map) and which leave `None` out when written. VmConfig's parts the test VMM does not simulate are
 * kept as sent (`any`).
 */
import crypto from "node:crypto";
import { deserialize, type Field, type RustType } from "./serde-json.js";

const u8: RustType = { k: "uint", name: "u8" };
const u16: RustType = { k: "uint", name: "u16" };
const u32: RustType = { k: "uint", name: "u32" };
const u64: RustType = { k: "uint", name: "u64" };
const usize: RustType = { k: "uint", name: "usize" };
const bool: RustType = { k: "bool" };
const string: RustType = { k: "string" };
const path: RustType = { k: "string", path: true };
const any: RustType = { k: "any" };
const opt = (of: RustType): RustType => ({ k: "option", of });
const seq = (of: RustType): RustType => ({ k: "seq", of });
const enumOf = (name: string, ...variants: string[]): RustType => ({ k: "enum", name, variants });
const field = (name: string, type: RustType, fallback?: unknown): Field =>
  fallback === undefined ? { name, type } : { name, type, default: () => structuredClone(fallback) };

/** Fields of a struct flattened into another. */
const flattened = (fields: Field[]): Field[] => fields.map((f) => ({ ...f, flattened: true }));

/** `PciDeviceCommonConfig`, flattened into each PCI device's config. */
const PCI_COMMON = flattened([
  field("id", opt(string)),
  { ...field("iommu", bool, false), skipIfFalse: true },
  field("pci_segment", u16, 0),
  field("pci_device_id", opt(u8)),
]);

const TOKEN_BUCKET: RustType = {
  k: "struct",
  name: "TokenBucketConfig",
  fields: [field("size", u64), field("one_time_burst", opt(u64)), field("refill_time", u64)],
};
const RATE_LIMITER: RustType = {
  k: "struct",
  name: "RateLimiterConfig",
  denyUnknown: true,
  fields: [field("bandwidth", opt(TOKEN_BUCKET)), field("ops", opt(TOKEN_BUCKET))],
};

const CONSOLE_MODE = enumOf("ConsoleOutputMode", "Off", "Pty", "Tty", "File", "Socket", "Null");
/** `CommonConsoleConfig`, flattened into the serial port's and the console's. */
const COMMON_CONSOLE = flattened([field("file", opt(path)), field("mode", CONSOLE_MODE), field("socket", opt(path))]);

const CPUS: RustType = {
  k: "struct",
  name: "CpusConfig",
  skipNone: true,
  fields: [
    field("boot_vcpus", u32),
    field("max_vcpus", u32),
    field("topology", opt(any)),
    field("kvm_hyperv", bool, false),
    field("max_phys_bits", u8, 46),
    field("affinity", opt(seq({ k: "struct", name: "CpuAffinity", fields: [field("vcpu", u32), field("host_cpus", seq(usize))] }))),
    field("features", { k: "struct", name: "CpuFeatures", fields: [field("amx", bool, false)] }, { amx: false }),
    field("nested", bool, true),
    field("core_scheduling", enumOf("CoreScheduling", "Vm", "Vcpu", "Off"), "Vm"),
    field("profile", enumOf("CpuProfile", "Host"), "Host"),
  ],
};

const MEMORY: RustType = {
  k: "struct",
  name: "MemoryConfig",
  skipNone: true,
  fields: [
    field("size", u64),
    field("mergeable", bool, false),
    field("hotplug_method", enumOf("HotplugMethod", "Acpi", "VirtioMem"), "Acpi"),
    field("hotplug_size", opt(u64)),
    field("hotplugged_size", opt(u64)),
    field("shared", bool, false),
    field("hugepages", bool, false),
    field("hugepage_size", opt(u64)),
    field("prefault", bool, false),
    field("reserve", bool, false),
    field("zones", opt(any)),
    field("thp", bool, true),
  ],
};

const PAYLOAD: RustType = {
  k: "struct",
  name: "PayloadConfig",
  skipNone: true,
  fields: [field("firmware", opt(path)), field("kernel", opt(path)), field("cmdline", opt(string)), field("initramfs", opt(path))],
};

const DISK: RustType = {
  k: "struct",
  name: "DiskConfig",
  skipNone: true,
  fields: [
    ...PCI_COMMON,
    field("path", opt(path)),
    field("readonly", bool, false),
    field("direct", bool, false),
    field("num_queues", usize, 1),
    field("queue_size", u16, 128),
    field("vhost_user", bool, false),
    field("vhost_socket", opt(string)),
    field("rate_limit_group", opt(string)),
    field("rate_limiter_config", opt(RATE_LIMITER)),
    field("disable_io_uring", bool, false),
    field("disable_aio", bool, false),
    field("serial", opt(string)),
    field("queue_affinity", opt(any)),
    field("backing_files", bool, false),
    field("sparse", bool, true),
    field("image_type", enumOf("ImageType", "FixedVhd", "Qcow2", "Raw", "Vhdx", "Unknown"), "Unknown"),
    field("lock_granularity", enumOf("LockGranularityChoice", "ByteRange", "Full"), "ByteRange"),
  ],
};

/** CH gives a NIC without a MAC a random locally administered one. */
function randomMac(): string {
  const bytes = crypto.randomBytes(6);
  bytes[0] = ((bytes[0] as number) & 0xfe) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

const NET: RustType = {
  k: "struct",
  name: "NetConfig",
  skipNone: true,
  fields: [
    ...PCI_COMMON,
    field("tap", opt(string)),
    field("ip", opt(string)),
    field("mask", opt(string)),
    { name: "mac", type: string, default: randomMac },
    field("host_mac", opt(string)),
    field("mtu", opt(u16)),
    field("num_queues", usize, 2),
    field("queue_size", u16, 256),
    field("vhost_user", bool, false),
    field("vhost_socket", opt(string)),
    field("vhost_mode", enumOf("VhostMode", "Client", "Server"), "Client"),
    field("fds", opt(seq(any))),
    field("rate_limiter_config", opt(RATE_LIMITER)),
    field("offload_tso", bool, true),
    field("offload_ufo", bool, true),
    field("offload_csum", bool, true),
  ],
};

const RNG: RustType = { k: "struct", name: "RngConfig", skipNone: true, fields: [...PCI_COMMON, field("src", path)] };
const SERIAL: RustType = { k: "struct", name: "SerialConfig", skipNone: true, fields: COMMON_CONSOLE };
const CONSOLE: RustType = { k: "struct", name: "ConsoleConfig", skipNone: true, fields: [...COMMON_CONSOLE, ...PCI_COMMON] };
const DEBUG_CONSOLE: RustType = {
  k: "struct",
  name: "DebugConsoleConfig",
  skipNone: true,
  fields: [field("file", opt(path)), field("mode", CONSOLE_MODE), field("iobase", opt(u16))],
};
const VSOCK: RustType = { k: "struct", name: "VsockConfig", skipNone: true, fields: [...PCI_COMMON, field("cid", u32), field("socket", path)] };
const LANDLOCK: RustType = { k: "struct", name: "LandlockConfig", fields: [field("path", path), field("access", string)] };

/** A section's `Default` in CH: what it sets itself (`given`), the rest its fields' own defaults, as serde would read it. */
const defaultOf = (t: RustType, given: Record<string, unknown>): unknown => deserialize(JSON.stringify(given), t);

/** VmConfig: 28 fields in this build (no pvmemcontrol, guest_debug or ivshmem). */
export const VM_CONFIG: RustType = {
  k: "struct",
  name: "VmConfig",
  skipNone: true,
  fields: [
    field("cpus", CPUS, defaultOf(CPUS, { boot_vcpus: 1, max_vcpus: 1 })),
    field("memory", MEMORY, defaultOf(MEMORY, { size: 512 << 20 })),
    field("payload", opt(PAYLOAD)),
    field("rate_limit_groups", opt(any)),
    field("disks", opt(seq(DISK))),
    field("net", opt(seq(NET))),
    field("rng", RNG, defaultOf(RNG, { src: "/dev/urandom" })),
    field("balloon", opt(any)),
    field("generic_vhost_user", opt(any)),
    field("fs", opt(any)),
    field("pmem", opt(any)),
    field("serial", SERIAL, defaultOf(SERIAL, { mode: "Null" })),
    field("console", CONSOLE, defaultOf(CONSOLE, { mode: "Tty" })),
    field("debug_console", DEBUG_CONSOLE, defaultOf(DEBUG_CONSOLE, { mode: "Off", iobase: 233 })),
    field("devices", opt(any)),
    field("user_devices", opt(any)),
    field("vdpa", opt(any)),
    field("vsock", opt(VSOCK)),
    field("pvpanic", bool, false),
    field("iommu", bool, false),
    field("numa", opt(any)),
    field("watchdog", bool, false),
    field("rtc", opt(any)),
    field("pci_segments", opt(any)),
    field("platform", opt(any)),
    field("tpm", opt(any)),
    field("landlock_enable", bool, false),
    field("landlock_rules", opt(seq(LANDLOCK))),
  ],
};

export const VM_SNAPSHOT_CONFIG: RustType = { k: "struct", name: "VmSnapshotConfig", fields: [field("destination_url", string)] };

export const RESTORE_CONFIG: RustType = {
  k: "struct",
  name: "RestoreConfig",
  fields: [
    field("source_url", path),
    field("prefault", bool, false),
    field("memory_restore_mode", enumOf("MemoryRestoreMode", "Copy", "OnDemand"), "Copy"),
    field("net_fds", opt(any)),
    field("resume", bool, false),
  ],
};
