/**
 * The few system calls PID 1 needs that Node does not offer, through koffi:
 * mount, sethostname, sync, reboot, waitpid, an interface ioctl, and the
 * AF_VSOCK socket calls. Each returns -1 with `errno()` set on failure.
 */
import koffi from "koffi";

const libc = koffi.load("libc.so.6");

export const mount = libc.func("int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)");
export const sethostname = libc.func("int sethostname(const char *name, size_t len)");
export const sync = libc.func("void sync()");
export const reboot = libc.func("int reboot(int cmd)");
export const waitpid = libc.func("int waitpid(int pid, _Out_ int *status, int options)");
export const socket = libc.func("int socket(int domain, int type, int protocol)");
export const close = libc.func("int close(int fd)");
export const listen = libc.func("int listen(int fd, int backlog)");
export const shutdown = libc.func("int shutdown(int fd, int how)");
export const accept4 = libc.func("int accept4(int fd, void *addr, void *addrlen, int flags)");

const SockaddrVm = koffi.struct("sockaddr_vm", {
  svm_family: "uint16",
  svm_reserved1: "uint16",
  svm_port: "uint32",
  svm_cid: "uint32",
  svm_zero: koffi.array("uint8", 4),
});
const bindVm = libc.func("int bind(int fd, const sockaddr_vm *addr, int len)");
export const bindVsock = (fd: number, port: number, cid: number): number =>
  bindVm(fd, { svm_family: AF_VSOCK, svm_reserved1: 0, svm_port: port, svm_cid: cid, svm_zero: [0, 0, 0, 0] }, koffi.sizeof(SockaddrVm));

// Registers the struct type named in the ioctl signature below.
koffi.struct("ifreq_flags", { ifr_name: koffi.array("char", 16, "String"), ifr_flags: "int16", pad: koffi.array("uint8", 22) });
const ioctlIfreq = libc.func("int ioctl(int fd, unsigned long request, _Inout_ ifreq_flags *ifr)");
export const ioctlFlags = (fd: number, request: number, ifr: { ifr_name: string; ifr_flags: number }): number => ioctlIfreq(fd, request, ifr);

const errnoLocation = libc.func("int *__errno_location()");
export const errno = (): number => koffi.decode(errnoLocation(), "int") as number;

export const AF_INET = 2;
export const AF_VSOCK = 40;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;
export const VMADDR_CID_ANY = 0xffffffff;
export const WNOHANG = 1;
export const SHUT_WR = 1;
export const SIOCGIFFLAGS = 0x8913;
export const SIOCSIFFLAGS = 0x8914;
export const IFF_UP = 0x1;
export const LINUX_REBOOT_CMD_POWER_OFF = 0x4321fedc;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
