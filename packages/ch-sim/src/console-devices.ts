/**
 * The VM's console devices as CH keeps them apart from the VM (its `console_info`): made at each vm.create and at a
 * boot that finds none, kept through the delete of a VM that never booted, dropped with a VM that did. Only the
 * serial port in `Socket` mode has a device here; `File` output is appended to its file, the other modes go nowhere.
 */
import fs from "node:fs";
import { osError, rustIoError } from "./rust-error.js";
import { SerialPort } from "./serial-port.js";
import type { VmConfig } from "./vmm.js";

export class ConsoleDevices {
  private serial: SerialPort | undefined;

  /** `input`: bytes a client types into the serial port. */
  constructor(private readonly input: (data: Buffer) => void) {}

  /**
   * CH's `pre_create_console_devices`, for `config`: at a create (`anew`) a new port replaces the old one, whose file
   * stays behind; otherwise an existing port is kept. A port that cannot be made leaves the old in place: the chain
   * of CH's error (after the caller's own link) is returned.
   */
  async open(config: VmConfig, anew: boolean): Promise<string[] | undefined> {
    const serial = config.serial;
    if (serial?.mode !== "Socket" || (this.serial && !anew)) return undefined;
    const chain = (e: unknown) => ["Error creating console devices", "Error creating console device", rustIoError(e)];
    if (!serial.socket) return chain(osError("EINVAL"));
    try {
      const port = await SerialPort.open(serial.socket, this.input);
      this.serial?.close(false);
      this.serial = port;
      return undefined;
    } catch (e) {
      return chain(e);
    }
  }

  /** Dropped with a VM that was made: the serial socket's file goes with it. */
  close(): void {
    this.serial?.close(true);
    this.serial = undefined;
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
