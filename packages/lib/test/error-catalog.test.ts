/**
 * docs/rpc.md agrees with the error catalog (domain/errors.ts) and with the
 * method table (api/methods.ts): the error table has a row for every code
 * with the fields of its data, and each method's "Errors:" line names
 * exactly the errors the method says it raises. -32602 for params that fail
 * their schema is possible everywhere and need not be named.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { COMPUTE_API } from "../src/api/methods.js";
import { ERRORS } from "../src/domain/errors.js";

const DOC = fs.readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../docs/rpc.md"), "utf8");
const STANDARD = [-32700, -32600, -32601, -32602, -32603];
const INVALID_PARAMS = -32602;

/** The error table: code → [meaning, data] cells. */
function errorTable(): Map<number, { meaning: string; data: string }> {
  const section = DOC.slice(DOC.indexOf("## Errors"), DOC.indexOf("\n## ", DOC.indexOf("## Errors") + 1));
  const rows = new Map<number, { meaning: string; data: string }>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const code = Number(cells[1]);
    if (Number.isInteger(code) && code < 0) rows.set(code, { meaning: cells[2] ?? "", data: cells[3] ?? "" });
  }
  return rows;
}

/** The codes named on a method's "Errors:" line, or undefined if its section has none. */
function documentedErrors(method: string): number[] | undefined {
  const start = DOC.indexOf(`### ${method}\n`);
  if (start < 0) return undefined;
  const end = DOC.indexOf("\n#", start + 1);
  const line = DOC.slice(start, end < 0 ? undefined : end)
    .split("\n")
    .find((l) => l.startsWith("Errors:"));
  return line === undefined ? undefined : [...line.matchAll(/-32\d{3}/g)].map((m) => Number(m[0]));
}

const fieldsOf = (shape: string): string[] => [...(/\{([^}]*)\}/.exec(shape)?.[1] ?? "").matchAll(/[a-z_]+/g)].map((m) => m[0]);

describe("the error table in docs/rpc.md", () => {
  it("has exactly the standard codes and the catalog's", () => {
    const expected = [...STANDARD, ...Object.values(ERRORS).map((e) => e.code)].sort();
    expect([...errorTable().keys()].sort()).toEqual([...new Set(expected)]);
  });

  it("names the fields of each catalog entry's data", () => {
    const table = errorTable();
    for (const e of Object.values(ERRORS)) {
      const row = table.get(e.code);
      for (const field of fieldsOf(e.data)) expect(row?.data, `${e.name} (${e.code}): data field ${field}`).toContain(field);
    }
  });
});

describe("each method's Errors line in docs/rpc.md", () => {
  const methods = Object.entries(COMPUTE_API).map(([name, c]) => ({ name, ...c }));
  for (const m of methods) {
    it(`${m.name} names exactly the errors its method definition lists`, () => {
      const listed = m.errors.map((e) => e.code);
      const documented = documentedErrors(m.name);
      expect(Array.isArray(documented), `### ${m.name} has an Errors: line`).toBe(true);
      const strip = (codes: number[]) => [...new Set(codes.filter((c) => c !== INVALID_PARAMS))].sort();
      expect(strip(documented ?? [])).toEqual(strip(listed));
      if (listed.includes(INVALID_PARAMS)) expect(documented).toContain(INVALID_PARAMS);
    });
  }
});
