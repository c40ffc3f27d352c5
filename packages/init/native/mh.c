/*
 * The "mh" module: the system calls my_hypervisor-init needs that QuickJS's
 * os module lacks. Each function is one system call (or one fork+exec) with
 * its arguments checked; failures return -errno, never throw, and no policy
 * lives here: what to mount, when to reap, whom to signal is TypeScript's.
 * This is the project's only C (docs/adr/0006-guest-init-and-exec.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "quickjs.h"

/* <linux/vm_sockets.h>'s address, which musl's headers do not carry (a stable kernel ABI). */
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define VMADDR_CID_ANY 0xffffffffU
struct sockaddr_vm {
    sa_family_t svm_family;
    unsigned short svm_reserved1;
    unsigned int svm_port;
    unsigned int svm_cid;
    unsigned char svm_zero[sizeof(struct sockaddr) - sizeof(sa_family_t) - sizeof(unsigned short) - 2 * sizeof(unsigned int)];
};

#define countof(a) (sizeof(a) / sizeof((a)[0]))

static JSValue ret_errno(JSContext *ctx, int r) { return JS_NewInt32(ctx, r < 0 ? -errno : r); }

/* An array's length; -1 with an exception pending if it has none. */
static int64_t get_length(JSContext *ctx, JSValueConst arr) {
    int64_t n;
    JSValue v = JS_GetPropertyStr(ctx, arr, "length");
    int bad = JS_ToInt64(ctx, &n, v);
    JS_FreeValue(ctx, v);
    return bad ? -1 : n;
}

/* A JS string argument, or NULL for null/undefined. Caller frees with JS_FreeCString. */
static const char *opt_str(JSContext *ctx, JSValueConst v) {
    return JS_IsNull(v) || JS_IsUndefined(v) ? NULL : JS_ToCString(ctx, v);
}

/* mount(source, target, fstype, flags, data|null) */
static JSValue js_mount(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    uint32_t flags;
    if (JS_ToUint32(ctx, &flags, argv[3])) return JS_EXCEPTION;
    const char *src = JS_ToCString(ctx, argv[0]), *target = JS_ToCString(ctx, argv[1]), *fstype = JS_ToCString(ctx, argv[2]);
    const char *data = opt_str(ctx, argv[4]);
    int r = src && target && fstype ? mount(src, target, fstype, flags, data) : (errno = EINVAL, -1);
    JSValue ret = ret_errno(ctx, r);
    JS_FreeCString(ctx, src), JS_FreeCString(ctx, target), JS_FreeCString(ctx, fstype), JS_FreeCString(ctx, data);
    return ret;
}

/* umount(target, flags) */
static JSValue js_umount(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    int flags;
    if (JS_ToInt32(ctx, &flags, argv[1])) return JS_EXCEPTION;
    const char *target = JS_ToCString(ctx, argv[0]);
    if (!target) return JS_EXCEPTION;
    JSValue ret = ret_errno(ctx, umount2(target, flags));
    JS_FreeCString(ctx, target);
    return ret;
}

/* sync(); then reboot(cmd): returns only on failure. */
static JSValue js_power(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    int cmd;
    if (JS_ToInt32(ctx, &cmd, argv[0])) return JS_EXCEPTION;
    sync();
    return ret_errno(ctx, reboot(cmd));
}

static JSValue js_sethostname(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    size_t len;
    const char *name = JS_ToCStringLen(ctx, &len, argv[0]);
    if (!name) return JS_EXCEPTION;
    JSValue ret = ret_errno(ctx, sethostname(name, len));
    JS_FreeCString(ctx, name);
    return ret;
}

/* clockSettime(milliseconds since the epoch): the realtime clock. */
static JSValue js_clock_settime(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    double ms;
    if (JS_ToFloat64(ctx, &ms, argv[0])) return JS_EXCEPTION;
    struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6) };
    return ret_errno(ctx, clock_settime(CLOCK_REALTIME, &ts));
}

/* signalfd(signals): blocks them and returns a non-blocking fd that reads them as signalfd_siginfo records. */
static JSValue js_signalfd(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    sigset_t set;
    sigemptyset(&set);
    int64_t n = get_length(ctx, argv[0]);
    if (n < 0) return JS_EXCEPTION;
    for (int64_t i = 0; i < n; i++) {
        int sig;
        JSValue v = JS_GetPropertyUint32(ctx, argv[0], (uint32_t)i);
        int bad = JS_ToInt32(ctx, &sig, v);
        JS_FreeValue(ctx, v);
        if (bad) return JS_EXCEPTION;
        sigaddset(&set, sig);
    }
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) return ret_errno(ctx, -1);
    return ret_errno(ctx, signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
}

static JSValue js_set_nonblock(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    int fd;
    if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
    int flags = fcntl(fd, F_GETFL);
    return ret_errno(ctx, flags < 0 ? flags : fcntl(fd, F_SETFL, flags | O_NONBLOCK));
}

/* The string array argv[i] as a NULL-terminated C array (freed with free_strv). */
static char **to_strv(JSContext *ctx, JSValueConst arr) {
    int64_t n = get_length(ctx, arr);
    if (n < 0 || n > 65536) return NULL;
    char **v = js_mallocz(ctx, sizeof(char *) * (n + 1));
    if (!v) return NULL;
    for (int64_t i = 0; i < n; i++) {
        JSValue s = JS_GetPropertyUint32(ctx, arr, (uint32_t)i);
        const char *c = JS_ToCString(ctx, s);
        JS_FreeValue(ctx, s);
        if (!c) goto fail;
        v[i] = js_strdup(ctx, c);
        JS_FreeCString(ctx, c);
        if (!v[i]) goto fail;
    }
    return v;
fail:
    for (char **p = v; *p; p++) js_free(ctx, *p);
    js_free(ctx, v);
    return NULL;
}

static void free_strv(JSContext *ctx, char **v) {
    if (!v) return;
    for (char **p = v; *p; p++) js_free(ctx, *p);
    js_free(ctx, v);
}

/*
 * spawn(argv, env, cwd, [stdin, stdout, stderr], mode) → pid, or -errno if it could not start
 * (exec's own errno comes back through a close-on-exec pipe). The child gets default signal
 * dispositions and an empty mask (PID 1 blocks signals for its signalfd), only fds 0–2, and
 * mode 0: its own process group; 1: its own session, with stdin as its controlling terminal
 * where stdin is a terminal. PATH is looked up in the child's own environment.
 */
static JSValue js_spawn(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    int fds[3], mode;
    for (int i = 0; i < 3; i++) {
        JSValue v = JS_GetPropertyUint32(ctx, argv[3], i);
        int bad = JS_ToInt32(ctx, &fds[i], v);
        JS_FreeValue(ctx, v);
        if (bad) return JS_EXCEPTION;
    }
    if (JS_ToInt32(ctx, &mode, argv[4])) return JS_EXCEPTION;
    char **args = to_strv(ctx, argv[0]), **env = to_strv(ctx, argv[1]);
    const char *cwd = JS_ToCString(ctx, argv[2]);
    JSValue ret;
    int status_pipe[2];
    if (!args || !args[0] || !env || !cwd) {
        ret = JS_NewInt32(ctx, -EINVAL);
    } else if (pipe2(status_pipe, O_CLOEXEC) < 0) {
        ret = ret_errno(ctx, -1);
    } else {
        pid_t pid = fork();
        if (pid == 0) {
            sigset_t none;
            sigemptyset(&none);
            for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
            sigprocmask(SIG_SETMASK, &none, NULL);
            int ok = mode == 0 ? setpgid(0, 0) : setsid();
            if (ok >= 0 && mode == 1 && isatty(fds[0])) ok = ioctl(fds[0], TIOCSCTTY, 1);
            /* Each target fd is taken from a copy above 2, so the three may name one another. */
            int high[3];
            for (int i = 0; ok >= 0 && i < 3; i++) ok = high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            for (int i = 0; ok >= 0 && i < 3; i++) ok = dup2(high[i], i);
            /* Every other fd goes, but the status pipe, which closes itself on exec. */
            int keep = status_pipe[1];
            if (ok >= 0 && keep > 3) syscall(SYS_close_range, 3, keep - 1, 0);
            if (ok >= 0) syscall(SYS_close_range, keep + 1, ~0U, 0);
            if (ok >= 0) ok = chdir(cwd);
            if (ok >= 0) {
                extern char **environ;
                environ = env;
                execvp(args[0], args);
            }
            int err = errno;
            ssize_t w = write(status_pipe[1], &err, sizeof err);
            (void)w;
            _exit(127);
        }
        close(status_pipe[1]);
        if (pid < 0) {
            ret = ret_errno(ctx, -1);
        } else {
            int err = 0;
            ssize_t n;
            do n = read(status_pipe[0], &err, sizeof err); while (n < 0 && errno == EINTR);
            if (n == sizeof err) {
                waitpid(pid, NULL, 0);
                ret = JS_NewInt32(ctx, -err);
            } else {
                ret = JS_NewInt32(ctx, pid);
            }
        }
        close(status_pipe[0]);
    }
    free_strv(ctx, args), free_strv(ctx, env), JS_FreeCString(ctx, cwd);
    return ret;
}

/* ifUp(name): sets IFF_UP on a network interface (the loopback). */
static JSValue js_if_up(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    const char *name = JS_ToCString(ctx, argv[0]);
    if (!name) return JS_EXCEPTION;
    struct ifreq ifr = { 0 };
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    JS_FreeCString(ctx, name);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ret_errno(ctx, -1);
    int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (r >= 0) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    JSValue ret = ret_errno(ctx, r);
    close(fd);
    return ret;
}

static JSValue listen_on(JSContext *ctx, int domain, const struct sockaddr *addr, socklen_t len) {
    int fd = socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return ret_errno(ctx, -1);
    if (bind(fd, addr, len) < 0 || listen(fd, 64) < 0) {
        int err = errno;
        close(fd);
        return JS_NewInt32(ctx, -err);
    }
    return JS_NewInt32(ctx, fd);
}

/* listenVsock(port): a non-blocking AF_VSOCK listener on any CID. */
static JSValue js_listen_vsock(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    uint32_t port;
    if (JS_ToUint32(ctx, &port, argv[0])) return JS_EXCEPTION;
    struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_port = port, .svm_cid = VMADDR_CID_ANY };
    return listen_on(ctx, AF_VSOCK, (struct sockaddr *)&addr, sizeof addr);
}

/* listenUnix(path): a non-blocking Unix stream listener. */
static JSValue js_listen_unix(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    size_t len;
    const char *path = JS_ToCStringLen(ctx, &len, argv[0]);
    if (!path) return JS_EXCEPTION;
    int fits = len < sizeof addr.sun_path;
    if (fits) memcpy(addr.sun_path, path, len + 1);
    JS_FreeCString(ctx, path);
    if (!fits) return JS_NewInt32(ctx, -ENAMETOOLONG);
    return listen_on(ctx, AF_UNIX, (struct sockaddr *)&addr, sizeof addr);
}

/* accept(fd): the next connection, non-blocking and close-on-exec, or -EAGAIN. */
static JSValue js_accept(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    int fd;
    if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
    return ret_errno(ctx, accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

/* shutdownWrite(fd): the peer reads EOF. */
static JSValue js_shutdown_write(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    int fd;
    if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
    return ret_errno(ctx, shutdown(fd, SHUT_WR));
}

static const JSCFunctionListEntry mh_funcs[] = {
    JS_CFUNC_DEF("mount", 5, js_mount),
    JS_CFUNC_DEF("umount", 2, js_umount),
    JS_CFUNC_DEF("power", 1, js_power),
    JS_CFUNC_DEF("sethostname", 1, js_sethostname),
    JS_CFUNC_DEF("clockSettime", 1, js_clock_settime),
    JS_CFUNC_DEF("signalfd", 1, js_signalfd),
    JS_CFUNC_DEF("setNonblock", 1, js_set_nonblock),
    JS_CFUNC_DEF("spawn", 5, js_spawn),
    JS_CFUNC_DEF("ifUp", 1, js_if_up),
    JS_CFUNC_DEF("listenVsock", 1, js_listen_vsock),
    JS_CFUNC_DEF("listenUnix", 1, js_listen_unix),
    JS_CFUNC_DEF("accept", 1, js_accept),
    JS_CFUNC_DEF("shutdownWrite", 1, js_shutdown_write),
};

static int mh_init(JSContext *ctx, JSModuleDef *m) {
    /* A write to a closed peer returns EPIPE rather than killing the init (children get SIG_DFL back). */
    signal(SIGPIPE, SIG_IGN);
    return JS_SetModuleExportList(ctx, m, mh_funcs, countof(mh_funcs));
}

JSModuleDef *js_init_module_mh(JSContext *ctx, const char *module_name) {
    JSModuleDef *m = JS_NewCModule(ctx, module_name, mh_init);
    if (m) JS_AddModuleExportList(ctx, m, mh_funcs, countof(mh_funcs));
    return m;
}
