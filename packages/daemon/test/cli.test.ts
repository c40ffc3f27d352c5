/**
 * What an operator meets first (issue 16): every binary answers --help
 * (every flag, its default, its environment variable) and --version; the
 * daemon can be configured from the environment alone; a VMM binary that
 * does not exist stops it at start-up; logs are JSON with ISO times and level
 * names for journald, and pino-pretty's lines on a terminal.
 */
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { DAEMON_BIN, eventually, Fleet, ROOT, RpcConnection, SIM_BIN, tempDir } from "./harness.js";

const fleet = new Fleet();
afterAll(() => fleet.cleanup());

const VERSION = JSON.parse(fs.readFileSync(path.join(ROOT, "packages/lib/package.json"), "utf8")).version;
const SIBLINGS = ["netd", "vold"].map((s) => [`my_hypervisor-${s}`, path.join(ROOT, `packages/siblings/dist/${s}.js`)] as const);

describe("help, version and flags", () => {
  it("every binary lists every flag with its default and environment variable, and says its version", async () => {
    for (const [name, bin] of [["my_hypervisor-daemon", DAEMON_BIN] as const, ...SIBLINGS]) {
      const help = await execa(bin === DAEMON_BIN ? bin : "node", bin === DAEMON_BIN ? ["--help"] : [bin, "--help"], { reject: false });
      expect(help.exitCode, name).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^${name} ${VERSION}: `));
      for (const line of help.stdout.split("\n").filter((l) => /^ {2}--/.test(l) && !/--(help|version)$/.test(l))) {
        const flag = /--([a-z-]+)/.exec(line)?.[1] as string;
        const next = help.stdout.split("\n")[help.stdout.split("\n").indexOf(line) + 1] as string;
        expect(next, `${name} --${flag}`).toMatch(
          new RegExp(
            `env ${name === "my_hypervisor-daemon" ? "MY_HYPERVISOR" : name.toUpperCase().replace("-", "_")}_${flag.toUpperCase().replaceAll("-", "_")}`,
          ),
        );
      }
      expect(help.stdout).toMatch(/--log-level LEVEL\n.*default: info/);
      const version = await execa(bin === DAEMON_BIN ? bin : "node", bin === DAEMON_BIN ? ["--version"] : [bin, "--version"], { reject: false });
      expect(version).toMatchObject({ exitCode: 0, stdout: `${name} ${VERSION}` });
      const bad = await execa(bin === DAEMON_BIN ? bin : "node", bin === DAEMON_BIN ? ["--nope"] : [bin, "--nope"], { reject: false });
      expect(bad.exitCode).toBe(2);
      expect(bad.stderr).toMatch(new RegExp(`Unknown option '--nope'\\nRun '${name} --help' for every flag`));
    }
  });

  it("the daemon runs configured from the environment alone, and refuses a VMM binary that is not there", async () => {
    const dir = tempDir();
    const env = {
      MY_HYPERVISOR_RPC_SOCKET: path.join(dir, "rpc.sock"),
      MY_HYPERVISOR_STATE_DIR: path.join(dir, "state"),
      MY_HYPERVISOR_CONSOLE_DIR: path.join(dir, "console"),
      MY_HYPERVISOR_CLOUD_HYPERVISOR: SIM_BIN,
      MY_HYPERVISOR_VMM_UID_RANGE: "off",
      MY_HYPERVISOR_ALLOW_UNENFORCED_LIMITS: "1",
    };
    const missing = await execa(DAEMON_BIN, [], { reject: false, env: { ...env, MY_HYPERVISOR_CLOUD_HYPERVISOR: "/nonexistent/cloud-hypervisor" } });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/--cloud-hypervisor '\/nonexistent\/cloud-hypervisor' is not an executable file/);
    const bad = await execa(DAEMON_BIN, [], { reject: false, env: { ...env, MY_HYPERVISOR_ALLOW_UNENFORCED_LIMITS: "maybe" } });
    expect(bad.stderr).toMatch(/MY_HYPERVISOR_ALLOW_UNENFORCED_LIMITS must be 1, true, 0 or false, not 'maybe'/);

    const log = path.join(dir, "daemon.log");
    const proc = execa(DAEMON_BIN, [], { reject: false, env, stderr: { file: log } });
    // The line is written once the socket accepts: wait for the line, not the socket file.
    await eventually(() => (fs.existsSync(log) && fs.readFileSync(log, "utf8").includes('"msg":"daemon listening"') ? true : undefined), 20_000);
    // JSON for journald: ISO times, level names.
    const lines = fs
      .readFileSync(log, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const listening = lines.find((l) => l.msg === "daemon listening");
    expect(listening).toMatchObject({ level: "info", time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) });
    expect(listening.stateDir).toBe(env.MY_HYPERVISOR_STATE_DIR);
    expect(lines.find((l) => /VMM limits|VM limits are not enforced/.test(l.msg))?.level).toBe("warn");

    // Each call that changes something is logged as it arrives and as it ends, answered or refused; nothing secret in it.
    const rpc = await RpcConnection.open(env.MY_HYPERVISOR_RPC_SOCKET);
    await rpc.call("compute.vm.create", { id: "audited", vcpus: 1, memory_mib: 64, boot: { kernel: SIM_BIN }, workload: { argv: ["sleep", "600"] } });
    // From another process: the audit line names the socket's peer, whoever it is.
    const other = execa(process.execPath, [
      "-e",
      CALL_ONCE,
      env.MY_HYPERVISOR_RPC_SOCKET,
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: "compute.vm.start", params: { id: "nosuch" } }),
    ]);
    expect(JSON.parse((await other).stdout).error.code).toBe(-32001);
    fleet.pids.add((await rpc.call("compute.vm.start", { id: "audited" })).pid);
    await rpc.call("compute.vm.exec", { id: "audited", argv: ["true"], env: { TOKEN: "s3cret" } });
    await rpc.call("compute.vm.list", {});
    rpc.close();
    const audited = await eventually(() => {
      const found = fs
        .readFileSync(log, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l))
        .filter((l) => l.msg === "audit");
      return found.length >= 8 ? found : undefined;
    });
    const audit = audited.filter((a) => a.outcome !== "received");
    expect(audited.filter((a) => a.outcome === "received").map((a) => [a.audit, a.id, a.caller_pid])).toEqual(audit.map((a) => [a.audit, a.id, a.caller_pid]));
    expect(audit.map((a) => [a.audit, a.id, a.outcome, a.code])).toEqual([
      ["compute.vm.create", "audited", "done", undefined],
      ["compute.vm.start", "nosuch", "refused", -32001],
      ["compute.vm.start", "audited", "done", undefined],
      ["compute.vm.exec", "audited", "done", undefined],
    ]);
    expect(audit[3]).toMatchObject({ argv: ["true"], stream: false });
    // Who called, from SO_PEERCRED: the kernel's word, not the caller's.
    expect(audit.map((a) => [a.caller_pid, a.caller_uid])).toEqual([
      [process.pid, process.getuid?.()],
      [other.pid, process.getuid?.()],
      [process.pid, process.getuid?.()],
      [process.pid, process.getuid?.()],
    ]);
    expect(fs.readFileSync(log, "utf8")).not.toContain("s3cret");
    proc.kill("SIGTERM");
    await proc;
  });

  it("logs pino-pretty's lines to a terminal", async () => {
    const dir = tempDir();
    // script(1) gives the daemon a pseudo-terminal as its stderr.
    const args = ["--rpc-socket", path.join(dir, "rpc.sock"), "--state-dir", path.join(dir, "state"), "--console-dir", path.join(dir, "console")];
    const command = [DAEMON_BIN, ...args, "--cloud-hypervisor", SIM_BIN, "--vmm-uid-range", "off", "--allow-unenforced-limits"].join(" ");
    const proc = execa("script", ["-qfec", command, "/dev/null"], { reject: false, stdin: "ignore" });
    let out = "";
    proc.stdout?.on("data", (d) => {
      out += d;
    });
    await eventually(() => (/daemon listening/.test(out) ? true : undefined), 20_000);
    expect(out).toMatch(/\[\d\d:\d\d:\d\d\.\d{3}\] .*INFO.*: .*daemon listening/);
    expect(out).not.toMatch(/"level":/);
    proc.kill("SIGTERM");
    await proc;
  });
});

/** A client in its own process: sends one line (argv[2]) to the socket (argv[1]) and prints the reply. */
const CALL_ONCE = `
const s = require("node:net").connect(process.argv[1], () => s.write(process.argv[2] + "\\n"));
let got = "";
s.on("data", (d) => { got += d; if (got.includes("\\n")) { process.stdout.write(got); s.end(); } });
`;
