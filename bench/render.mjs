#!/usr/bin/env node
// Renders bench/results.json as the Markdown table published in docs/benchmarks.md.
import fs from "node:fs";

const { at, machine, results } = JSON.parse(fs.readFileSync(process.argv[2] ?? "bench/results.json", "utf8"));
const fmt = (x) => (x === undefined ? "" : x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toFixed(3));
console.log(`Run ${at} on ${machine.cpus} × ${machine.cpu_model}, ${machine.memory_gib} GiB, Node ${machine.node}, Linux ${machine.kernel}.\n`);
console.log("| figure | median | spread (min–max) | unit | baseline | ratio | target | just after the burst |");
console.log("|---|---|---|---|---|---|---|---|");
for (const r of results) {
  const spread = r.runs.length > 1 ? `${fmt(r.min)}–${fmt(r.max)}` : "";
  const median = r.p99 !== undefined ? `${fmt(r.median)} / ${fmt(r.p99)}` : fmt(r.median);
  const baseline = r.baseline ?? r.baseline_p50;
  console.log(
    `| ${r.name} | ${median} | ${spread} | ${r.unit} | ${fmt(baseline)} | ${r.ratio === undefined ? "" : r.ratio.toFixed(2)} | ${r.target ?? ""} | ${fmt(r.just_after)} |`,
  );
}
