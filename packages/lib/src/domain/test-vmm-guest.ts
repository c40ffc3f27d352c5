/**
 * How the test VMM hands its guest (my_hypervisor-init, run as a process)
 * what a kernel would: where the guest's vsock listeners go, and the fd on
 * which the ACPI power button arrives as the kernel's input events. Written
 * once here for both sides. Plain TypeScript over Uint8Array: the init bundles it.
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
export function powerButtonPress(): Uint8Array {
  const event = new Uint8Array(INPUT_EVENT_BYTES);
  const view = new DataView(event.buffer);
  view.setUint16(16, EV_KEY, true);
  view.setUint16(18, KEY_POWER, true);
  view.setInt32(20, 1, true);
  return event;
}

/** True if the input event at `offset` is a press of the power button. */
export function isPowerButtonPress(events: Uint8Array, offset = 0): boolean {
  const view = new DataView(events.buffer, events.byteOffset + offset, INPUT_EVENT_BYTES);
  return view.getUint16(16, true) === EV_KEY && view.getUint16(18, true) === KEY_POWER && view.getInt32(20, true) === 1;
}
