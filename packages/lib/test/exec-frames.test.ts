/** The exec protocol's frame reader (docs/exec-protocol.md): frames out of any chunking of the byte stream. */
import { describe, expect, it } from "vitest";
import { dataFrames, decodeJson, encodeFrame, type Frame, FrameReader, FrameType, MAX_FRAME_PAYLOAD } from "../src/domain/exec-protocol.js";

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
    expect(Buffer.from(whole[1]?.payload ?? []).toString()).toBe("out");
    expect(decodeJson(whole[3]?.payload ?? new Uint8Array())).toEqual({ exit_code: 0, signal: null, timed_out: false });
    expect(whole[2]?.payload.length).toBe(0);
    // Compared as bytes: a Buffer in gives Buffer payloads, plain Uint8Array chunks give Uint8Array ones.
    const bytes = (frames: Frame[]) => frames.map((f) => ({ type: f.type, payload: [...f.payload] }));
    const bytewise = new FrameReader();
    const got = [...stream].flatMap((b) => bytewise.push(new Uint8Array([b])));
    expect(bytes(got)).toEqual(bytes(whole));
    for (let cut = 1; cut < stream.length; cut++) {
      const r = new FrameReader();
      expect(bytes([...r.push(stream.subarray(0, cut)), ...r.push(stream.subarray(cut))])).toEqual(bytes(whole));
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
