/**
 * The library's import graph matches ADR 0001: folders (and the files at the
 * top of src/) in layers, each importing only from layers below it. A new
 * folder must be given its layer here, and in the ADR.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../src");

/** Bottom first. A node is a folder of src/, or a file at its top without its extension. */
const LAYERS: string[][] = [
  ["failpoints", "version", "cli", "log"],
  ["os"],
  ["jsonrpc"],
  ["domain"],
  ["lifecycle", "events", "console", "exec", "provisioning"],
  ["state"],
  ["ch"],
  ["orchestrator"],
  ["api"],
  ["metrics"],
  ["server"],
  ["index"],
];

const layerOf = new Map(LAYERS.flatMap((nodes, i) => nodes.map((n) => [n, i] as const)));
const IMPORT = /(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

function nodeOf(file: string): string {
  const rel = path.relative(SRC, file);
  const [head = ""] = rel.split(path.sep);
  return rel.includes(path.sep) ? head : head.replace(/\.[^.]+$/, "");
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

/** Every import between two different nodes: [from node, to node, file, specifier]. */
function edges(): [string, string, string, string][] {
  const out: [string, string, string, string][] = [];
  for (const file of sourceFiles(SRC)) {
    for (const m of fs.readFileSync(file, "utf8").matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? "";
      if (!spec.startsWith(".")) continue;
      const from = nodeOf(file);
      const to = nodeOf(path.resolve(path.dirname(file), spec));
      if (from !== to) out.push([from, to, path.relative(SRC, file), spec]);
    }
  }
  return out;
}

it("every folder of the library has its layer", () => {
  const nodes = new Set(sourceFiles(SRC).map(nodeOf));
  expect([...nodes].filter((n) => !layerOf.has(n))).toEqual([]);
});

it("every import points to a lower layer", () => {
  const upward = edges()
    .filter(([from, to]) => (layerOf.get(to) ?? Number.POSITIVE_INFINITY) >= (layerOf.get(from) ?? -1))
    .map(([from, to, file, spec]) => `${from} -> ${to}: ${file} imports ${spec}`);
  expect(upward).toEqual([]);
});

it("the JSON-RPC toolkit and the OS helpers know nothing of VMs", () => {
  const forbidden = edges().filter(([from, to]) => ["jsonrpc", "os"].includes(from) && !["os", "failpoints"].includes(to));
  expect(forbidden).toEqual([]);
});
