/**
 * Newline-delimited framing: splits a byte stream into lines. A line over the
 * limit is reported once and skipped up to its newline, so a peer cannot make
 * the reader buffer without bound. Only the new chunk is searched for a
 * newline: a long line does not cost a rescan per chunk.
 */
export class LineReader {
  private parts: Buffer[] = [];
  private size = 0;
  private discarding = false;

  constructor(private readonly maxBytes: number) {}

  *push(chunk: Buffer): Generator<{ line: string; tooLong: false } | { tooLong: true }> {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.discarding) {
        this.discarding = false;
        continue;
      }
      if (this.size + piece.length > this.maxBytes) {
        this.reset();
        yield { tooLong: true };
        continue;
      }
      const line = this.parts.length === 0 ? piece.toString("utf8") : Buffer.concat([...this.parts, piece]).toString("utf8");
      this.reset();
      yield { line, tooLong: false };
    }
    const rest = chunk.subarray(start);
    if (this.discarding || rest.length === 0) return;
    if (this.size + rest.length > this.maxBytes) {
      this.reset();
      this.discarding = true;
      yield { tooLong: true };
      return;
    }
    this.parts.push(rest);
    this.size += rest.length;
  }

  private reset(): void {
    this.parts = [];
    this.size = 0;
  }
}
