/**
 * Which cloud-hypervisor the configured binary is, from `-V` (it prints
 * `cloud-hypervisor v<version>`), and whether this daemon supports it: the
 * API and behaviour it relies on are those of v50 and later.
 */
import { execFile } from "node:child_process";

/** The oldest cloud-hypervisor this daemon drives. */
export const MIN_VMM_VERSION = { major: 50, minor: 0 } as const;
const PROBE_TIMEOUT_MS = 10_000;

export interface VmmVersion {
  /** What `-V` printed, trimmed; null if it could not be run. */
  reported: string | null;
  /** major.minor[.patch] as parsed, or null. */
  version: string | null;
  minimum: string;
  /** False when the version is known and older than the minimum; true when it is known and new enough; null when unknown. */
  supported: boolean | null;
  /** Why the version is unknown, if it is. */
  error: string | null;
}

export function probeVmmVersion(binary: string): Promise<VmmVersion> {
  const minimum = `${MIN_VMM_VERSION.major}.${MIN_VMM_VERSION.minor}`;
  return new Promise((resolve) => {
    execFile(binary, ["-V"], { timeout: PROBE_TIMEOUT_MS, encoding: "utf8" }, (err, stdout) => {
      if (err) return resolve({ reported: null, version: null, minimum, supported: null, error: `${binary} -V: ${err.message.split("\n")[0]}` });
      // CH prints its version on the first line, its migration protocol versions on the next.
      const reported = stdout.trim().split("\n")[0] ?? "";
      const m = /^cloud-hypervisor v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(reported);
      if (!m) return resolve({ reported, version: null, minimum, supported: null, error: `${binary} -V printed no cloud-hypervisor version` });
      const [major, minor] = [Number(m[1]), Number(m[2])];
      const supported = major > MIN_VMM_VERSION.major || (major === MIN_VMM_VERSION.major && minor >= MIN_VMM_VERSION.minor);
      resolve({ reported, version: m.slice(1).filter(Boolean).join("."), minimum, supported, error: null });
    });
  });
}
