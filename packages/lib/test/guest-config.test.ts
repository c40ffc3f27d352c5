/**
 * The guest config codec (mh_config on the kernel command line) is fflate's gzip and a hand-written base64url,
 * so that the guest init on QuickJS decodes it with the same code. It must stay what any gzip and any base64url
 * read and write: checked against Node's zlib and Buffer.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { decodeConfig, encodeConfig } from "../src/domain/guest-config.js";

const configs = Array.from({ length: 40 }, (_, i) => ({
  exec_port: 1024 + i,
  hostname: "h".repeat(i),
  // Lengths 0–39 cover each base64 remainder; non-ASCII covers UTF-8.
  workload: { argv: ["sh", "-c", `echo ${"x".repeat(i * 7)} é€ 🙂`], env: { N: String(i) }, console: i % 2 === 0 },
}));

describe("the guest config codec", () => {
  it("writes what Node's gunzip and base64url read", () => {
    for (const c of configs) expect(JSON.parse(gunzipSync(Buffer.from(encodeConfig(c), "base64url")).toString())).toEqual(c);
  });

  it("reads what Node's gzip and base64url write", () => {
    for (const c of configs) expect(decodeConfig(gzipSync(JSON.stringify(c)).toString("base64url"))).toEqual(c);
  });

  it("gives the same command line for the same config", () => {
    expect(encodeConfig(configs[3] ?? {})).toBe(encodeConfig(structuredClone(configs[3] ?? {})));
  });

  it("refuses what is not base64url or not a valid config", () => {
    expect(() => decodeConfig("not*base64")).toThrow(/base64url/);
    expect(() => decodeConfig(encodeConfig({ workload: { argv: [] } }))).toThrow(/argv/);
    expect(() => decodeConfig(gzipSync(JSON.stringify({ workload: { argv: ["x"], console: "yes" } })).toString("base64url"))).toThrow(/console/);
  });
});
