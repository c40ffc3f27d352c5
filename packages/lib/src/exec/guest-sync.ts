/**
 * Telling a guest that stood still (paused, or restored from a snapshot) what
 * time it is and giving it fresh randomness: one Sync frame to
 * my_hypervisor-init's agent, one Synced frame back (docs/exec-protocol.md).
 */
import { randomBytes } from "node:crypto";
import { DEFAULT_EXEC_PORT, decodeJson, encodeFrame, FrameReader, FrameType, type GuestSynced } from "../domain/exec-protocol.js";
import type { ProcessSocket } from "../os/process-socket.js";
import { CallEnd, connectGuestPort } from "./hybrid-vsock.js";

const SEED_BYTES = 32;

/** Reaches the agent (retrying while it starts) and syncs; rejects saying why by `deadline` (epoch ms). */
export async function syncGuest(vsockSocket: ProcessSocket, deadline: number): Promise<GuestSynced> {
  const conn = await connectGuestPort(vsockSocket, DEFAULT_EXEC_PORT, deadline);
  return new Promise((resolve, reject) => {
    const reader = new FrameReader();
    const end = new CallEnd(conn);
    const done = (fn: () => void) => end.with(fn);
    end.timer = setTimeout(() => done(() => reject(new Error("the guest agent did not answer the sync in time"))), Math.max(1, deadline - Date.now()));
    conn.on("data", (chunk: Buffer) => {
      try {
        for (const f of reader.push(chunk)) {
          if (f.type === FrameType.Synced) return done(() => resolve(decodeJson<GuestSynced>(f.payload)));
          if (f.type === FrameType.Error) return done(() => reject(new Error(decodeJson<{ message: string }>(f.payload).message)));
        }
      } catch (e) {
        done(() => reject(e));
      }
    });
    conn.once("close", () => done(() => reject(new Error("the guest agent closed the connection without an answer"))));
    conn.once("error", (e) => done(() => reject(e)));
    conn.write(encodeFrame(FrameType.Sync, { unix_ms: Date.now(), seed: randomBytes(SEED_BYTES).toString("base64url") }));
    conn.resume();
  });
}
