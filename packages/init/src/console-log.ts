/**
 * Everything the init and its workload print goes to the console (PID 1's
 * stdout is /dev/console, the serial port), one line at a time, tagged with
 * its source, so the daemon's serial log shows which is which.
 */
export function say(tag: string, message: string): void {
  process.stdout.write(`[${tag}] ${message}\n`);
}

/** A line splitter for a child's output stream, tagging each line. */
export function tagLines(tag: string): (chunk: Buffer) => void {
  let partial = "";
  return (chunk) => {
    const lines = (partial + chunk.toString("utf8")).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) say(tag, line);
    if (partial.length > 4096) {
      say(tag, partial);
      partial = "";
    }
  };
}
