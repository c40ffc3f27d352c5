/**
 * The project's CH OpenAPI document must agree with upstream's: every path,
 * method, schema and property it uses exists upstream with the same type,
 * format, $ref and enum values, and it requires what upstream requires.
 * Success codes may add what the server really returns (ADR 0001: where the
 * server and the spec disagree, the server wins), never drop upstream's. The
 * upstream specs are fixtures (fixtures/cloud-hypervisor/README.md).
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const ours = parse(fs.readFileSync(path.join(here, "../src/ch/openapi.yaml"), "utf8"));
const upstreamFiles = ["openapi-v53.0.yaml", "openapi-main.yaml"].map((f) => path.join(here, "fixtures/cloud-hypervisor", f));

type Schema = { type?: string; format?: string; enum?: string[]; required?: string[]; properties?: Record<string, Schema>; items?: Schema; $ref?: string };
type Op = { responses: Record<string, unknown>; requestBody?: { content?: Record<string, { schema?: unknown }> } };
type Doc = { paths: Record<string, Record<string, Op>>; components: { schemas: Record<string, Schema> } };

function disagreements(mine: Doc, upstream: Doc): string[] {
  const problems: string[] = [];
  for (const [p, methods] of Object.entries(mine.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const up = upstream.paths[p]?.[method];
      if (!up) {
        problems.push(`${method.toUpperCase()} ${p} is not upstream`);
        continue;
      }
      for (const code of Object.keys(up.responses).filter((c) => c.startsWith("2"))) {
        if (!(code in op.responses)) problems.push(`${p} lacks upstream success code ${code}`);
      }
      const body = (o: Op) => JSON.stringify(o.requestBody?.content?.["application/json"]?.schema ?? null);
      if (body(op) !== body(up)) problems.push(`${p} request body ${body(op)} differs from upstream ${body(up)}`);
    }
  }
  for (const [name, schema] of Object.entries(mine.components.schemas)) {
    const up = upstream.components.schemas[name];
    if (!up) {
      problems.push(`schema ${name} is not upstream`);
      continue;
    }
    const req = (s: Schema) => [...(s.required ?? [])].sort().join(",");
    if (req(schema) !== req(up)) problems.push(`${name} requires [${req(schema)}], upstream [${req(up)}]`);
    for (const v of schema.enum ?? []) if (!up.enum?.includes(v)) problems.push(`${name} enum value ${v} is not upstream`);
    for (const [prop, def] of Object.entries(schema.properties ?? {})) {
      const upProp = up.properties?.[prop];
      if (!upProp) {
        problems.push(`${name}.${prop} is not upstream`);
        continue;
      }
      for (const key of ["type", "format", "$ref"] as const) {
        if (def[key] !== upProp[key]) problems.push(`${name}.${prop}.${key} is ${def[key]}, upstream ${upProp[key]}`);
      }
      const item = (s?: Schema) => s?.$ref ?? s?.type;
      if (item(def.items) !== item(upProp.items)) problems.push(`${name}.${prop} items are ${item(def.items)}, upstream ${item(upProp.items)}`);
    }
  }
  return problems;
}

describe("CH OpenAPI document agrees with upstream", () => {
  for (const file of upstreamFiles) {
    it(`agrees with ${path.basename(file)}`, () => {
      expect(disagreements(ours, parse(fs.readFileSync(file, "utf8")))).toEqual([]);
    });
  }

  it("catches a renamed property, a changed type, a missing path and a dropped required field", () => {
    const broken: Doc = structuredClone(ours);
    const cpus = broken.components.schemas.CpusConfig as Schema;
    cpus.properties = { boot_cpus: { type: "integer" }, max_vcpus: { type: "string" } };
    cpus.required = ["max_vcpus"];
    broken.paths["/vm.teleport"] = { put: { responses: {} } };
    const problems = disagreements(broken, parse(fs.readFileSync(upstreamFiles[0] as string, "utf8")));
    expect(problems).toEqual(
      expect.arrayContaining([
        "CpusConfig.boot_cpus is not upstream",
        "CpusConfig.max_vcpus.type is string, upstream integer",
        "PUT /vm.teleport is not upstream",
        "CpusConfig requires [max_vcpus], upstream [boot_vcpus,max_vcpus]",
      ]),
    );
  });
});
