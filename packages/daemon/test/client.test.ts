/**
 * The typed client (packages/client): its types are generated from the OpenRPC document, and the daemon serves
 * exactly that document; its errors say which of a method's errors a refusal is. The `@ts-expect-error` lines are
 * checked by the type-check (`make typecheck`): they fail it if the types ever let a wrong call through.
 */
import { API_VERSION, ComputeClient, ComputeError, ERROR_CODES, METHOD_ERRORS } from "@my_hypervisor/client";
import { computeApiDocument } from "@my_hypervisor/lib/compute-api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Daemon, Fleet, pidOf, vmSpec } from "./harness.js";

const fleet = new Fleet();
let d: Daemon;
let client: ComputeClient;
beforeAll(async () => {
  d = await fleet.daemon();
  client = await ComputeClient.connect(d.socket);
});
afterAll(() => {
  client?.close();
  fleet.cleanup();
});

describe("the typed client", () => {
  it("was generated from the document the daemon serves", async () => {
    const served = await client.discover();
    expect(served).toEqual(computeApiDocument(served.info.version));
    expect(served.info.version).toBe(API_VERSION);
    const methods = served.methods.filter((m) => m.name !== "rpc.discover");
    expect(Object.keys(METHOD_ERRORS).sort()).toEqual(methods.map((m) => m.name).sort());
    for (const m of methods) {
      const errors = (m.errors ?? []) as { code: number; data: { name: keyof typeof ERROR_CODES } }[];
      expect(METHOD_ERRORS[m.name as keyof typeof METHOD_ERRORS], m.name).toEqual(errors.map((e) => e.data.name));
      for (const e of errors) expect(ERROR_CODES[e.data.name], `${m.name}: ${e.data.name}`).toBe(e.code);
    }
  });

  it("calls with typed params and gets typed results", async () => {
    const created = await client.call("compute.vm.create", vmSpec(d, "typed"));
    expect(created.state).toBe("Configured");
    const started = await client.call("compute.vm.start", { id: "typed" });
    fleet.pids.add(pidOf(started));
    const out = await client.exec({ id: "typed", argv: ["echo", "hello"] });
    expect(out.stdout).toBe("hello\n");
    const { path } = await client.execStream({ id: "typed", argv: ["true"] });
    expect(path).toMatch(/\.sock$/);
    expect((await client.call("compute.vm.list", {})).vms.map((v) => v.id)).toEqual(["typed"]);
    await client.call("compute.vm.stop", { id: "typed", force: true });

    // Checked at compile time only: the calls are never made.
    const never = () => {
      // @ts-expect-error: no such method
      void client.call("compute.vm.nosuch", {});
      // @ts-expect-error: vcpus is a number
      void client.call("compute.vm.create", { ...vmSpec(d, "bad"), vcpus: "2" });
      // @ts-expect-error: start needs an id
      void client.call("compute.vm.start", {});
      // @ts-expect-error: not one of start's errors
      void new ComputeError("compute.vm.start", 0, "", undefined, "SnapshotNotFound");
    };
    expect(typeof never).toBe("function");
  });

  it("says which of the method's errors a refusal is, and none for an error the method does not list", async () => {
    const missing = await client.call("compute.vm.start", { id: "nosuch" }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ComputeError);
    const e = missing as ComputeError<"compute.vm.start">;
    expect([e.method, e.code, e.errorName, e.is("VmNotFound")]).toEqual(["compute.vm.start", ERROR_CODES.VmNotFound, "VmNotFound", true]);
    expect(e.message).toContain("nosuch");

    // compute.vm.list lists no errors: params it refuses are a protocol error, with no name of the method's.
    const refused = await client.call("compute.vm.list", { id: "x" } as unknown as Record<string, never>).catch((err: unknown) => err);
    expect(refused).toMatchObject({ code: -32602, errorName: undefined });
  });
});
