/**
 * How the test VMM hands its guest (my_hypervisor-init, run as a process)
 * what a kernel would: where the guest's vsock listeners go, and the fd on
 * which the ACPI power button arrives as the kernel's input events. Written
 * once here for both sides. Plain TypeScript over Buffer: the init bundles it.
 */

/** The directory in which the guest's vsock listeners are Unix sockets `<port>.sock`. */
export const SIM_VSOCK_DIR_ENV = "MH_SIM_VSOCK_DIR";
/** The fd on which power-button input events arrive. */
export const SIM_POWER_BUTTON_FD_ENV = "MH_SIM_POWER_BUTTON_FD";

/** struct input_event on 64-bit Linux: a timeval (16 bytes), type (u16), code (u16), value (s32). */
export const INPUT_EVENT_BYTES = 24;
const EV_KEY = 1;
const KEY_POWER = 116;

/** One press of the power button, as the kernel reports it. */
export function powerButtonPress(): Buffer {
  const event = Buffer.alloc(INPUT_EVENT_BYTES);
  event.writeUInt16LE(EV_KEY, 16);
  event.writeUInt16LE(KEY_POWER, 18);
  event.writeInt32LE(1, 20);
  return event;
}

/** True if the input event at `offset` is a press of the power button. */
export function isPowerButtonPress(events: Buffer, offset = 0): boolean {
  return events.readUInt16LE(offset + 16) === EV_KEY && events.readUInt16LE(offset + 18) === KEY_POWER && events.readInt32LE(offset + 20) === 1;
}
