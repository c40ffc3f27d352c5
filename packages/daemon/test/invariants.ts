/**
 * What must hold after any crash and restart (issue 11), checked against a
 * freshly started daemon, the processes on the host and the files on disk:
 * each VM listed once; Running if and only if its VMM runs with the recorded
 * identity, and not paused (nothing the lives do pauses a guest for good); no VMM without a record; no stray sockets, temp files or trash;
 * no snapshot directory the record does not list, none listed but incomplete;
 * every state.json parses; no acknowledged VM lost and no acknowledged
 * removal undone; the volume sibling holds nothing for a VM that is gone.
 */
import fs from "node:fs";
import path from "node:path";
import { expect } from "vitest";
import { type Daemon, eventually, type Sibling, startTimeOf, vmmFile } from "./harness.js";

export interface Acknowledged {
  /** VMs whose create was answered and whose removal has not been asked for. */
  created: Set<string>;
  /** VMs whose remove was answered. */
  removed: Set<string>;
}

const SETTLING = new Set(["Starting", "Stopping", "Provisioning", "Pending"]);

export async function checkInvariants(d: Daemon, acked: Acknowledged, vol?: Sibling): Promise<void> {
  // A stop cut short by the crash is finished in the background: wait for every VM to settle.
  // A guest that a stop cut short may power off just after the restart: its VMM is gone a moment before the daemon
  // sees it (exit polls every 250 ms), so a Running VM whose VMM has exited is waited for too.
  const vms: { id: string; state: string; pid: number | null }[] = await eventually(async () => {
    const list: { id: string; state: string; pid: number | null }[] = (await d.rpc.call("compute.vm.list", {})).vms;
    const settled = list.every((v) => !SETTLING.has(v.state) && (v.state !== "Running" || (v.pid !== null && startTimeOf(v.pid) !== undefined)));
    return settled ? list : undefined;
  }, 20_000);
  const ids = vms.map((v) => v.id);
  expect(new Set(ids).size, `listed once: ${ids}`).toBe(ids.length);
  for (const id of acked.created) expect(ids, `acknowledged VM ${id} is listed`).toContain(id);
  for (const id of acked.removed) expect(ids, `acknowledged removal of ${id} holds`).not.toContain(id);

  for (const vm of vms) {
    // status may show a transition a moment before its write lands: wait for the record to agree.
    const readRecord = () => JSON.parse(fs.readFileSync(path.join(d.stateDir, vm.id, "state.json"), "utf8"));
    const record = await eventually(() => (readRecord().state === vm.state ? readRecord() : undefined)).catch(readRecord);
    expect(record.state, `${vm.id}: the record agrees with memory`).toBe(vm.state);
    expect(record.substate, `${vm.id}: no snapshot left in progress`).not.toBe("Snapshotting");
    expect(record.snapshot_in_progress, `${vm.id}: no snapshot left in progress`).toBeUndefined();
    if (vm.state === "Running") {
      expect(vm.pid, `${vm.id} is Running with a VMM`).not.toBeNull();
      expect(startTimeOf(vm.pid as number), `${vm.id}'s VMM runs with the recorded identity`).toBe(record.vmm?.start_time);
      // The lives checked pause nothing but for a snapshot, which runs the guest again even when a crash cuts it short.
      expect((await d.rpc.call("compute.vm.status", { id: vm.id })).substate, `${vm.id}: nobody paused it`).toBe("Active");
    } else {
      expect(vm.pid, `${vm.id} is ${vm.state} without a VMM`).toBeNull();
    }
  }

  // No VMM without a record that owns it (an orphan is killed by the sweep at start-up; it may take a moment to go).
  const owned = new Set(vms.filter((v) => v.state === "Running").map((v) => v.pid));
  await eventually(() => (vmmsUnder(d.dir).every((pid) => owned.has(pid)) ? true : undefined));

  const leftovers = await eventually(() => (strayFiles(d, vms).length === 0 ? [] : undefined)).catch(() => strayFiles(d, vms));
  expect(leftovers).toEqual([]);

  if (vol) {
    const gone = [...acked.removed].filter((id) => !ids.includes(id));
    await eventually(async () => {
      for (const owner of gone) if ((await vol.call<unknown[]>("vol.list", { owner })).length > 0) return undefined;
      return true;
    }, 20_000);
  }
}

/** Live VMMs (either binary) whose API socket is anywhere under `root` (a test's directory: its state dir and its VMM dir). */
export function vmmsUnder(root: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    const api = argv.indexOf("--api-socket");
    if (api > 0 && argv[api + 1]?.startsWith(`path=${root}/`) && startTimeOf(Number(entry)) !== undefined) pids.push(Number(entry));
  }
  return pids;
}

/** Files that should not be there: temp files, trash, directories of no VM, API sockets of VMs without a VMM. */
function strayFiles(d: Daemon, vms: { id: string; state: string }[]): string[] {
  const stray: string[] = [];
  const byId = new Map(vms.map((v) => [v.id, v]));
  for (const name of fs.readdirSync(d.stateDir)) {
    const file = path.join(d.stateDir, name);
    if (name.endsWith(".tmp") || name.startsWith(".removing-")) stray.push(file);
    if (!fs.statSync(file).isDirectory()) continue;
    const vm = byId.get(name);
    if (!vm) {
      stray.push(file);
      continue;
    }
    for (const f of fs.readdirSync(file)) if (f.endsWith(".tmp")) stray.push(path.join(file, f));
    // A snapshot directory the record does not list (a partial one, one cut short before it was listed) is never trusted.
    const listed = new Set<string>((JSON.parse(fs.readFileSync(path.join(file, "state.json"), "utf8")).snapshots ?? []).map((s: { name: string }) => s.name));
    const snapshots = path.join(file, "snapshots");
    if (fs.existsSync(snapshots)) for (const f of fs.readdirSync(snapshots)) if (!listed.has(f)) stray.push(path.join(snapshots, f));
    for (const name of listed) if (!fs.existsSync(path.join(snapshots, name, "config.json"))) stray.push(`${path.join(snapshots, name)} (listed, incomplete)`);
    if (vm.state !== "Running" && fs.existsSync(vmmFile(d, name, "api.sock"))) stray.push(vmmFile(d, name, "api.sock"));
  }
  return stray;
}

/** Kills every test VMM whose API socket is under `root`: what a failed crash test may leave running. */
export function killVmmsUnder(root: string): void {
  for (const pid of vmmsUnder(root)) process.kill(pid, "SIGKILL");
}
