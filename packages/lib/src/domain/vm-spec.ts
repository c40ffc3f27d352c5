/**
 * What a VM is: the spec a client gives at create (its CPUs, memory, boot
 * source, disks, networks, guest workload). TypeBox schemas are the single
 * source: they validate the create params and generate their OpenRPC
 * description, and `VmSpec` is derived from them. Every layer that needs to
 * know what a VM is imports this, never the RPC layer.
 */
import { type Static, Type } from "@sinclair/typebox";
import type { Workload } from "./guest-config.js";
import type { Expect, Same } from "./same-contract.js";

const strict = { additionalProperties: false } as const;

export const VM_ID_PATTERN = "^[a-z0-9][a-z0-9_-]{0,62}$";
export const VmId = Type.String({
  pattern: VM_ID_PATTERN,
  description: "VM identifier: lower-case letters, digits, '_' and '-', at most 63 characters, starting with a letter or digit",
  errorMessage: `id must match ${VM_ID_PATTERN}`,
});
const AbsolutePath = Type.String({
  // Canonical, so a path means one place: the VMM's jail shows each file at its own path under a new root, and a
  // `..` would climb out of it. A newline has no place in a VM's file names, and the jail lists paths a line each.
  pattern: "^(/(?!\\.\\.?(/|$))[^/\\n\\u0000]+)+$",
  maxLength: 4096,
  description: "Canonical absolute path of an existing file: no '.', '..' or empty segment, no symbolic link on the way",
  errorMessage: "must be a canonical absolute path (no '.', '..' or empty segment, no trailing '/'), without a newline or NUL byte",
});

export const KernelBoot = Type.Object(
  {
    kernel: AbsolutePath,
    initramfs: Type.Optional(AbsolutePath),
    cmdline: Type.Optional(Type.String({ maxLength: 4096, pattern: "^[^\\u0000]*$", errorMessage: "cmdline must not contain a NUL byte" })),
  },
  { ...strict, title: "KernelBoot", description: "Direct kernel boot" },
);
export const FirmwareBoot = Type.Object({ firmware: AbsolutePath }, { ...strict, title: "FirmwareBoot", description: "Firmware boot" });
/** An I/O limit for one disk or NIC, enforced by CH's rate limiter (a token bucket that refills each second). */
export const RateLimit = Type.Object(
  {
    bytes_per_s: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 ** 50, description: "Bytes per second (a second's worth may burst)" })),
    ops_per_s: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 ** 40, description: "Operations (disk requests, network frames) per second" })),
  },
  { ...strict, minProperties: 1, title: "RateLimit", errorMessage: "rate_limit is {bytes_per_s?, ops_per_s?} with at least one of them" },
);
const rateLimit = Type.Optional(RateLimit);

const DiskPath = Type.Object(
  { path: AbsolutePath, readonly: Type.Optional(Type.Boolean()), rate_limit: rateLimit },
  { ...strict, title: "DiskPath", description: "A disk image or block device on this host" },
);
const ResourceName = Type.String({ pattern: "^[a-z0-9][a-z0-9_.-]{0,62}$", errorMessage: "must match ^[a-z0-9][a-z0-9_.-]{0,62}$" });
const DiskVolume = Type.Object(
  {
    volume: ResourceName,
    readonly: Type.Optional(Type.Boolean()),
    size_mib: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 * 1024 * 1024, description: "Size for a volume that does not exist yet" })),
    base: Type.Optional(AbsolutePath),
    rate_limit: rateLimit,
  },
  { ...strict, title: "DiskVolume", description: "A volume prepared by the volume sibling (--vol-socket)" },
);
export const Disk = Type.Union([DiskPath, DiskVolume], {
  errorMessage: "a disk is {path, readonly?, rate_limit?} or {volume, readonly?, size_mib?, base?, rate_limit?}",
});
const Mac = Type.String({ pattern: "^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$", errorMessage: "mac must look like 52:54:00:12:34:56" });
const NetTap = Type.Object(
  {
    tap: Type.String({
      pattern: "^[A-Za-z0-9_.-]{1,15}$",
      description: "An existing tap device",
      errorMessage: "tap must be a Linux interface name (1-15 of [A-Za-z0-9_.-])",
    }),
    mac: Type.Optional(Mac),
    rate_limit: rateLimit,
  },
  { ...strict, title: "NetTap" },
);
const NetRef = Type.Object(
  { network: ResourceName, mac: Type.Optional(Mac), rate_limit: rateLimit },
  { ...strict, title: "NetRef", description: "A port on a network of the network sibling (--net-socket)" },
);
export const Net = Type.Union([NetTap, NetRef], { errorMessage: "a net is {tap, mac?, rate_limit?} or {network, mac?, rate_limit?}" });

const ENV_NAME = "^[A-Za-z_][A-Za-z0-9_]*$";
export const EnvMap = Type.Record(
  Type.String({ pattern: ENV_NAME }),
  Type.String({ pattern: "^[^\\u0000]*$", errorMessage: "an environment value must not contain a NUL byte" }),
  {
    additionalProperties: false,
    description: `Environment variables; each name matches ${ENV_NAME}`,
    errorMessage: `every environment variable name must match ${ENV_NAME}`,
  },
);
export const WorkloadSchema = Type.Object(
  {
    argv: Type.Array(Type.String(), { minItems: 1, maxItems: 1024, description: "The command the guest init runs" }),
    env: Type.Optional(EnvMap),
    cwd: Type.Optional(Type.String({ pattern: "^/" })),
    restart: Type.Optional(Type.Union([Type.Literal("never"), Type.Literal("on-failure"), Type.Literal("always")], { description: "default never" })),
    on_exit: Type.Optional(
      Type.Union([Type.Literal("poweroff"), Type.Literal("stay")], { description: "After the workload ends for good: power off, or stay up (default)" }),
    ),
    console: Type.Optional(
      Type.Boolean({
        description: "The console is the workload's stdin, stdout and stderr and its controlling terminal (default false: its output is tagged on the console)",
      }),
    ),
  },
  { ...strict, title: "Workload", description: "Run by my_hypervisor-init inside the guest (passed on the kernel command line)" },
);

export const VmSpecSchema = Type.Object(
  {
    id: VmId,
    vcpus: Type.Integer({ minimum: 1, maximum: 254 }),
    memory_mib: Type.Integer({ minimum: 16, maximum: 16 * 1024 * 1024 }),
    boot: Type.Union([KernelBoot, FirmwareBoot], { errorMessage: "boot must be {kernel, initramfs?, cmdline?} or {firmware}" }),
    disks: Type.Optional(Type.Array(Disk, { maxItems: 64 })),
    nets: Type.Optional(Type.Array(Net, { maxItems: 16 })),
    workload: Type.Optional(WorkloadSchema),
    hostname: Type.Optional(
      Type.String({ pattern: "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", description: "The guest's hostname, set by my_hypervisor-init" }),
    ),
    cpu_affinity: Type.Optional(
      Type.Array(Type.Integer({ minimum: 0, maximum: 8191 }), {
        minItems: 1,
        maxItems: 8192,
        uniqueItems: true,
        description: "The host CPUs every vCPU of this VM may run on (CH's cpus.affinity); each must exist on this host",
      }),
    ),
    seccomp: Type.Optional(
      Type.Union([Type.Literal("enforce"), Type.Literal("log")], {
        description:
          "The VMM's seccomp filters: enforce (default; a forbidden system call kills the VMM with SIGSYS) or log (let through and logged: an escape hatch to find the call)",
      }),
    ),
  },
  { ...strict, title: "VmSpec" },
);
export type VmSpec = Static<typeof VmSpecSchema>;
export type RateLimit = Static<typeof RateLimit>;

/** The workload a client gives is exactly what the guest init reads (domain/guest-config.ts). */
export type WorkloadContract = Expect<Same<Static<typeof WorkloadSchema>, Workload>>;
