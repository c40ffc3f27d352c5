/** my_hypervisor-init run by hand on a host: it answers, and refuses to be what it must not be. */
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { INIT_BINARY, ROOT } from "./guest-image.js";

describe("my_hypervisor-init on a host", () => {
  it("is one static executable", async () => {
    const { stdout } = await execa("file", ["-L", INIT_BINARY], { reject: false });
    // Without file(1), readelf says the same: no program interpreter.
    const { stdout: headers } = await execa("readelf", ["-l", INIT_BINARY], { reject: false });
    expect(stdout.includes("statically linked") || (headers !== "" && !headers.includes("INTERP"))).toBe(true);
  });

  it("is reproducible: built twice, the same bytes, and those of make build", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mh-init-"));
    const sha = (f: string) => createHash("sha256").update(fs.readFileSync(f)).digest("hex");
    try {
      for (const name of ["a", "b"]) await execa("bash", [path.join(ROOT, "scripts/build-init.sh"), "-o", path.join(dir, name)]);
      expect(sha(path.join(dir, "a"))).toBe(sha(path.join(dir, "b")));
      expect(sha(path.join(dir, "a"))).toBe(sha(INIT_BINARY));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("answers --help and --version", async () => {
    const help = await execa(INIT_BINARY, ["--help"], { reject: false });
    expect(help).toMatchObject({ exitCode: 0, stdout: expect.stringMatching(/^Usage: my_hypervisor-init/) });
    const version = await execa(INIT_BINARY, ["--version"], { reject: false });
    expect(version).toMatchObject({ exitCode: 0, stdout: expect.stringMatching(/^my_hypervisor-init \d+\.\d+\.\d+$/) });
  });

  it("refuses to run as anything but PID 1 or the test VMM's guest: it would be an unauthenticated root exec agent", async () => {
    const bare = await execa(INIT_BINARY, [], { reject: false, timeout: 20_000 });
    expect(bare.exitCode).toBe(2);
    expect(bare.stderr).toMatch(/refusing to run/);
    expect(bare.stdout).not.toMatch(/exec agent listening/);
    expect((await execa(INIT_BINARY, ["--bogus"], { reject: false })).exitCode).toBe(2);
  });
});
