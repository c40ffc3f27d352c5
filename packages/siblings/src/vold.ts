#!/usr/bin/env node
/**
 * my_hypervisor-vold: the reference volume sibling for one host. A volume is
 * a raw image file `<dir>/<volume>.raw`, created sparse at the requested size
 * or copied from a base image the first time it is attached. An attachment
 * ties a volume to (owner, slot); asking again returns the same one. A volume
 * attached read-write is not attached to anyone else. Detaching keeps the file.
 * Given the owner's VMM uid, the file is handed to that uid (read-write, or
 * read-only) and to no other, and taken back at detach; without ACLs, a
 * volume cannot then be shared read-only with a VMM of another uid.
 */
import fs from "node:fs/promises";
import path from "node:path";
import { bindMethods, invalidParamsError, ownership, RpcError, SIBLING_ERRORS, VOL_API, type VolAttachment } from "@my_hypervisor/lib";
import { delay, JsonState, listByOwner, parseSiblingArgs, serveSibling } from "./sibling-daemon.js";

const E = SIBLING_ERRORS;

const opts = parseSiblingArgs("my_hypervisor-vold", "the reference volume sibling: raw image volumes, handed to each VM's VMM uid", [
  { name: "dir", value: "DIR", help: "Where the volume images are kept" },
]);
const dir = path.resolve(opts.extra.dir as string);
// 0711: a VMM can reach the volume it was handed by name, and list none.
await fs.mkdir(dir, { recursive: true, mode: 0o711 });
await fs.chmod(dir, 0o711);
const state = await JsonState.open<{ attachments: Record<string, VolAttachment> }>(`${opts.stateDir}/attachments.json`, { attachments: {} });

const MiB = 1024 * 1024;

/** The volume's file to `uid` alone (0600, or 0400 read-only), or back to root's (0600). */
async function handOver(file: string, uid: number | undefined, readonly: boolean): Promise<void> {
  await fs.chown(file, uid ?? 0, uid ?? 0).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "ENOENT") throw e;
  });
  await fs.chmod(file, uid !== undefined && readonly ? 0o400 : 0o600).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "ENOENT") throw e;
  });
}

async function ensureVolume(file: string, volume: string, sizeMib?: number, base?: string): Promise<void> {
  if (await fs.stat(file).catch(() => undefined)) return;
  if (base === undefined && sizeMib === undefined)
    throw new RpcError(E.NotFound.code, `volume ${volume} does not exist; give size_mib or base to create it`, { volume });
  const tmp = `${file}.${process.pid}.tmp`;
  if (base !== undefined) {
    await fs.copyFile(base, tmp).catch((e) => {
      throw new RpcError(E.NotFound.code, `base image ${base} cannot be read: ${(e as Error).message}`, { base });
    });
  }
  const handle = await fs.open(tmp, "a", 0o600);
  try {
    // Growing with truncate leaves a sparse file: no blocks are written.
    if (sizeMib !== undefined && (await handle.stat()).size < sizeMib * MiB) await handle.truncate(sizeMib * MiB);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, file);
}

const methods = bindMethods(VOL_API, {
  "vol.attach": (p) =>
    state.mutate(async (data) => {
      const attachment = `${p.owner}/${p.slot}`;
      const existing = data.attachments[attachment];
      if (existing) {
        if (existing.volume !== p.volume)
          throw invalidParamsError(`slot ${attachment} already holds volume ${existing.volume}`, [
            { path: "/volume", message: `the slot holds ${existing.volume}` },
          ]);
        return existing;
      }
      const others = Object.values(data.attachments).filter((a) => a.volume === p.volume);
      if (others.some((a) => !a.readonly) || (!p.readonly && others.length > 0)) {
        throw new RpcError(E.InUse.code, `volume ${p.volume} is in use by ${others.map((a) => a.owner).join(", ")}`, { volume: p.volume });
      }
      if (others.some((a) => a.owner_uid !== p.owner_uid)) {
        const holders = others.map((a) => `${a.owner} (uid ${a.owner_uid ?? "of the daemon"})`).join(", ");
        throw new RpcError(E.InUse.code, `volume ${p.volume} is handed to ${holders}: this sibling cannot share it with another VMM uid`, {
          volume: p.volume,
        });
      }
      await delay(opts.latencyMs);
      const file = path.join(dir, `${p.volume}.raw`);
      await ensureVolume(file, p.volume, p.size_mib, p.base);
      await handOver(file, p.owner_uid, p.readonly);
      const created: VolAttachment = {
        attachment,
        ...ownership(p),
        volume: p.volume,
        path: file,
        readonly: p.readonly,
      };
      data.attachments[attachment] = created;
      opts.log.info({ attachment, file }, "volume attached");
      return created;
    }),
  "vol.detach": (p) =>
    state.mutate(async (data) => {
      const gone = data.attachments[p.attachment];
      if (!gone) return { attachment: p.attachment, detached: false };
      await delay(opts.latencyMs);
      delete data.attachments[p.attachment];
      // The last attachment gone: the file is root's again, out of reach of the VMM that had it.
      if (!Object.values(data.attachments).some((a) => a.volume === gone.volume)) await handOver(gone.path, undefined, false);
      opts.log.info({ attachment: p.attachment }, "volume detached");
      return { attachment: p.attachment, detached: true };
    }),
  "vol.list": listByOwner(() => Object.values(state.data.attachments)),
});

await serveSibling("my_hypervisor-vold", "my_hypervisor volume sibling", methods, opts);
