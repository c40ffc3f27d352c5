/**
 * Running under systemd (issue 16), with systemd's own tools and no systemd
 * as PID 1: socket activation through systemd-socket-activate, a listening
 * socket held across a restart so that a call made meanwhile is answered by
 * the next daemon instead of refused, and READY=1, STATUS= and WATCHDOG=1 on
 * a NOTIFY_SOCKET the test owns.
 */
import fs from "node:fs";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { DAEMON_BIN, eventually, ROOT, RpcConnection, SIM_BIN, tempDir } from "./harness.js";

const running: ResultPromise[] = [];
afterAll(() => {
  for (const p of running) p.kill("SIGKILL");
});

/** The daemon's command line, VMMs under uids of their own as root (their jail shows the checkout). */
function daemonArgs(dir: string, rpcSocket: string): string[] {
  fs.chmodSync(dir, 0o711);
  const ownUids = process.getuid?.() === 0 ? ["--vmm-dir", path.join(dir, "vmm"), "--vmm-jail-bind", ROOT] : [];
  const dirs = ["--state-dir", path.join(dir, "state"), "--console-dir", path.join(dir, "console")];
  return ["--rpc-socket", rpcSocket, ...dirs, "--cloud-hypervisor", SIM_BIN, "--allow-unenforced-limits", ...ownUids];
}

const daemonPid = (dir: string) => Number(fs.readFileSync(path.join(dir, "state", "daemon.pid"), "utf8").split(/\s+/)[0]);

describe("installed", () => {
  it("scripts/install.sh puts binaries and units under a prefix: the units verify, the binaries run, the daemon serves", async () => {
    const prefix = path.join(tempDir(), "usr");
    await execa(path.join(ROOT, "scripts/install.sh"), [prefix]);
    const bin = (name: string) => path.join(prefix, "bin", name);
    for (const name of ["my_hypervisor-daemon", "my_hypervisor-netd", "my_hypervisor-vold"])
      expect((await execa(bin(name), ["--version"])).stdout).toMatch(new RegExp(`^${name} \\d+\\.\\d+\\.\\d+$`));
    const unitDir = path.join(prefix, "lib/systemd/system");
    const units = fs.readdirSync(unitDir).sort();
    expect(units).toEqual(["my_hypervisor-netd.service", "my_hypervisor-vold.service", "my_hypervisor.service", "my_hypervisor.socket"]);
    // systemd's own check: keys, sections, and that each ExecStart names an executable.
    const verify = await execa("systemd-analyze", ["verify", "--man=no", ...units], { cwd: unitDir, reject: false, env: { SYSTEMD_LOG_LEVEL: "notice" } });
    expect({ code: verify.exitCode, out: `${verify.stdout}${verify.stderr}` }).toEqual({ code: 0, out: "" });
    const service = fs.readFileSync(path.join(unitDir, "my_hypervisor.service"), "utf8");
    expect(service).toContain(`ExecStart=${bin("my_hypervisor-daemon")} `);
    for (const line of ["Type=notify", "KillMode=process", "Delegate=yes", "WatchdogSec=30", "RuntimeDirectoryPreserve=yes"]) expect(service).toContain(line);

    const dir = tempDir();
    const rpc = path.join(dir, "rpc.sock");
    const daemon = execa(bin("my_hypervisor-daemon"), daemonArgs(dir, rpc), { reject: false, stderr: { file: path.join(dir, "daemon.log") } });
    running.push(daemon);
    await eventually(() => (fs.existsSync(rpc) ? true : undefined), 20_000);
    const conn = await RpcConnection.open(rpc);
    expect(await conn.call("compute.vm.list", {})).toEqual({ vms: [] });
    conn.close();
    daemon.kill("SIGTERM");
    await daemon;
  });
});

describe("under systemd's tools", () => {
  it("serves on a socket it was handed, and a call made while it restarts is answered by the next daemon", async () => {
    const dir = tempDir();
    const sock = path.join(dir, "activated.sock");
    // The shell holds the listening socket (fd 3) across two daemons, as a socket unit does across restarts.
    const runTwice = path.join(dir, "run-twice.sh");
    fs.writeFileSync(runTwice, `run() { sh -c 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"' run "$@"; }\nrun "$@"\necho restarting >&2\nrun "$@"\n`);
    const log = path.join(dir, "daemon.log");
    const holder = execa("systemd-socket-activate", ["-l", sock, "--", "sh", runTwice, DAEMON_BIN, ...daemonArgs(dir, path.join(dir, "unused.sock"))], {
      reject: false,
      stderr: { file: log },
    });
    running.push(holder);
    await eventually(() => (fs.existsSync(sock) ? true : undefined));
    // The first connection starts the daemon; it answers once it has loaded.
    const first = await RpcConnection.open(sock);
    expect(await first.call("compute.vm.list", {})).toEqual({ vms: [] });
    first.close();
    expect(fs.existsSync(path.join(dir, "unused.sock"))).toBe(false);
    expect(fs.readFileSync(log, "utf8")).toMatch(/"activated":true/);

    const pid = await eventually(() => (fs.existsSync(path.join(dir, "state", "daemon.pid")) ? daemonPid(dir) : undefined));
    process.kill(pid, "SIGTERM");
    await eventually(() => (fs.existsSync(`/proc/${pid}`) ? undefined : true), 20_000);
    // No daemon runs now: the call waits in the socket's backlog and the next daemon answers it.
    const during = await RpcConnection.open(sock);
    expect(await during.call("compute.vm.list", {})).toEqual({ vms: [] });
    during.close();
    expect(fs.readFileSync(log, "utf8")).toMatch(/restarting/);
    expect(daemonPid(dir)).not.toBe(pid);
    process.kill(daemonPid(dir), "SIGTERM");
    await holder;
  });

  it("says READY=1 once it serves, what it is doing in STATUS=, and WATCHDOG=1 while its event loop runs", async () => {
    const dir = tempDir();
    const notify = path.join(dir, "notify.sock");
    const received = path.join(dir, "notifications");
    // A datagram socket the test owns: what arrives there is written to a file.
    const listener = execa("systemd-socket-activate", ["--datagram", "-l", notify, "--", "sh", "-c", `exec cat <&3 > ${received}`], { reject: false });
    running.push(listener);
    await eventually(() => (fs.existsSync(notify) ? true : undefined));
    const rpc = path.join(dir, "rpc.sock");
    const daemon = execa(DAEMON_BIN, daemonArgs(dir, rpc), {
      reject: false,
      env: { NOTIFY_SOCKET: notify, WATCHDOG_USEC: "200000" },
      stderr: { file: path.join(dir, "daemon.log") },
    });
    running.push(daemon);
    const text = () => (fs.existsSync(received) ? fs.readFileSync(received, "utf8") : "");
    await eventually(() => (/READY=1/.test(text()) && /WATCHDOG=1/.test(text()) ? true : undefined), 20_000);
    expect(text()).toMatch(/STATUS=loading VM records and re-adopting VMMs/);
    expect(text()).toMatch(/STATUS=serving; 0 VMs, 0 with a VMM/);
    // READY=1 only once the socket accepts.
    expect(fs.existsSync(rpc)).toBe(true);
    daemon.kill("SIGTERM");
    await daemon;
    await eventually(() => (/STOPPING=1/.test(text()) ? true : undefined));
    listener.kill("SIGTERM");
  });
});
