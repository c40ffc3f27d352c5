// A minimal NDJSON JSON-RPC client for the benchmarks: one request in flight per connection.
import net from "node:net";

export class Conn {
  static open(path) {
    return new Promise((resolve, reject) => {
      const s = net.connect(path);
      s.once("connect", () => resolve(new Conn(s)));
      s.once("error", reject);
    });
  }
  constructor(socket) {
    this.socket = socket;
    this.parts = [];
    this.pending = new Map();
    this.next = 1;
    socket.setEncoding("utf8");
    // Only the new chunk is searched for a newline: a large reply must not cost a rescan per chunk.
    socket.on("data", (chunk) => {
      for (let nl = chunk.indexOf("\n"); nl >= 0; nl = chunk.indexOf("\n")) {
        const msg = JSON.parse(this.parts.join("") + chunk.slice(0, nl));
        this.parts = [];
        chunk = chunk.slice(nl + 1);
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (p) msg.error ? p.reject(new Error(`${msg.error.code}: ${msg.error.message}`)) : p.resolve(msg.result);
      }
      if (chunk.length > 0) this.parts.push(chunk);
    });
  }
  call(method, params) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`${JSON.stringify({ jsonrpc: "2.0", id, method, params })}\n`);
    });
  }
  close() {
    this.socket.end();
  }
}
