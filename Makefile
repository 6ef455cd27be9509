# Build, boot, test and benchmark the kernel. `make run` and `make test` are
# all a newcomer types: both run `make setup` first, which installs what is
# missing (Debian's QEMU, the pinned Rust toolchain and its bare-metal target).

SHELL      := /bin/bash
TARGET     := x86_64-unknown-none
PROFILE    ?= release
BUILD      := build
KERNEL_ELF := target/$(TARGET)/$(PROFILE)/kernel
KERNEL     := $(BUILD)/kernel.elf
# The test kernel: the same kernel with its in-QEMU tests and benchmarks
# (the `ktest` feature), in a target directory of its own so that the two
# never rebuild each other.
TEST_KERNEL_ELF := target/ktest/$(TARGET)/$(PROFILE)/kernel
TEST_KERNEL := $(BUILD)/kernel-test.elf
# The signed boot archive of domain images (`make images`), and the key it
# is signed with: generated on first use unless you supply your own.
ARCHIVE    ?= $(BUILD)/domains.cpio
DOMAIN_KEY ?= $(BUILD)/keys/domain.key
# Domains the kernel starts at boot (written into the signed manifest),
# e.g. START="counter checksum client".
START      ?=
export START
# The NVMe scratch disk QEMU attaches (made by `make disk`, 64 MiB of zeros).
DISK       ?= $(BUILD)/nvme.img
NVME_OPTS  := -drive file=$(DISK),if=none,id=nvm,format=raw -device nvme,serial=nvme0,drive=nvm
# `make run` boots into rv6's shell (RV6=1, the default) on an rv6 file
# system image (made by tools/rv6-image.sh from the programs the build
# packs; kept across runs while the programs do not change); RV6=0 boots
# to the kernel monitor with the scratch disk.
RV6        ?= 1
RV6_IMAGE  ?= $(BUILD)/rv6.img
RUN_NVME_OPTS = $(if $(filter 1,$(RV6)),-drive file=$(RV6_IMAGE)$(comma)if=none$(comma)id=nvm$(comma)format=raw -device nvme$(comma)serial=nvme0$(comma)drive=nvm,$(NVME_OPTS))

# Knobs for `make run` (see README): cores, memory, kernel command line,
# extra QEMU options.
SMP       ?= 2
MEM       ?= 512M
CMDLINE   ?=
QEMU_OPTS ?=
# In-QEMU test boots, as SMP:MEMORY[:iommu] (iommu: with QEMU's VT-d).
TEST_CONFIGS ?= 4:512M:iommu:pit,1:128M:nopit,2:4G:x2apic

QEMU := qemu-system-x86_64
# IOMMU=1 (the default for `make run`): QEMU's Intel VT-d, which the kernel
# uses to confine every device's DMA to the shared heap. IOMMU=0 runs
# without (drivers are then confined only by which devices they may claim).
IOMMU ?= 1
comma := ,
IOMMU_OPTS := $(if $(filter 1,$(IOMMU)),-device intel-iommu$(comma)intremap=off,)
QEMU_BASE := -machine q35 -cpu max -display none -no-reboot -nic none \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04

CARGO_PROFILE_FLAG := $(if $(filter release,$(PROFILE)),--release,)

.PHONY: bench-apps plots iso all setup images disk build test-kernel run rv6-image test host-test qemu-test lint bench fuzz soak clean new-domain push netns-down

all: build

setup:
	@QEMU=$(QEMU) bash tools/setup-qemu.sh
	@if ! rustup run 1.95.0 rustc --version >/dev/null 2>&1; then \
		echo "setup: installing the pinned Rust toolchain"; rustup toolchain install; \
	fi
	@if ! rustup target list --installed 2>/dev/null | grep -q '^$(TARGET)$$'; then \
		echo "setup: adding the $(TARGET) target"; rustup target add $(TARGET); \
	fi
	@if ! rustup component list --installed 2>/dev/null | grep -q '^clippy'; then \
		rustup component add clippy rustfmt >/dev/null 2>&1 || true; \
	fi
	@# rv6's xv6-profile images are checked against an independent reader
	@# (the PyPI package xv6-filesystem-reader), kept under build/pylib.
	@if [ ! -f $(BUILD)/pylib/reader.py ]; then \
		echo "setup: installing xv6-filesystem-reader into $(BUILD)/pylib"; \
		python3 -m pip --version >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
			$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-pip >/dev/null; }; \
		python3 -m pip install --quiet --disable-pip-version-check --no-deps --target $(BUILD)/pylib xv6-filesystem-reader==0.2.0 2>&1 | grep -v "as the 'root' user" || true; \
	fi
	@# The clients the application tests drive: curl (httpd), memccapable
	@# and memcslap (kvstore, from libmemcached-tools).
	@if ! command -v memccapable >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then \
		echo "setup: installing curl and libmemcached-tools"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq curl libmemcached-tools >/dev/null; \
	fi
	@# Boot images for real machines (make iso) and their tests under
	@# SeaBIOS and OVMF: GRUB for BIOS and UEFI, xorriso, mtools, OVMF.
	@if ! command -v grub-mkrescue >/dev/null 2>&1 || ! command -v xorriso >/dev/null 2>&1 \
		|| ! command -v mformat >/dev/null 2>&1 || [ ! -d /usr/lib/grub/i386-pc ] \
		|| [ ! -d /usr/lib/grub/x86_64-efi ] || [ ! -f /usr/share/OVMF/OVMF_CODE_4M.fd ]; then \
		echo "setup: installing GRUB (BIOS and UEFI), xorriso, mtools and OVMF"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			grub-pc-bin grub-efi-amd64-bin xorriso mtools ovmf >/dev/null; \
	fi

# Every domain as its own image, packed with a signed manifest.
images: setup
	bash tools/build-images.sh $(BUILD) $(DOMAIN_KEY)

# A rebuilt archive of domain images into the kernel `make run` started
# (over its second serial port, the socket below): `load`/`restart` then
# use the new images, no reboot (see docs/authoring-domains.md).
PUSH_SOCK := $(BUILD)/push.sock
# The NIC: NIC=igb (QEMU's Intel 82576, the default) or NIC=virtio
# (virtio-net, modern only); NIC=none for no NIC. NET=user (the default)
# joins it to QEMU's user network with forwards from this host's
# 127.0.0.1 into the guest (10.0.2.15): TCP and UDP ECHO_PORT -> 7 (the
# netstack domain's echo), HTTP_PORT -> 80, KV_PORT -> 11211. NET=frames
# joins it instead to UDP sockets on 127.0.0.1, one datagram per Ethernet
# frame: the guest's NIC takes frames on NIC_PORT and sends its own to
# NIC_PORT + 1 (tools/frames.py is that other end, for l2echo). NET=tap
# puts QEMU, with a tap device, inside a network namespace of our own
# (NETNS, made by tools/netns.sh: tap TAP at 10.0.4.1/24; the guest takes
# 10.0.4.15 unless CMDLINE says net=): run load generators in it with
# `tools/netns.sh exec CMD` (as root); `make netns-down` removes it.
NIC ?= igb
NET ?= user
ECHO_PORT ?= 5555
HTTP_PORT ?= 8080
KV_PORT ?= 11211
NIC_PORT ?= 5600
NIC_FRAMES := -netdev dgram$(comma)id=n0$(comma)local.type=inet$(comma)local.host=127.0.0.1$(comma)local.port=$(NIC_PORT)$(comma)remote.type=inet$(comma)remote.host=127.0.0.1$(comma)remote.port=$(shell echo $$(($(NIC_PORT) + 1)))
NIC_USER := -netdev user$(comma)id=n0$(comma)net=10.0.2.0/24$(comma)hostfwd=tcp:127.0.0.1:$(ECHO_PORT)-:7$(comma)hostfwd=udp:127.0.0.1:$(ECHO_PORT)-:7$(comma)hostfwd=tcp:127.0.0.1:$(HTTP_PORT)-:80$(comma)hostfwd=tcp:127.0.0.1:$(KV_PORT)-:11211$(comma)hostfwd=udp:127.0.0.1:$(KV_PORT)-:11211
NETNS ?= redleaf
TAP ?= rltap0
NIC_TAP := -netdev tap$(comma)id=n0$(comma)ifname=$(TAP)$(comma)script=no$(comma)downscript=no
NIC_NETDEV := $(if $(filter frames,$(NET)),$(NIC_FRAMES),$(if $(filter tap,$(NET)),$(NIC_TAP),$(NIC_USER)))
# NET=tap: QEMU runs inside the namespace, and the guest's address is set.
RUN_IN := $(if $(filter tap,$(NET)),ip netns exec $(NETNS),)
RUN_CMDLINE := $(if $(filter 1,$(RV6)),rv6=1 httpd_root=/www )$(if $(filter tap,$(NET)),$(if $(findstring net=,$(CMDLINE)),,net=10.0.4.15/24$(comma)gw=10.0.4.1 ))$(CMDLINE)
NIC_OPTS := $(if $(filter igb,$(NIC)),$(NIC_NETDEV) -device igb$(comma)netdev=n0,)$(if $(filter virtio,$(NIC)),$(NIC_NETDEV) -device virtio-net-pci$(comma)disable-legacy=on$(comma)netdev=n0,)
netns-down:
	@NETNS=$(NETNS) bash tools/netns.sh down

push: images
	@python3 tools/push.py $(ARCHIVE) $(PUSH_SOCK)

# A new domain from a working skeleton (see docs/authoring-domains.md):
#   make new-domain NAME=x [CLIENT=1] [INTERFACE=1]
new-domain:
	@python3 tools/new-domain.py "$(NAME)" $(if $(CLIENT),--client) $(if $(INTERFACE),--interface)

disk:
	@mkdir -p $(BUILD)
	@[ -f $(DISK) ] || truncate -s 64M $(DISK)

# rv6's file-system image (see RV6 above); FRESH=1 makes it again.
rv6-image: images
	@bash tools/rv6-image.sh $(RV6_IMAGE) $(BUILD)/programs

# The kernel embeds the public half of the signing key, so images come first.
build: setup images
	DOMAIN_PUBKEY=$(abspath $(BUILD)/keys/domain.pub) cargo build -p kernel --target $(TARGET) $(CARGO_PROFILE_FLAG)
	@mkdir -p $(BUILD)
	@cp $(KERNEL_ELF) $(KERNEL)

test-kernel: setup images
	DOMAIN_PUBKEY=$(abspath $(BUILD)/keys/domain.pub) cargo build -p kernel --target $(TARGET) $(CARGO_PROFILE_FLAG) --features ktest --target-dir target/ktest
	@mkdir -p $(BUILD)
	@cp $(TEST_KERNEL_ELF) $(TEST_KERNEL)

# Serial console on this terminal. Leave with `shutdown`, or Ctrl-A then X.
# `shutdown` powers off through ACPI (status 0); if ACPI is unavailable the
# kernel uses the debug-exit device, whose status 33 we report as 0 too.
run: build disk $(if $(filter 1,$(RV6)),rv6-image,)
	@echo "Booting ($(SMP) cpus, $(MEM)). $(if $(filter 1,$(RV6)),rv6's shell on $(RV6_IMAGE): try 'ls /bin'; 'monitor help' for the kernel monitor; leave with 'monitor shutdown' or Ctrl-A X.,Type 'help'; leave with 'shutdown' or Ctrl-A X.)"
	@rm -f $(PUSH_SOCK)
	@if [ -n "$(NIC_OPTS)" ] && [ "$(NET)" = frames ]; then echo "NIC: $(NIC) on UDP 127.0.0.1:$(NIC_PORT) (frames from the guest to port $$(($(NIC_PORT) + 1)): tools/frames.py)"; fi
	@if [ -n "$(NIC_OPTS)" ] && [ "$(NET)" = tap ]; then NETNS=$(NETNS) TAP=$(TAP) bash tools/netns.sh up && echo "NIC: $(NIC) on tap $(TAP) in network namespace $(NETNS) (10.0.4.1); the guest is 10.0.4.15. Type: load $(if $(filter virtio,$(NIC)),virtio-net,igb), then load netstack, load echo; from another terminal: NETNS=$(NETNS) tools/netns.sh exec socat - TCP:10.0.4.15:7"; fi
	@if [ -n "$(NIC_OPTS)" ] && [ "$(NET)" = user ]; then echo "NIC: $(NIC), user network; 127.0.0.1:$(ECHO_PORT) -> echo (TCP, UDP), :$(HTTP_PORT) -> 80, :$(KV_PORT) -> 11211. Type: load $(if $(filter virtio,$(NIC)),virtio-net,igb), then load netstack"; fi
	@$(RUN_IN) $(QEMU) $(QEMU_BASE) $(IOMMU_OPTS) -smp $(SMP) -m $(MEM) -serial mon:stdio \
		-serial unix:$(PUSH_SOCK),server=on,wait=off $(NIC_OPTS) -kernel $(KERNEL) \
		-initrd $(ARCHIVE) $(RUN_NVME_OPTS) -append "$(RUN_CMDLINE)" $(QEMU_OPTS); status=$$?; \
		if [ $$status -eq 33 ]; then status=0; fi; exit $$status

host-test: setup
	RV6_REQUIRE_XV6READER=1 cargo test --workspace --exclude kernel 2>&1 | tee $(BUILD)/host-tests.log

qemu-test: build test-kernel disk
	python3 tools/qemu-test.py $(KERNEL) --test-kernel $(TEST_KERNEL) --archive $(ARCHIVE) --key $(DOMAIN_KEY) --disk $(DISK) --configs $(TEST_CONFIGS) 2>&1 | tee $(BUILD)/qemu-tests.log

lint: setup
	cargo fmt --all --check
	cargo clippy --workspace --exclude kernel --all-targets -- -D warnings
	cargo clippy -p kernel --target $(TARGET) -- -D warnings
	cargo clippy -p kernel --target $(TARGET) --features ktest --target-dir target/ktest -- -D warnings

# Host tests, lint, then the in-QEMU suites; ends with `N passed, N failed`.
test: setup disk
	@mkdir -p $(BUILD)
	@bash tools/test-all.sh "$(KERNEL)" "$(TEST_CONFIGS)" "$(CARGO_PROFILE_FLAG)" "$(ARCHIVE)" "$(DOMAIN_KEY)" "$(DISK)"

# The fault campaign at length: SOAK_FAULTS random faults (default 10,000)
# of every kind into services, clients, the NVMe driver under its shadow and
# the RAM disk on 4 cores, with verifying workloads; then every domain is
# killed and memory checked to the byte. Serial log in build/soak.log.
# SOAK_MODE=mid (the default) arms each fault for the timer tick first, so
# it strikes at whatever instruction the domain is at, falling back to the
# next entry for a domain that rarely runs; SOAK_MODE=entry raises every
# fault at an entry (see docs/reliability.md).
SOAK_FAULTS ?= 10000
SOAK_MODE ?= mid
soak: build disk
	python3 tools/qemu-test.py $(KERNEL) --archive $(ARCHIVE) --disk $(DISK) --soak $(SOAK_FAULTS) --storm-mode $(SOAK_MODE) --storm-log $(BUILD)/soak.log 2>&1 | tee $(BUILD)/soak-result.log; exit $${PIPESTATUS[0]}

# Coverage-guided fuzzing on the stable toolchain (AFL++ via cargo-afl,
# installed on first use): each target for FUZZ_SECONDS (default 60).
fuzz: setup
	bash tools/fuzz.sh

# Host rows: three runs pinned to the last core (best of three per row,
# with the range), instruction counts from callgrind; QEMU rows: three
# boots (QEMU unpinned; QEMU_BENCH_PIN=1 pins it: see docs/benchmarks.md).
BENCH_CORE := $(shell echo $$(( $$(nproc) - 1 )))
# The host benchmarks are built with `--cfg rrpc_gs`: `rrpc` then reads the
# per-core words through GS as in the kernel (the binaries point GS at a
# record laid out like the kernel's), so the timed code is the kernel's
# instruction sequence. Its own target directory (the flag changes every
# crate's build).
BENCH_BIN := target/bench/release
BENCH_BUILD := RUSTFLAGS="--cfg rrpc_gs" cargo build -p bench --release --target-dir target/bench
bench: build test-kernel disk
	@if ! command -v valgrind >/dev/null 2>&1; then \
		echo "bench: installing valgrind (instruction counts)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq valgrind >/dev/null; \
	fi
	@mkdir -p bench/results
	$(BENCH_BUILD)
	taskset -c $(BENCH_CORE) $(BENCH_BIN)/bench --runs 3 --instructions --out bench/results/host.json
	python3 tools/qemu-bench.py $(TEST_KERNEL) bench/results/qemu.json $(ARCHIVE) $(DISK) --repeat 3
	python3 tools/net-bench.py $(KERNEL) $(ARCHIVE) bench/results/net.json --rounds 3
	python3 tools/rv6-bench.py $(KERNEL) $(ARCHIVE) bench/results/rv6.json --rounds 5 --crash-rounds 3
	taskset -c $(BENCH_CORE) $(BENCH_BIN)/hashtable --max 26 --runs 5 --out bench/results/hashtable.json
	taskset -c $(BENCH_CORE) $(BENCH_BIN)/apps --runs 5 --out bench/results/apps-host.json

# The applications against their baselines (docs/evaluation.md): the
# host-native cores against C, Maglev's packet rates in QEMU, and httpd and
# kvstore against nginx and memcached in a Linux guest under the same QEMU.
bench-apps: build
	@missing=""; \
	for tool in wrk:wrk cpio:cpio objcopy:binutils readelf:binutils; do \
		command -v $${tool%%:*} >/dev/null 2>&1 || missing="$$missing $${tool#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "bench-apps: installing$$missing (load generator; the Linux guest's build)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	bash bench/linux-guest/build.sh $(BUILD)/linux-guest
	$(BENCH_BUILD)
	taskset -c $(BENCH_CORE) $(BENCH_BIN)/apps --runs 5 --out bench/results/apps-host.json
	python3 tools/maglev-bench.py $(KERNEL) $(ARCHIVE) bench/results/maglev.json --rounds 3
	python3 tools/apps-bench.py $(KERNEL) $(ARCHIVE) bench/results/apps-qemu.json --rounds 3

# A hybrid BIOS/UEFI boot image for real machines (docs/bare-metal.md):
# GRUB loads the kernel through multiboot2, the domain archive as a module.
ISO ?= $(BUILD)/redleaf.iso
iso: build test-kernel
	bash tools/make-iso.sh $(ISO) $(KERNEL) $(ARCHIVE) $(TEST_KERNEL)

# docs/plots/*.svg from bench/results/*.json (docs/evaluation.md shows them).
plots:
	python3 tools/plots.py bench/results docs/plots

clean:
	cargo clean
	rm -rf $(BUILD)
