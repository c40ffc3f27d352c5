// Each vsock connection holds a thread-pool thread while it waits to read (see agent-listener.ts).
// libuv sizes the pool on first use, so this module is imported before any other.
process.env.UV_THREADPOOL_SIZE ??= "64";
