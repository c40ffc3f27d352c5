/**
 * Named failpoints: the instants at which a test makes the daemon crash, to
 * prove that a crash there loses nothing (docs/adr/0004-supervision.md).
 * They are armed only through the environment variable MH_FAILPOINTS: a
 * comma-separated list of `name` (crash the first time the point is reached)
 * or `name@N` (crash the Nth time). A crash is a SIGKILL the daemon sends
 * itself, so nothing after the point runs, as in a real crash. Unarmed, a
 * failpoint costs one Map lookup. An unknown name fails the daemon's start.
 */
import fs from "node:fs";

export const FAILPOINTS_ENV = "MH_FAILPOINTS";

/** Every failpoint, roughly in the order a VM's life reaches them. */
export const FAILPOINTS = [
  /** A VM's directory exists; its record is not written yet. */
  "store.dir-created",
  /** A record's temp file is written and flushed, not yet renamed over state.json. */
  "store.temp-written",
  /** state.json is replaced; the directory is not yet fsynced. */
  "store.renamed",
  /** A removed VM's directory has been renamed into the trash, not yet deleted. */
  "store.trashed",
  /** A sibling answered a provisioning call; the resource is not recorded yet. */
  "sibling.provisioned",
  /** A sibling released an owner's resources. */
  "sibling.released",
  /** The VMM process exists; its pid is not recorded yet. */
  "vmm.spawned",
  /** vm.create succeeded; vm.boot is not sent yet. */
  "vmm.created",
  /** vm.boot succeeded; Running is not recorded yet. */
  "vmm.booted",
  /** A snapshot paused the running guest; Snapshotting is not recorded yet. */
  "snapshot.paused",
  /** CH wrote a snapshot into its partial directory; it is not named or listed yet. */
  "snapshot.taken",
  /** vm.restore succeeded; Running is not recorded yet. */
  "vmm.restored",
  /** A stop sent the power button (or a later stage); the VMM may still run. */
  "vmm.stop-sent",
  /** The VMM is confirmed gone; Stopped is not recorded yet. */
  "vmm.gone",
  /** At start-up: a VMM was re-adopted; what adoption decided is not recorded yet. */
  "adopt.identified",
] as const;

export type Failpoint = (typeof FAILPOINTS)[number];

const armed = parse(process.env[FAILPOINTS_ENV] ?? "");

export function failpoint(name: Failpoint): void {
  const left = armed.get(name);
  if (left === undefined) return;
  if (left > 1) {
    armed.set(name, left - 1);
    return;
  }
  fs.writeSync(2, `${JSON.stringify({ level: 60, time: Date.now(), failpoint: name, msg: "failpoint reached: crashing" })}\n`);
  process.kill(process.pid, "SIGKILL");
}

function parse(spec: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const item of spec.split(",").filter((s) => s.trim() !== "")) {
    const [name = "", count = "1"] = item.trim().split("@");
    if (!(FAILPOINTS as readonly string[]).includes(name)) throw new Error(`${FAILPOINTS_ENV}: unknown failpoint '${name}'; known: ${FAILPOINTS.join(", ")}`);
    const n = Number(count);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${FAILPOINTS_ENV}: '${item}' needs a whole number of at least 1 after @`);
    map.set(name, n);
  }
  return map;
}
