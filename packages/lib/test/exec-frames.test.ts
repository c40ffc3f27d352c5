/** The exec protocol's frame reader (docs/exec-protocol.md): frames out of any chunking of the byte stream. */
import { describe, expect, it } from "vitest";
import { dataFrames, encodeFrame, FrameReader, FrameType, MAX_FRAME_PAYLOAD } from "../src/domain/exec-protocol.js";

const stream = Buffer.concat([
  encodeFrame(FrameType.Request, { argv: ["true"] }),
  encodeFrame(FrameType.Stdout, Buffer.from("out")),
  encodeFrame(FrameType.StdinEof),
  encodeFrame(FrameType.Exit, { exit_code: 0, signal: null, timed_out: false }),
]);

describe("FrameReader", () => {
  it("gives the same frames whether the stream comes whole, byte by byte, or split anywhere", () => {
    const whole = new FrameReader().push(stream);
    expect(whole.map((f) => f.type)).toEqual([FrameType.Request, FrameType.Stdout, FrameType.StdinEof, FrameType.Exit]);
    expect(whole[1]?.payload.toString()).toBe("out");
    expect(whole[2]?.payload.length).toBe(0);
    const bytewise = new FrameReader();
    const got = [...stream].flatMap((b) => bytewise.push(Buffer.from([b])));
    expect(got).toEqual(whole);
    for (let cut = 1; cut < stream.length; cut++) {
      const r = new FrameReader();
      expect([...r.push(stream.subarray(0, cut)), ...r.push(stream.subarray(cut))]).toEqual(whole);
    }
  });

  it("refuses a frame over the limit from its header alone, before its payload arrives", () => {
    const header = Buffer.alloc(5);
    header.writeUInt8(FrameType.Stdout, 0);
    header.writeUInt32BE(MAX_FRAME_PAYLOAD + 1, 1);
    expect(() => new FrameReader().push(header)).toThrow(/exceeds/);
  });

  it("splits large data into frames of at most the limit, losing nothing", () => {
    const data = Buffer.alloc(2 * MAX_FRAME_PAYLOAD + 7, 9);
    const frames = new FrameReader().push(Buffer.concat([...dataFrames(FrameType.Stdout, data)]));
    expect(frames.map((f) => f.payload.length)).toEqual([MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD, 7]);
    expect(Buffer.concat(frames.map((f) => f.payload)).equals(data)).toBe(true);
  });
});
