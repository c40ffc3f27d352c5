/**
 * The VM config as the test VMM holds it: what serde-types.ts read from vm.create, defaults filled in. Typed as far as
 * the test VMM looks into it; the rest is kept as sent.
 */
export type VmConfig = Record<string, unknown> & {
  payload?: { kernel?: string; firmware?: string; cmdline?: string; initramfs?: string };
  disks?: { id?: string; path?: string; readonly?: boolean; image_type?: string }[];
  memory?: { size?: number };
  serial?: { mode?: string; file?: string; socket?: string };
  vsock?: { id?: string; cid?: number; socket?: string };
  console?: { mode?: string; file?: string; socket?: string };
};
