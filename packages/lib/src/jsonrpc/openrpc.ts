/**
 * The OpenRPC document served by `rpc.discover`, generated from a method
 * table: each method's params and result from the schemas that validate
 * them, and its errors from the definitions it lists.
 */
import type { MethodContract } from "./method.js";

/** TypeBox schemas carry symbol keys; JSON round-tripping leaves plain JSON Schema. */
const plain = (schema: unknown) => JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;

/** What an OpenRPC document says of the API it describes: each server's own words. */
export interface ApiInfo {
  title: string;
  description: string;
}

export function openRpcDocument(methods: (Omit<MethodContract, "audit"> & { name: string })[], version: string, info: ApiInfo): Record<string, unknown> {
  return {
    openrpc: "1.3.2",
    info: {
      title: info.title,
      version,
      description: info.description,
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
          errors: m.errors.map((e) => ({ code: e.code, message: e.message, data: { name: e.name, ...(e.data ? { shape: e.data } : {}) } })),
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
