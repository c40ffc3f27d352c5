/**
 * The VM's console devices as CH keeps them apart from the VM (its `console_info`): made at each vm.create and at a
 * boot that finds none, kept through the delete of a VM that never booted, dropped with a VM that did. Making them
 * (CH's `pre_create_console_devices`) recreates `File` outputs and binds the serial port in `Socket` mode, the one
 * device here with a life of its own; the other modes need nothing.
 */
import fs from "node:fs";
import { osError, rustIoError, VmmPanic } from "./rust-error.js";
import { SerialPort } from "./serial-port.js";
import type { VmConfig } from "./vm-config.js";

export class ConsoleDevices {
  /** CH's `console_info` is there. */
  private made = false;
  private serial: SerialPort | undefined;

  /** `input`: bytes a client types into the serial port. */
  constructor(private readonly input: (data: Buffer) => void) {}

  /**
   * Makes the devices for `config`: always at a create (`anew`), else only if there are none. New devices replace
   * the old, whose serial socket file stays behind; devices that cannot be made leave the old in place, and the
   * chain of CH's error (after the caller's own link) is returned. A `File` mode without its path panics CH's VMM
   * thread (v53.0 unwraps it), and so the test VMM's.
   */
  async open(config: VmConfig, anew: boolean): Promise<string[] | undefined> {
    if (this.made && !anew) return undefined;
    const { console, serial } = config;
    if (console?.mode === "File" && !console.file) throw new VmmPanic("vmm/src/console_devices.rs:187:79");
    if (console?.mode === "Socket") return ["Error creating console devices", "No socket option support for console device"];
    if (serial?.mode === "File" && !serial.file) throw new VmmPanic("vmm/src/console_devices.rs:231:78");
    const failed = (e: unknown) => ["Error creating console devices", "Error creating console device", rustIoError(e)];
    let port: SerialPort | undefined;
    if (serial?.mode === "Socket") {
      if (!serial.socket) return failed(osError("EINVAL"));
      try {
        port = await SerialPort.open(serial.socket, this.input);
      } catch (e) {
        return failed(e);
      }
    }
    for (const dev of [console, serial]) if (dev?.mode === "File" && dev.file) fs.closeSync(fs.openSync(dev.file, "w", 0o600));
    this.serial?.close(false);
    this.serial = port;
    this.made = true;
    return undefined;
  }

  /** Dropped with a VM that was made: the serial socket's file goes with it. */
  close(): void {
    this.serial?.close(true);
    this.serial = undefined;
    this.made = false;
  }

  /** Where the guest's serial output goes, per `config`'s mode. */
  sink(config: VmConfig): (data: Buffer) => Promise<void> | undefined {
    const serial = config.serial;
    if (serial?.mode === "Socket") return (data) => this.serial?.write(data);
    if (serial?.mode === "File" && serial.file) {
      const file = serial.file;
      return (data) => {
        fs.appendFileSync(file, data);
        return undefined;
      };
    }
    return () => undefined;
  }
}
