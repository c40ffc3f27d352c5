/**
 * Parameter and result schemas of every method. The same objects validate
 * incoming params and generate the OpenRPC document, so the two cannot drift.
 * An `errorMessage` on a schema replaces TypeBox's generic text.
 */
import { type Static, type TSchema, Type } from "@sinclair/typebox";
import type { ExecRequest } from "../domain/exec-protocol.js";
import type { Expect, Same } from "../domain/same-contract.js";
import { EnvMap, VmId, VmSpecSchema } from "../domain/vm-spec.js";
import { State } from "../domain/vm-status.js";
import type { HostInfo } from "../orchestrator/host-info.js";

export type { VmSpec } from "../domain/vm-spec.js";
export { VmList, VmStatus } from "../domain/vm-status.js";

const strict = { additionalProperties: false } as const;
const timeoutMs = (description: string) => Type.Integer({ minimum: 1, maximum: 3_600_000, description });

/** create's params are the VM spec itself. */
export const CreateParams = VmSpecSchema;

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
const SnapshotName = Type.String({ pattern: "^[a-z0-9][a-z0-9_.-]{0,62}$", errorMessage: "a snapshot name must match ^[a-z0-9][a-z0-9_.-]{0,62}$" });
export const SnapshotParams = Type.Object(
  { id: VmId, name: SnapshotName, timeout_ms: Type.Optional(timeoutMs("How long CH may take to write it (default 300000)")) },
  strict,
);
export const SnapshotRef = Type.Object({ id: VmId, name: SnapshotName }, strict);
export const RestoreParams = Type.Object(
  {
    id: VmId,
    name: SnapshotName,
    resume: Type.Optional(Type.Boolean({ description: "Run the guest at once (default); false leaves it Paused" })),
    timeout_ms: Type.Optional(timeoutMs("How long the whole restore may take (default 30000)")),
  },
  strict,
);
const SnapshotInfoSchema = Type.Object({
  name: Type.String(),
  created_at: Type.String({ format: "date-time" }),
  size_bytes: Type.Integer({ description: "What its files take on disk" }),
});
export const SnapshotTaken = Type.Composite([Type.Object({ id: VmId }), SnapshotInfoSchema]);
export const SnapshotList = Type.Object({ id: VmId, snapshots: Type.Array(SnapshotInfoSchema, { description: "Oldest first" }) });
export const SnapshotDeleted = Type.Object({ id: VmId, name: Type.String(), deleted: Type.Literal(true) });

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
/** What exec's params say about the command is exactly the guest's Request frame (domain/exec-protocol.ts). */
export type ExecRequestContract = Expect<Same<Pick<Static<typeof ExecParams>, "argv" | "env" | "cwd" | "timeout_ms">, ExecRequest>>;

export const ExecStreamResult = Type.Object(
  {
    path: Type.String({ description: "Unix socket (0600) for one client, removed once connected; unclaimed after 10 s, it goes and the command never runs" }),
  },
  { title: "ExecStreamSocket" },
);
export const ExecResultSchema = Type.Object(
  {
    exit_code: Type.Union([Type.Integer(), Type.Null()]),
    signal: Type.Union([Type.String(), Type.Null()]),
    stdout: Type.String(),
    stderr: Type.String(),
    timed_out: Type.Boolean(),
    truncated: Type.Boolean({ description: "stdout or stderr passed 16 MiB and was cut" }),
  },
  { title: "ExecOutput" },
);
/** The output and exit status, or with `stream` the socket to run it on. */
export const ExecReply = Type.Union([ExecResultSchema, ExecStreamResult]);

const nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
export const HostInfoSchema = Type.Object({
  cpus: Type.Object({ online: Type.Integer(), model: nullable(Type.String()) }),
  memory_mib: Type.Object({ total: Type.Integer(), available: Type.Integer({ description: "MemAvailable" }) }),
  hugepages: Type.Array(Type.Object({ size_kib: Type.Integer(), total: Type.Integer(), free: Type.Integer() }), { description: "One pool per page size" }),
  kvm: Type.Object(
    { device: Type.String(), usable: Type.Boolean(), reason: nullable(Type.String()) },
    { description: "usable: the daemon can open the device read-write, as a VMM must" },
  ),
  cgroup_v2: Type.Object(
    { mount: nullable(Type.String()), controllers: Type.Array(Type.String()) },
    { description: "The cgroup v2 hierarchy's mount point and the controllers its root offers; mount null if there is none" },
  ),
  vmm: Type.Object({
    binary: Type.String(),
    reported: nullable(Type.String({ description: "What `-V` printed" })),
    version: nullable(Type.String()),
    minimum: Type.String({ description: "The oldest cloud-hypervisor this daemon drives" }),
    supported: nullable(Type.Boolean({ description: "false: starts are refused; null: the version is unknown" })),
    error: nullable(Type.String()),
    ping: nullable(
      Type.Object(
        { build_version: Type.String(), version: Type.String(), features: Type.Array(Type.String()) },
        { description: "A running VMM's vmm.ping; null while no VM runs" },
      ),
    ),
  }),
  committed: Type.Object(
    { vms: Type.Integer(), vcpus: Type.Integer(), memory_mib: Type.Integer() },
    { description: "What VMs whose VMM is up (starting, running, stopping) take of the host" },
  ),
  vmm_users: nullable(
    Type.Object(
      { first: Type.Integer(), last: Type.Integer(), dir: Type.String(), held: Type.Integer() },
      { description: "--vmm-uid-range, --vmm-dir, and how many uids VMs hold; null while VMMs run as the daemon's user" },
    ),
  ),
  limits: Type.Object(
    {
      base: nullable(Type.String({ description: "The daemon's cgroup subtree; each VM's cgroup is <base>/vms/<id>" })),
      controllers: Type.Array(Type.String(), { description: "The controllers each VM's cgroup has" }),
      missing: Type.Array(Type.String(), { description: "Controllers every VM's limits need that this host does not give the daemon" }),
      problem: nullable(Type.String({ description: "Why limits cannot be enforced here; null when they are" })),
      unenforced_allowed: Type.Boolean({ description: "--allow-unenforced-limits: VMs start anyway where limits cannot be enforced" }),
    },
    { description: "How VMs are held to their CPU, memory and pid limits (a cgroup v2 each), or why they cannot be" },
  ),
});
export type HostInfoContract = Expect<Same<Static<typeof HostInfoSchema>, HostInfo>>;
