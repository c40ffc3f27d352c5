/**
 * The decisions that were tested only end to end, tested on their own:
 * adoption's mapping of a record and what runs to a state (ADR 0004's table),
 * the stop escalation order, the state-file v1 → v2 migration, and the CH
 * VmConfig translation against golden files (as libvirt's tests do).
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { ChEvent } from "../src/ch/event-monitor.js";
import { toChVmConfig } from "../src/ch/vm-config.js";
import { decodeConfig } from "../src/domain/guest-config.js";
import { emptyResources, type Resources } from "../src/domain/resources.js";
import type { VmSpec } from "../src/domain/vm-spec.js";
import { deadVmmEvent, liveVmmDecision } from "../src/orchestrator/adoption.js";
import { haltVmm, type RunningVmm } from "../src/orchestrator/vmm-control.js";
import { parseRecord } from "../src/state/record.js";
import { vmPaths } from "../src/state/vm-paths.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const ev = (source: string, event: string): ChEvent => ({ source, event, properties: null, timestamp: { secs: 0, nanos: 0 } });

describe("adoption: a live VMM of ours", () => {
  const table: [state: "Starting" | "Running", vmInfo: string, keep: boolean, event: string | undefined][] = [
    ["Running", "Running", true, undefined],
    ["Running", "Paused", true, undefined],
    ["Running", "unreachable", true, undefined],
    ["Running", "Created", false, "GUEST_POWERED_OFF"],
    ["Running", "no VM", false, "GUEST_POWERED_OFF"],
    ["Starting", "Running", true, "STARTED"],
    ["Starting", "Created", false, "START_FAILED"],
    ["Starting", "unreachable", false, "START_FAILED"],
  ];
  for (const [state, vmInfo, keep, event] of table) {
    it(`record ${state}, vm.info ${vmInfo}: ${keep ? "kept" : "stopped"}${event ? `, ${event}` : ""}`, () => {
      const d = liveVmmDecision(state, vmInfo, 4242);
      expect(d.keep).toBe(keep);
      expect(d.event?.type).toBe(event);
      if (!d.keep) expect(d.event).toMatchObject({ reason: expect.stringContaining(`pid 4242 reported ${vmInfo}`) });
    });
  }
});

describe("adoption: a VMM that ended while the daemon was down", () => {
  it("maps the record's state, and for Running the VMM's last events", () => {
    expect(deadVmmEvent("Starting", 7, []).type).toBe("START_FAILED");
    expect(deadVmmEvent("Stopping", 7, []).type).toBe("STOPPED");
    expect(deadVmmEvent("Running", 7, [ev("vm", "booted"), ev("vm", "shutdown"), ev("vmm", "shutdown")]).type).toBe("GUEST_POWERED_OFF");
    expect(deadVmmEvent("Running", 7, [ev("vm", "booted")]).type).toBe("VMM_EXITED");
    // A shutdown before the last boot says nothing about the last run.
    expect(deadVmmEvent("Running", 7, [ev("vmm", "shutdown"), ev("vm", "booted")]).type).toBe("VMM_EXITED");
    expect(deadVmmEvent("Running", undefined, [])).toMatchObject({ reason: expect.stringContaining("pid none") });
  });
});

/** A VMM stand-in that records what was done to it, and exits at the stage named by `exitsAt`. */
function fakeVmm(exitsAt: string | undefined): { vmm: RunningVmm; done: string[] } {
  const done: string[] = [];
  let exited = false;
  const act = (stage: string) => {
    done.push(stage);
    if (stage === exitsAt) exited = true;
  };
  const vmm = {
    client: {
      powerButton: async () => act("power-button"),
      shutdownVmm: async () => act("vmm.shutdown"),
      close: async () => undefined,
    },
    process: {
      get hasExited() {
        return exited;
      },
      pid: 4242,
      signal: async (sig: string) => act(sig),
      waitForExit: async () => exited,
    },
  } as unknown as RunningVmm;
  return { vmm, done };
}

describe("the stop escalation", () => {
  const paths = vmPaths("/nonexistent-state", "vm");
  const log = pino({ level: "silent" });

  it("goes power button, vmm.shutdown, SIGTERM, SIGKILL, and stops at the first stage that ends the VMM", async () => {
    const all = fakeVmm(undefined);
    expect(await haltVmm(all.vmm, paths, 10, log)).toBeUndefined();
    expect(all.done).toEqual(["power-button", "vmm.shutdown", "SIGTERM", "SIGKILL"]);
    const term = fakeVmm("SIGTERM");
    expect(await haltVmm(term.vmm, paths, 10, log)).toBe("VMM ended by SIGTERM");
    expect(term.done).toEqual(["power-button", "vmm.shutdown", "SIGTERM"]);
  });

  it("skips the power button when there is no grace (force)", async () => {
    const forced = fakeVmm("vmm.shutdown");
    expect(await haltVmm(forced.vmm, paths, 0, log)).toBe("VMM shut down by vmm.shutdown");
    expect(forced.done).toEqual(["vmm.shutdown"]);
  });
});

describe("state.json v1 → v2", () => {
  const paths = { apiSocket: "/s/vm/api.sock", eventMonitor: "/s/vm/events.log" };
  const spec = { id: "vm", vcpus: 1, memory_mib: 64, boot: { kernel: "/k" } };
  const transitions = [{ seq: 3, from: "Configured", to: "Starting", event: "START", at: "2026-01-01T00:00:00.000Z" }];
  const v1 = { version: 1, id: "vm", spec, state: "Starting", pid: 99, created_at: "c", updated_at: "u", transitions };

  it("keeps everything, takes the generation from the last transition, and leaves the start time to adoption", () => {
    expect(parseRecord(JSON.stringify(v1), "vm", paths)).toEqual({
      migrated: true,
      record: {
        version: 2,
        id: "vm",
        spec,
        state: "Starting",
        generation: 3,
        vmm: { pid: 99, start_time: null, api_socket: paths.apiSocket, event_monitor: paths.eventMonitor },
        created_at: "c",
        updated_at: "u",
        transitions,
      },
    });
    expect(parseRecord(JSON.stringify({ ...v1, pid: null }), "vm", paths).record.vmm).toBeNull();
  });

  it("refuses what it cannot trust, saying why", () => {
    expect(() => parseRecord(JSON.stringify(v1), "other", paths)).toThrow(/names VM 'vm' but lives in 'other'/);
    expect(() => parseRecord(JSON.stringify({ ...v1, version: 3 }), "vm", paths)).toThrow(/unsupported state.json version 3/);
    expect(() => parseRecord(JSON.stringify({ ...v1, state: "Dancing" }), "vm", paths)).toThrow(/unknown state 'Dancing'/);
    expect(() => parseRecord("[]", "vm", paths)).toThrow();
  });
});

describe("the CH VmConfig translation (golden files in test/golden/)", () => {
  const paths = vmPaths("/var/lib/mh", "vm1");
  const resources: Resources = {
    nets: { net1: { port: "p1", owner: "vm1", slot: "net1", network: "lan", tap: "mhtap1", mac: "52:54:00:00:00:01" } },
    disks: { disk1: { attachment: "a1", owner: "vm1", slot: "disk1", volume: "data", path: "/var/lib/vols/data.raw", readonly: false } },
  };
  const cases: [name: string, spec: VmSpec, resources: Resources][] = [
    ["kernel-minimal", { id: "vm1", vcpus: 1, memory_mib: 64, boot: { kernel: "/boot/vmlinux" } }, emptyResources()],
    [
      "kernel-full",
      {
        id: "vm1",
        vcpus: 4,
        memory_mib: 2048,
        boot: { kernel: "/boot/vmlinux", initramfs: "/boot/initrd", cmdline: "console=ttyS0" },
        disks: [
          { path: "/dev/vdb", readonly: true, rate_limit: { bytes_per_s: 50_000_000, ops_per_s: 2000 } },
          { volume: "data", size_mib: 64 },
        ],
        nets: [
          { tap: "tap0", mac: "52:54:00:12:34:56" },
          { network: "lan", rate_limit: { bytes_per_s: 12_500_000 } },
        ],
        cpu_affinity: [2, 3],
        workload: { argv: ["sh", "-c", "echo hi"], env: { A: "1" }, restart: "on-failure" },
        hostname: "guest",
      },
      resources,
    ],
    ["firmware", { id: "vm1", vcpus: 2, memory_mib: 512, boot: { firmware: "/usr/share/ovmf/OVMF.fd" } }, emptyResources()],
  ];
  for (const [name, spec, res] of cases) {
    it(name, () => {
      const golden = path.join(here, "golden", `vm-config-${name}.json`);
      const config = toChVmConfig(spec, paths, res);
      // The guest config is compared decoded: its gzip bytes depend on the runtime's zlib, not on the translation.
      const cmdline = config.payload.cmdline?.replace(/mh_config=(\S+)/, (_, v: string) => `mh_config=${JSON.stringify(decodeConfig(v))}`);
      const actual = `${JSON.stringify({ ...config, payload: { ...config.payload, cmdline } }, null, 2)}\n`;
      if (process.env.MH_UPDATE_GOLDEN === "1") fs.writeFileSync(golden, actual);
      expect(actual).toBe(fs.readFileSync(golden, "utf8"));
    });
  }

  it("refuses a sibling reference that was never provisioned", () => {
    expect(() => toChVmConfig({ id: "vm1", vcpus: 1, memory_mib: 64, boot: { kernel: "/k" }, nets: [{ network: "lan" }] }, paths, emptyResources())).toThrow(
      /net0 has not been provisioned/,
    );
  });
});
