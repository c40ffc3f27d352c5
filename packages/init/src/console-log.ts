/**
 * Everything the init and its workload print goes to the console (PID 1's
 * stdout is /dev/console, the serial port), one line at a time, tagged with
 * its source, so the daemon's serial log shows which is which.
 */
import { concatBytes } from "@my_hypervisor/lib/bytes";
import { strFromU8 } from "fflate";

export type Say = (tag: string, message: string) => void;

const NEWLINE = 0x0a;
/** A line longer than this is printed in pieces rather than held back for ever. */
const MAX_LINE_BYTES = 4096;

/**
 * A line splitter for a child's output stream, tagging each line. It splits
 * bytes, not text, so a character split across two reads stays whole.
 */
export function tagLines(say: Say, tag: string): (chunk: Uint8Array) => void {
  let partial = new Uint8Array(0);
  return (chunk) => {
    const data = partial.length === 0 ? chunk : concatBytes(partial, chunk);
    let start = 0;
    for (let nl = data.indexOf(NEWLINE); nl >= 0; nl = data.indexOf(NEWLINE, start)) {
      say(tag, strFromU8(data.subarray(start, nl)));
      start = nl + 1;
    }
    partial = data.slice(start);
    if (partial.length > MAX_LINE_BYTES) {
      say(tag, strFromU8(partial));
      partial = new Uint8Array(0);
    }
  };
}
