/** The OpenRPC document served by `rpc.discover`, generated from the method table. */
import { ErrorCode } from "../errors.js";
import { EVENTS_LOST } from "../events/event-bus.js";
import type { MethodDef } from "./methods.js";

const ERROR_MESSAGES: Record<number, string> = {
  [ErrorCode.InvalidParams]: "Invalid params: the message says which field and why",
  [ErrorCode.VmNotFound]: "VM not found",
  [ErrorCode.VmExists]: "VM already exists",
  [ErrorCode.InvalidState]: "Operation not allowed in the VM's current state (data: {state})",
  [ErrorCode.VmmError]: "VMM error (data: the CH call, HTTP status and error body)",
  [ErrorCode.Timeout]: "Timeout",
  [ErrorCode.SiblingError]: "A sibling daemon refused or failed a provisioning call (data: {id, sibling, method, error})",
  [ErrorCode.StorageError]: "The daemon could not write or read one of its own files (data: {op, path, errno})",
  [ErrorCode.AgentUnreachable]: "The guest's exec agent cannot be reached (data: {id}); the message says why",
  [ErrorCode.ExecFailed]: "The guest agent could not start the command (data: {id, argv}); the message says why",
  [EVENTS_LOST]: "Events after `since` have fallen out of the ring (data: {since, oldest}); resynchronise from status",
};

/** TypeBox schemas carry symbol keys; JSON round-tripping leaves plain JSON Schema. */
const plain = (schema: unknown) => JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;

export function openRpcDocument(
  methods: MethodDef[],
  version: string,
  title = "my_hypervisor compute API",
  description = "JSON-RPC 2.0, one message per line, on the daemon's Unix socket. See docs/rpc.md.",
): Record<string, unknown> {
  return {
    openrpc: "1.3.2",
    info: {
      title,
      version,
      description,
    },
    methods: [
      ...methods.map((m) => {
        const params = plain(m.params) as { properties?: Record<string, unknown>; required?: string[] };
        return {
          name: m.name,
          summary: m.summary,
          paramStructure: "by-name",
          params: Object.entries(params.properties ?? {}).map(([name, schema]) => ({
            name,
            required: params.required?.includes(name) ?? false,
            schema,
          })),
          result: { name: "result", schema: plain(m.result) },
          errors: m.errors.map((code) => ({ code, message: ERROR_MESSAGES[code] ?? "error" })),
        };
      }),
      {
        name: "rpc.discover",
        summary: "This document",
        paramStructure: "by-name",
        params: [],
        result: { name: "OpenRPC document", schema: { type: "object" } },
      },
    ],
  };
}
