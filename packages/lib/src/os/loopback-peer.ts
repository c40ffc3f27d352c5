/**
 * Who is on the other end of a TCP connection over IPv4 loopback: the uid that
 * owns the peer's socket, from the kernel's table of this network namespace's
 * sockets (/proc/net/tcp). Loopback TCP has no SO_PEERCRED; both ends of a
 * loopback connection are in the table, the peer's as the row whose local
 * address is the connection's remote one.
 */
import fs from "node:fs";
import type net from "node:net";

/** `127.0.0.1:port` as /proc/net/tcp writes it: the address's bytes in host order (little-endian here), the port big-endian. */
const hexAddress = (address: string, port: number) =>
  `${address
    .split(".")
    .reverse()
    .map((b) => Number(b).toString(16).padStart(2, "0"))
    .join("")
    .toUpperCase()}:${port.toString(16).padStart(4, "0").toUpperCase()}`;

/** The uid owning the peer's socket, or undefined where the table has no such row (not IPv4, already gone). */
export function loopbackPeerUid(socket: net.Socket): number | undefined {
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  if (!remoteAddress || !remotePort || !localAddress || !localPort || !/^\d+\.\d+\.\d+\.\d+$/.test(remoteAddress)) return undefined;
  const peer = hexAddress(remoteAddress, remotePort);
  const us = hexAddress(localAddress, localPort);
  for (const line of fs.readFileSync("/proc/net/tcp", "latin1").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === peer && f[2] === us) return Number(f[7]);
  }
  return undefined;
}
