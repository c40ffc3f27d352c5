// The baseline for RPC overhead: a bare newline-delimited JSON-RPC echo server on a Unix socket.
// It parses each line and answers with the params as the result: the floor any daemon method sits on.
import fs from "node:fs";
import net from "node:net";

const path = process.argv[2];
fs.rmSync(path, { force: true });
net
  .createServer((socket) => {
    let buffer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk) => {
      buffer += chunk;
      for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
        const req = JSON.parse(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        socket.write(`${JSON.stringify({ jsonrpc: "2.0", id: req.id, result: req.params ?? null })}\n`);
      }
    });
    socket.on("error", () => socket.destroy());
  })
  .listen(path, () => process.stdout.write("ready\n"));
