import { describe, expect, it } from "vitest";
import { LineReader } from "../src/jsonrpc/line-reader.js";

const collect = (r: LineReader, ...chunks: string[]) => chunks.flatMap((c) => [...r.push(Buffer.from(c))]).map((i) => (i.tooLong ? "<too long>" : i.line));

describe("LineReader", () => {
  it("splits lines across chunks and keeps a partial line for later", () => {
    const r = new LineReader(100);
    expect(collect(r, "ab", "c\nde", "f\n\ng")).toEqual(["abc", "def", ""]);
    expect(collect(r, "h\n")).toEqual(["gh"]);
  });

  it("reports an overlong line once and resumes after its newline", () => {
    const r = new LineReader(10);
    expect(collect(r, "0123456789AB", "CDEF", "\nok\n")).toEqual(["<too long>", "ok"]);
    expect(collect(r, "01234567890123\nfine\n")).toEqual(["<too long>", "fine"]);
  });

  it("accepts a line of exactly the limit", () => {
    expect(collect(new LineReader(10), "01234", "56789\n")).toEqual(["0123456789"]);
  });

  it("keeps multi-byte characters split across chunks intact", () => {
    const bytes = Buffer.from("héllo\n");
    const r = new LineReader(100);
    expect([...r.push(bytes.subarray(0, 2)), ...r.push(bytes.subarray(2))].map((i) => (i.tooLong ? "" : i.line))).toEqual(["héllo"]);
  });
});
