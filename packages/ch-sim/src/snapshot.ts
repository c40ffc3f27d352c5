/**
 * vm.snapshot and vm.restore's files, as cloud-hypervisor writes them into
 * the destination directory: `config.json` (the VM's config), `state.json`
 * (its devices' state) and `memory-ranges` (the guest's memory; here a sparse
 * file of the guest's RAM size, since the test VMM's guest is processes, not
 * memory). A guest cannot be checkpointed by the test VMM: a restore starts
 * the guest afresh and says so on its console (ADR 0003).
 */
import fs from "node:fs";
import path from "node:path";

export const SNAPSHOT_FILES = ["config.json", "state.json", "memory-ranges"];

/** `file:///dir` → `/dir`, an existing directory; else CH's reason (vmm/src/migration/mod.rs), Rust's `{:?}` quoting the path. */
export function snapshotDirectory(url: string): { path: string } | { refused: string } {
  if (!url.startsWith("file://")) return { refused: `Could not extract path from URL: ${url}` };
  const dir = url.slice("file://".length);
  return fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory() ? { path: dir } : { refused: `Destination is not a directory: ${JSON.stringify(dir)}` };
}

/** CH_SIM_SNAPSHOT_DELAY_MS: take this long to write a snapshot (a large guest's memory), so tests can cut it short. */
const SNAPSHOT_DELAY_MS = Number(process.env.CH_SIM_SNAPSHOT_DELAY_MS ?? 0);

export async function writeSnapshot(dir: string, config: object, memoryBytes: number): Promise<void> {
  if (SNAPSHOT_DELAY_MS > 0) await new Promise((r) => setTimeout(r, SNAPSHOT_DELAY_MS));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config), { mode: 0o600 });
  fs.writeFileSync(path.join(dir, "state.json"), JSON.stringify({ snapshot_data: { sim: { taken_at: new Date().toISOString() } } }), { mode: 0o600 });
  const memory = fs.openSync(path.join(dir, "memory-ranges"), "w", 0o600);
  try {
    fs.ftruncateSync(memory, memoryBytes);
    fs.fsyncSync(memory);
  } finally {
    fs.closeSync(memory);
  }
}

/** The config a snapshot holds; throws with the reason if its files are not all there. */
export function readSnapshot(dir: string): Record<string, unknown> {
  for (const f of SNAPSHOT_FILES) fs.accessSync(path.join(dir, f), fs.constants.R_OK);
  return JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
}
