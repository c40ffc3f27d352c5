/**
 * Replacing a file so that a crash leaves either the old or the new content:
 * write a temp file beside it, flush it to disk, rename it over the old one,
 * then fsync the directory so the rename itself is durable.
 *
 * Not write-file-atomic: it costs about three times as much CPU per write
 * (a realpath walk with an lstat per path component, ownership lookups,
 * exit-signal handlers), and `state.json` is rewritten on every durable
 * transition (see docs/benchmarks.md). For the same reason this uses callback
 * fs, promisified, rather than fs/promises and its FileHandle per call.
 * Callers that may write one file from two places at once must order the
 * writes themselves (StateStore does); temp names are unique, so at worst
 * the later rename wins.
 */
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { failpoint } from "../failpoints.js";

const writeFile = promisify(fs.writeFile);
const rename = promisify(fs.rename);
const rm = promisify(fs.rm);
const fsync = promisify(fs.fsync);
const open = promisify(fs.open);
const close = promisify(fs.close);

let tempCounter = 0;

/** Temp files are `<file>.<pid>-<n>.tmp`: a crash can leave one, and this tells it apart from anything else. */
export const isTempFile = (name: string, of: string): boolean => name.startsWith(`${of}.`) && /\.\d+-\d+\.tmp$/.test(name);

/**
 * `dirFd`: the directory, already open (saves an open and a close per write).
 * A failure throws the system's error, after the temp file is removed.
 */
export async function replaceFileDurably(file: string, data: string, opts: { mode?: number; dirFd?: number } = {}): Promise<void> {
  const temp = `${file}.${process.pid}-${++tempCounter}.tmp`;
  try {
    await writeFile(temp, data, { mode: opts.mode ?? 0o600, flush: true });
    failpoint("store.temp-written");
    await rename(temp, file);
    failpoint("store.renamed");
    if (opts.dirFd !== undefined) await fsync(opts.dirFd);
    else await fsyncDir(path.dirname(file));
  } catch (e) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw e;
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fd = await open(dir, "r");
  try {
    await fsync(fd);
  } finally {
    await close(fd);
  }
}

/** The directory opened for `dirFd`. */
export const openDir = (dir: string): Promise<number> => open(dir, "r");
export const closeFd = (fd: number): Promise<void> => close(fd);
