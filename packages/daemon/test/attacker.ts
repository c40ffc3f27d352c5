/**
 * The attacker the jail exists for: a guest that took over its VMM, so a process running as the VMM's uid, without
 * privileges, in its mount namespace (ADR 0009's threat model). Tests act as it with these.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";

/** Runs a shell command as `uid` (as the VMM would, without privileges); its exit code and output. */
export const asUid = (uid: number, script: string) =>
  spawnSync("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "sh", "-c", script], { encoding: "utf8" });

/** Runs `argv` as `uid` in the mount and network namespaces of process `pid`: what that VMM sees and can do. */
export const asVmm = (pid: number, uid: number, argv: string[]) =>
  spawnSync("nsenter", [`--target=${pid}`, "--mount", "--net", "--", "setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", ...argv], {
    encoding: "utf8",
  });

/** Runs a shell command as the VMM `pid`, under `uid`, would. */
export const inJailOf = (pid: number, uid: number, script: string) => asVmm(pid, uid, ["sh", "-c", script]);

/** The live processes whose real uid is `uid`, from each /proc/<pid>/status. */
export function processesOfUid(uid: number): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    let status: string;
    try {
      status = fs.readFileSync(`/proc/${entry}/status`, "utf8");
    } catch {
      continue;
    }
    const real = /^Uid:\s+(\d+)/m.exec(status)?.[1];
    const state = /^State:\s+(\S)/m.exec(status)?.[1];
    if (real === String(uid) && state !== "Z" && state !== "X") pids.push(Number(entry));
  }
  return pids;
}
