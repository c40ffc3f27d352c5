# my_hypervisor: `make run` and `make test` work on a fresh clone with Node 20 and npm.
.PHONY: all deps install build run test typecheck lint unit clean initramfs test-kvm bench bench-quick

RUN_DIR := .run

all: build

# Reinstall only when the manifests change: exactly the locked versions, and the lockfile left as committed.
node_modules/.install-stamp: package.json package-lock.json packages/*/package.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.install-stamp

build: deps
	npm run build
	@chmod +x packages/daemon/dist/my_hypervisor-daemon.mjs packages/ch-sim/dist/main.js packages/siblings/dist/netd.js packages/siblings/dist/vold.js

# The binaries, systemd units and docs under PREFIX (default /usr/local); DESTDIR stages them for a package.
PREFIX ?= /usr/local
install: build
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" scripts/install.sh

# The daemon in the foreground with the test VMM, sockets under ./.run/.
run: build
	scripts/run-dev.sh $(RUN_DIR)

# The tests, and the bench against the typed client (tsconfig.bench.json: JavaScript, checked loosely).
typecheck: build
	npx tsc -p tsconfig.test.json --noEmit
	npx tsc -p tsconfig.bench.json

lint: deps
	npx biome check .
	scripts/lint-workflows.sh

unit: build
	@mkdir -p $(RUN_DIR)
	npx vitest run --reporter=default --reporter=json --outputFile=$(RUN_DIR)/test-results.json

# Type-check and lint are part of the test run.
test: typecheck lint unit

# The guest image: my_hypervisor-init as /init and busybox (scripts/build-initramfs.sh). `make build` builds the
# init itself (scripts/build-init.sh: Debian's QuickJS source, musl-gcc, cached under .run/).
initramfs: build
	scripts/build-initramfs.sh -o $(RUN_DIR)/initramfs.cpio.gz

# On a KVM host (.github/workflows/kvm.yml): the guest end-to-end suite on the real cloud-hypervisor with a real
# guest (exec, console, power button, reboot, snapshot and restore), and the conformance test and the lifecycle suite
# on that binary too:
#   make test-kvm CLOUD_HYPERVISOR=/usr/bin/cloud-hypervisor KERNEL=/path/to/vmlinux
# The kernel needs virtio-vsock built in for exec (scripts/build-guest-kernel.sh). Skips with the reason where
# something is missing.
CLOUD_HYPERVISOR ?= $(shell command -v cloud-hypervisor)
KERNEL ?=
test-kvm: initramfs
	MH_TEST_VMM="$(CLOUD_HYPERVISOR)" MH_TEST_KERNEL="$(KERNEL)" MH_TEST_INITRAMFS="$(abspath $(RUN_DIR))/initramfs.cpio.gz" \
	  MH_REAL_CH="$(CLOUD_HYPERVISOR)" \
	  npx vitest run packages/daemon/test/guest-e2e.test.ts packages/ch-sim/test/conformance.test.ts packages/daemon/test/vmm-matrix.test.ts

# The daemon's cost against baselines measured in the same run (docs/benchmarks.md).
bench: build
	node bench/bench.mjs

# A smoke run of the same suite (tiny sizes, a few seconds): CI runs it so the suite cannot rot.
bench-quick: build
	node bench/bench.mjs --quick

clean:
	rm -rf node_modules packages/*/dist packages/*/tsconfig.tsbuildinfo packages/lib/src/ch/api.generated.ts packages/client/src/api.generated.ts $(RUN_DIR)
