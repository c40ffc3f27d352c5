/**
 * The metrics endpoint (issue 16): GET /metrics on a Unix socket, in the
 * Prometheus text format (read back with a Prometheus parser), its counters
 * moving with the calls made and the VMs' lives.
 */
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { execa } from "execa";
// @ts-expect-error: the parser ships no types
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, describe, expect, it } from "vitest";
import { eventually, Fleet, pidOf, tempDir, vmSpec } from "./harness.js";

const fleet = new Fleet();
afterAll(() => fleet.cleanup());

interface Family {
  name: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string>; count?: string; buckets?: Record<string, string> }[];
}

/** GET /metrics on a Unix socket (a path) or on 127.0.0.1 (a port). */
function scrape(where: string | number): Promise<{ status: number; type: string; families: Map<string, Family>; text: string }> {
  const target = typeof where === "string" ? { socketPath: where } : { host: "127.0.0.1", port: where };
  return new Promise((resolve, reject) => {
    http
      .get({ ...target, path: "/metrics" }, (res) => {
        let body = "";
        res.on("data", (c) => {
          body += c;
        });
        res.on("end", () => {
          const families = new Map((parsePrometheusTextFormat(body) as Family[]).map((f) => [f.name, f]));
          resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), families, text: body });
        });
      })
      .on("error", reject);
  });
}

const value = (f: Family | undefined, labels: Record<string, string>) =>
  Number(f?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value ?? Number.NaN);

/** A histogram series' count, from the text: the parser keeps a histogram's buckets but not its labels. */
const count = (text: string, name: string, labels: string) => Number(new RegExp(`^${name}_count\\{${labels}\\} (\\d+)$`, "m").exec(text)?.[1]);

/** GET /metrics on 127.0.0.1:argv[1]; prints the status, or the error's code (exit 1). */
const SCRAPE = `require("http").get({ host: "127.0.0.1", port: Number(process.argv[1]), path: "/metrics" }, (r) => { r.resume(); r.on("end", () => console.log(r.statusCode)); }).on("error", (e) => { console.error(e.code); process.exit(1); })`;

describe("metrics", () => {
  it("serves Prometheus text whose counters move with the calls and the VMs' lives", async () => {
    const dir = tempDir();
    const socket = path.join(dir, "metrics.sock");
    const d = await fleet.daemon({ dir, args: ["--metrics-socket", socket] });
    expect(fs.statSync(socket).mode & 0o777).toBe(0o600);
    await d.rpc.call("compute.vm.create", vmSpec(d, "counted"));
    fleet.pids.add((await d.rpc.call("compute.vm.start", { id: "counted" })).pid);
    await d.rpc.callError("compute.vm.start", { id: "nosuch" });

    const { status, type, families, text } = await scrape(socket);
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(value(families.get("my_hypervisor_vms"), { state: "Running" })).toBe(1);
    expect(value(families.get("my_hypervisor_rpc_calls_total"), { method: "compute.vm.start", code: "0" })).toBe(1);
    expect(value(families.get("my_hypervisor_rpc_calls_total"), { method: "compute.vm.start", code: "-32001" })).toBe(1);
    expect(families.get("my_hypervisor_rpc_call_duration_seconds")?.type).toBe("HISTOGRAM");
    expect(value(families.get("my_hypervisor_vm_transitions_total"), { event: "STARTED", to: "Running" })).toBe(1);
    expect(families.get("my_hypervisor_vm_step_duration_seconds")?.type).toBe("HISTOGRAM");
    expect(count(text, "my_hypervisor_vm_step_duration_seconds", 'step="start",outcome="done"')).toBe(1);
    expect(value(families.get("my_hypervisor_vm_memory_bytes"), { id: "counted" })).toBeGreaterThan(0);
    expect(value(families.get("my_hypervisor_process_resident_memory_bytes"), {})).toBeGreaterThan(0);

    // They move: a stop is counted and timed, and the stopped VM leaves the per-VM gauges.
    await d.rpc.call("compute.vm.stop", { id: "counted", force: true });
    const { families: after, text: afterText } = await scrape(socket);
    expect(value(after.get("my_hypervisor_vms"), { state: "Stopped" })).toBe(1);
    expect(value(after.get("my_hypervisor_rpc_calls_total"), { method: "compute.vm.stop", code: "0" })).toBe(1);
    expect(count(afterText, "my_hypervisor_vm_step_duration_seconds", 'step="stop",outcome="done"')).toBe(1);
    expect(after.get("my_hypervisor_vm_memory_bytes")?.metrics ?? []).toEqual([]);

    // Method names a client makes up are one label, whatever they are: they cannot grow the scrape.
    for (let i = 0; i < 200; i++) await d.rpc.callError(`made.up.${i}.${"x".repeat(1000)}`, {});
    const { families: flooded, text: floodedText } = await scrape(socket);
    expect(value(flooded.get("my_hypervisor_rpc_calls_total"), { method: "unknown", code: "-32601" })).toBe(200);
    expect(floodedText).not.toContain("made.up");
    expect(floodedText.length).toBeLessThan(afterText.length + 4096);
  });

  it("serves the same on a loopback port, and counts VMM deaths and failed sibling calls", async () => {
    const dir = tempDir();
    // A network sibling that is not there: every call to it fails unreachable.
    const d = await fleet.daemon({ dir, args: ["--metrics-port", "0", "--net-socket", path.join(dir, "no-netd.sock")] });
    // Logged before the API socket listens, so it is there by now.
    const listening = fs
      .readFileSync(path.join(dir, "daemon.log"), "utf8")
      .split("\n")
      .filter((l) => l.includes("metrics listening on loopback"))
      .map((l) => JSON.parse(l));
    expect(listening).toHaveLength(1);
    const [host, port] = listening[0].address.split(":");
    expect(host).toBe("127.0.0.1");

    const refused = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "netless"), nets: [{ network: "lan" }] });
    expect(refused.code).toBe(-32006);
    await d.rpc.call("compute.vm.create", vmSpec(d, "doomed"));
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "doomed" }));
    process.kill(pid, "SIGKILL");
    // The death is counted when its transition is announced, once recorded: a moment after status shows it.
    const { status, families } = await eventually(async () => {
      const scraped = await scrape(Number(port));
      return value(scraped.families.get("my_hypervisor_vmm_deaths_total"), {}) === 1 ? scraped : undefined;
    });
    expect(status).toBe(200);
    expect(value(families.get("my_hypervisor_vm_transitions_total"), { event: "VMM_EXITED", to: "Failed" })).toBe(1);
    if (process.getuid?.() === 0) {
      // A VMM shares loopback with the scraper: a uid of the VMM range is closed on, unanswered; another uid is served.
      const scrapeAs = (uid: number) =>
        execa("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", process.execPath, "-e", SCRAPE, port as string], { reject: false });
      const { vmm_users } = await d.rpc.call("compute.host.info", {});
      expect(await scrapeAs(vmm_users?.last as number)).toMatchObject({ exitCode: 1, stderr: "ECONNRESET" });
      expect(await scrapeAs(65_534)).toMatchObject({ exitCode: 0, stdout: "200" });
    }
    const failures = families.get("my_hypervisor_sibling_errors_total")?.metrics ?? [];
    expect(failures.length).toBeGreaterThan(0);
    for (const f of failures) expect(f.labels).toMatchObject({ sibling: "net", kind: "unreachable" });
    expect(failures.reduce((sum, f) => sum + Number(f.value), 0)).toBeGreaterThan(0);
    expect(value(families.get("my_hypervisor_rpc_calls_total"), { method: "compute.vm.create", code: "-32006" })).toBe(1);
  });
});
