/**
 * Parameter and result schemas of every method. The same objects validate
 * incoming params and generate the OpenRPC document, so the two cannot drift.
 * An `errorMessage` on a schema replaces TypeBox's generic text.
 */
import { type Static, Type } from "@sinclair/typebox";
import { VM_STATES } from "../lifecycle/machine.js";

const strict = { additionalProperties: false } as const;

export const VM_ID_PATTERN = "^[a-z0-9][a-z0-9_-]{0,62}$";
export const VmId = Type.String({
  pattern: VM_ID_PATTERN,
  description: "VM identifier: lower-case letters, digits, '_' and '-', at most 63 characters, starting with a letter or digit",
  errorMessage: `id must match ${VM_ID_PATTERN}`,
});
const AbsolutePath = Type.String({
  pattern: "^/",
  maxLength: 4096,
  description: "Absolute path of an existing file",
  errorMessage: "must be an absolute path",
});
const timeoutMs = (description: string) => Type.Integer({ minimum: 1, maximum: 3_600_000, description });

export const KernelBoot = Type.Object(
  {
    kernel: AbsolutePath,
    initramfs: Type.Optional(AbsolutePath),
    cmdline: Type.Optional(Type.String({ maxLength: 4096, pattern: "^[^\\u0000]*$", errorMessage: "cmdline must not contain a NUL byte" })),
  },
  { ...strict, title: "KernelBoot", description: "Direct kernel boot" },
);
export const FirmwareBoot = Type.Object({ firmware: AbsolutePath }, { ...strict, title: "FirmwareBoot", description: "Firmware boot" });
const DiskPath = Type.Object(
  { path: AbsolutePath, readonly: Type.Optional(Type.Boolean()) },
  { ...strict, title: "DiskPath", description: "A disk image or block device on this host" },
);
const ResourceName = Type.String({ pattern: "^[a-z0-9][a-z0-9_.-]{0,62}$", errorMessage: "must match ^[a-z0-9][a-z0-9_.-]{0,62}$" });
const DiskVolume = Type.Object(
  {
    volume: ResourceName,
    readonly: Type.Optional(Type.Boolean()),
    size_mib: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 * 1024 * 1024, description: "Size for a volume that does not exist yet" })),
    base: Type.Optional(AbsolutePath),
  },
  { ...strict, title: "DiskVolume", description: "A volume prepared by the volume sibling (--vol-socket)" },
);
export const Disk = Type.Union([DiskPath, DiskVolume], { errorMessage: "a disk is {path, readonly?} or {volume, readonly?, size_mib?, base?}" });
const Mac = Type.String({ pattern: "^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$", errorMessage: "mac must look like 52:54:00:12:34:56" });
const NetTap = Type.Object(
  {
    tap: Type.String({
      pattern: "^[A-Za-z0-9_.-]{1,15}$",
      description: "An existing tap device",
      errorMessage: "tap must be a Linux interface name (1-15 of [A-Za-z0-9_.-])",
    }),
    mac: Type.Optional(Mac),
  },
  { ...strict, title: "NetTap" },
);
const NetRef = Type.Object(
  { network: ResourceName, mac: Type.Optional(Mac) },
  { ...strict, title: "NetRef", description: "A port on a network of the network sibling (--net-socket)" },
);
export const Net = Type.Union([NetTap, NetRef], { errorMessage: "a net is {tap, mac?} or {network, mac?}" });

const ENV_NAME = "^[A-Za-z_][A-Za-z0-9_]*$";
const EnvMap = Type.Record(
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
  },
  { ...strict, title: "Workload", description: "Run by my_hypervisor-init inside the guest (passed on the kernel command line)" },
);

export const CreateParams = Type.Object(
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
  },
  { ...strict, title: "VmSpec" },
);
export type VmSpec = Static<typeof CreateParams>;

export const IdParams = Type.Object({ id: VmId }, strict);
export const StartParams = Type.Object({ id: VmId, timeout_ms: Type.Optional(timeoutMs("How long the whole start may take (default 30000)")) }, strict);
export const StopParams = Type.Object(
  {
    id: VmId,
    timeout_ms: Type.Optional(timeoutMs("How long the guest may take to power off after the power button (default 10000)")),
    force: Type.Optional(Type.Boolean({ description: "Skip the graceful wait and go straight to vmm.shutdown, SIGTERM, SIGKILL" })),
  },
  strict,
);
export const RemoveParams = Type.Object({ id: VmId, force: Type.Optional(Type.Boolean({ description: "Stop a running VM first" })) }, strict);
export const EmptyParams = Type.Object({}, strict);

const State = Type.Union(
  VM_STATES.map((s) => Type.Literal(s)),
  { title: "VmState" },
);
const Pid = Type.Union([Type.Integer(), Type.Null()], { description: "The VMM's pid while it runs" });
export const TransitionSchema = Type.Object({
  seq: Type.Integer(),
  from: State,
  to: State,
  event: Type.String(),
  at: Type.String({ format: "date-time" }),
  reason: Type.Optional(Type.String()),
});
export const VmStatus = Type.Object(
  {
    id: VmId,
    state: State,
    pid: Pid,
    spec: Type.Union([CreateParams, Type.Null()], { description: "null only when the VM's state.json could not be read" }),
    created_at: Type.String({ format: "date-time" }),
    updated_at: Type.String({ format: "date-time" }),
    transitions: Type.Array(TransitionSchema, { description: "The most recent transitions, oldest first (at most 64)" }),
    resources: Type.Object(
      {
        nets: Type.Record(Type.String(), Type.Object({}, { additionalProperties: true })),
        disks: Type.Record(Type.String(), Type.Object({}, { additionalProperties: true })),
      },
      { description: "What the siblings provided, by slot (net0, disk1, ...): taps, MACs, volume paths" },
    ),
    pending_releases: Type.Array(Type.Object({}, { additionalProperties: true }), {
      description: "Sibling releases not done yet; retried by the reconcile loop",
    }),
    agent: Type.Object(
      { ready: Type.Boolean(), since: Type.Union([Type.String({ format: "date-time" }), Type.Null()]) },
      { description: "Whether the guest's exec agent answers, and since when" },
    ),
    console: Type.Object(
      { lost_bytes: Type.Integer({ description: "Serial output that could not be written to the log (full or read-only disk) since the daemon started" }) },
      { description: "The serial log's health" },
    ),
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
export const Removed = Type.Object({
  id: VmId,
  removed: Type.Literal(true),
  pending_releases: Type.Optional(Type.Integer({ description: "Sibling releases that failed and are retried in the background" })),
});

export const ConsoleEndpoint = Type.Object({ path: Type.String({ description: "Unix socket (mode 0600) serving the VM's serial console" }) });

export const MAX_LOG_CHUNK = 4 * 1024 * 1024;
const Encoding = Type.Union([Type.Literal("utf8"), Type.Literal("base64")], {
  description: "utf8 (default; invalid bytes become U+FFFD) or base64 (exact bytes)",
});
export const LogsParams = Type.Object(
  {
    id: VmId,
    offset: Type.Optional(Type.Integer({ minimum: 0, description: "Byte offset in the VM's serial output since it was created" })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LOG_CHUNK, description: "At most this many bytes (default 65536)" })),
    tail: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LOG_CHUNK, description: "The last this many bytes instead of a range" })),
    encoding: Type.Optional(Encoding),
  },
  strict,
);
export const LogsResult = Type.Object({
  data: Type.String(),
  encoding: Encoding,
  offset: Type.Integer({ description: "Offset of the first byte returned: later than asked if that part was rotated away" }),
  next: Type.Integer({ description: "Offset to ask for next" }),
});

export const MAX_EVENTS_WAIT_MS = 60_000;
export const EventsTailParams = Type.Object(
  {
    id: Type.Optional(VmId),
    since: Type.Optional(Type.Integer({ minimum: 0, description: "Return events with a greater seq (default: the oldest kept)" })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: "At most this many events (default 100)" })),
    wait_ms: Type.Optional(
      Type.Integer({ minimum: 0, maximum: MAX_EVENTS_WAIT_MS, description: "Wait this long for the first event if none is ready (long poll)" }),
    ),
  },
  strict,
);
export const VmEventSchema = Type.Object(
  {
    seq: Type.Integer(),
    at: Type.String({ format: "date-time" }),
    id: VmId,
    type: Type.Union([Type.Literal("transition"), Type.Literal("vmm"), Type.Literal("removed")]),
    from: Type.Optional(State),
    to: Type.Optional(State),
    reason: Type.Optional(Type.String()),
    data: Type.Optional(Type.Object({}, { additionalProperties: true })),
  },
  { title: "VmEvent" },
);
export const EventsTailResult = Type.Object({
  events: Type.Array(VmEventSchema),
  next: Type.Integer({ description: "Pass as since in the next call" }),
});

export const ExecParams = Type.Object(
  {
    id: VmId,
    argv: Type.Array(Type.String(), { minItems: 1, maxItems: 4096 }),
    env: Type.Optional(EnvMap),
    cwd: Type.Optional(Type.String({ pattern: "^/" })),
    stdin: Type.Optional(Type.String({ maxLength: 16 * 1024 * 1024, description: "Sent to the command's stdin, in `encoding`" })),
    timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000, description: "The guest kills the command after this long (default 60000)" })),
    encoding: Type.Optional(Encoding),
    stream: Type.Optional(
      Type.Boolean({
        description:
          "Return at once with a one-shot socket path instead of the output: the command starts when a client connects there and speaks the exec protocol (docs/exec-protocol.md); no stdin or encoding then",
      }),
    ),
  },
  strict,
);
export const ExecStreamResult = Type.Object({
  path: Type.String({ description: "Unix socket (0600) for one client, removed once connected; unclaimed after 10 s, it goes and the command never runs" }),
});
export const ExecResultSchema = Type.Object({
  exit_code: Type.Union([Type.Integer(), Type.Null()]),
  signal: Type.Union([Type.String(), Type.Null()]),
  stdout: Type.String(),
  stderr: Type.String(),
  timed_out: Type.Boolean(),
  truncated: Type.Boolean({ description: "stdout or stderr passed 16 MiB and was cut" }),
});
/** The output and exit status, or with `stream` the socket to run it on. */
export const ExecReply = Type.Union([ExecResultSchema, ExecStreamResult]);
