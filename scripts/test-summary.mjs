#!/usr/bin/env node
// Prints vitest's JSON report as the one line CI reads: "N passed, N failed, N skipped".
// A run that produced no report (make test stopped at type-check or lint) counts as one failure.
import fs from "node:fs";

const file = process.argv[2] ?? ".run/test-results.json";
let report;
try {
  report = JSON.parse(fs.readFileSync(file, "utf8"));
} catch {
  console.log("0 passed, 1 failed");
  process.exit(0);
}
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
// Files that failed to load count as failures too.
const brokenFiles = (report.testResults ?? []).filter((f) => f.status === "failed" && (f.assertionResults ?? []).length === 0).length;
let failed = report.numFailedTests + brokenFiles;
// Unhandled errors fail the run without failing a test: count the run as one failure then.
if (report.success === false && failed === 0) failed = 1;
console.log(`${report.numPassedTests} passed, ${failed} failed, ${skipped} skipped`);
