# uvfio - top-level entry points. Quick start on a fresh Debian 12 machine:
#     make demo     # a live migration of a busy simulated NIC, with a report
#     make test     # build and run every test
#
# Each target installs missing Debian packages (as root; otherwise it prints
# the apt-get line to run), configures build/ with Meson once, and builds
# incrementally: running a target twice redoes nothing.
#
# With CI=true (as .ci/run sets it), make test also runs vfio-mig-ctl and
# the conformance suite on Linux 6.12's own VFIO in a QEMU guest
# (test-kernel), the suites under ASan+UBSan (test-asan) and TSan
# (test-tsan), and the fuzzers (fuzz).

BUILD ?= build
MESON_OPTS ?=
# Build directories of the sanitizer and fuzzing builds.
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
# Seconds each fuzz target runs in make fuzz.
FUZZ_TIME ?= 60
# Parallel build jobs; empty: ninja's default. On a shared machine: JOBS=2.
JOBS ?=
NINJA := ninja $(if $(JOBS),-j$(JOBS))

# Everything the build, the tests and the benchmarks need, by Debian name.
# The QEMU tests (tests/qemu) run Debian's own, unmodified QEMU 7.2 under
# uvfio-run: qemu-system-x86 (qemu-system-x86_64, with SeaBIOS); their
# Linux guest boots from an initramfs made of busybox-static's /bin/busybox
# (its devmem reaches the device, its cpio packs the initramfs). The
# guest's kernel is Debian's linux-image-6.12 package, which the test
# fetches itself with apt-get download into $(BUILD)/tests/qemu/cache/.
DEB_PACKAGES := meson ninja-build pkg-config gcc g++ \
	liburing-dev libgtest-dev libgmock-dev libbenchmark-dev \
	libcli11-dev nlohmann-json3-dev libfmt-dev libxxhash-dev scdoc \
	qemu-system-x86 busybox-static

# The fuzzers only (make fuzz, and make test with CI=true): clang with its
# libFuzzer runtime (libclang_rt.fuzzer is in libclang-rt-14-dev), and llvm
# for llvm-symbolizer, which turns sanitizer reports into file:line stacks.
# gcc's sanitizer runtimes (ASan, UBSan, TSan) come with gcc itself.
FUZZ_DEB_PACKAGES := clang libclang-rt-14-dev llvm

# make test-kernel only (and make test with CI=true): Debian's Linux 6.12
# packages are fetched with apt-get download and unpacked with dpkg-deb
# into $(BUILD)/tests/ (never installed), and the kernel's mtty sample is
# built against them on this machine. kmod: modinfo reads each module's
# dependencies (the image package ships no modules.dep; depmod makes it
# at install). xz-utils: the modules are .ko.xz, mtty.c comes out of a
# .tar.xz. gcc-12 and make: the compiler the headers name and kbuild;
# pahole: kbuild's BTF step for the module (Debian's linux-kbuild depends
# on it; it brings libelf1 and zlib1g, which kbuild's resolve_btfids needs).
KERNEL_DEB_PACKAGES := kmod xz-utils gcc-12 make pahole

# The libFuzzer targets in tests/fuzz/.
FUZZ_TARGETS := uapi dma-logging mig-stream

# Sanitizer runtime options: any report fails the run.
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
# Sanitized code runs several times slower; the per-test timeouts are guards
# against hangs, not assertions on time.
SAN_TEST := meson test --print-errorlogs --num-processes 2 --timeout-multiplier 4

.PHONY: all deps deps-fuzz deps-kernel build demo test test-kernel test-asan \
	test-tsan fuzz bench clean

all: build

# $(call install_missing,PACKAGES): apt-get install whichever are missing.
define install_missing
	@missing=""; \
	for p in $(1); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | \
			grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "uvfio: missing Debian packages; run as root:"; \
			echo "  apt-get update && apt-get install -y$$missing"; \
			exit 1; \
		fi; \
		echo "uvfio: installing$$missing"; \
		apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends$$missing </dev/null; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PACKAGES))

deps-fuzz:
	$(call install_missing,$(FUZZ_DEB_PACKAGES))

deps-kernel:
	$(call install_missing,$(KERNEL_DEB_PACKAGES))

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD)

# A live migration of a busy simulated NIC with pre-copy, and its report.
# Exit 3 is a verified migration that missed its downtime budget (a
# warning, vfio-mig-ctl(1)): on a busy machine that is the demo's result,
# not its failure.
demo: build
	./$(BUILD)/tools/vfio-mig-ctl migrate --workload \
		simnic,bdf=0000:00:02.0,mem=64M,seed=1 \
		simnic,bdf=0000:00:03.0,mem=64M; \
	rc=$$?; [ $$rc = 0 ] || [ $$rc = 3 ] || exit $$rc

test: build
	meson test -C $(BUILD) --print-errorlogs --num-processes 2
ifeq ($(CI),true)
	$(MAKE) test-kernel
	$(MAKE) test-asan
	$(MAKE) test-tsan
	$(MAKE) fuzz
endif

# vfio-mig-ctl (info, fsm, save, load, conformance) on the kernel's own VFIO
# and mtty sample: Debian's Linux 6.12 under QEMU (TCG), from an initramfs
# (tests/kernel/run.sh says what passes). Downloads once, into
# $(BUILD)/tests/qemu/cache/ and $(BUILD)/tests/kernel/cache/; the guest's
# reports stay in $(BUILD)/tests/kernel/results/. Exit status 77 is a skip
# (UVFIO_QEMU_SKIP, or offline with UVFIO_GUEST_OFFLINE=skip).
test-kernel: build deps-kernel
	@rc=0; tests/kernel/run.sh $(BUILD) || rc=$$?; \
	[ $$rc -eq 0 ] || [ $$rc -eq 77 ]

# Sanitizer builds are -O0 (buildtype=debug): instrumented -O2 compiles
# four to five times slower, which costs CI far more than the slower runs.
SAN_SETUP := meson setup -Dbuildtype=debug -Db_lundef=false

# Every suite under AddressSanitizer (leaks included) and UBSan.
$(ASAN_BUILD)/build.ninja: | deps
	$(SAN_SETUP) $(ASAN_BUILD) -Db_sanitize=address,undefined

test-asan: deps $(ASAN_BUILD)/build.ninja
	$(NINJA) -C $(ASAN_BUILD)
	$(ASAN_ENV) $(SAN_TEST) -C $(ASAN_BUILD)

# Every suite under ThreadSanitizer.
$(TSAN_BUILD)/build.ninja: | deps
	$(SAN_SETUP) $(TSAN_BUILD) -Db_sanitize=thread

test-tsan: deps $(TSAN_BUILD)/build.ninja
	$(NINJA) -C $(TSAN_BUILD)
	$(TSAN_ENV) $(SAN_TEST) -C $(TSAN_BUILD)

# Each libFuzzer target for FUZZ_TIME seconds, from its committed seeds
# (tests/fuzz/corpus/T/) plus what earlier runs found ($(FUZZ_BUILD)/corpus/T/).
# A crash leaves its input in $(FUZZ_BUILD)/artifacts/ and fails the target;
# it belongs in tests/fuzz/regress/T/ once fixed.
$(FUZZ_BUILD)/build.ninja: | deps deps-fuzz
	CC=clang CXX=clang++ meson setup $(FUZZ_BUILD) -Dfuzzing=true \
		-Db_sanitize=address,undefined -Db_lundef=false

fuzz: deps deps-fuzz $(FUZZ_BUILD)/build.ninja
	$(NINJA) -C $(FUZZ_BUILD) $(addprefix tests/fuzz/fuzz-,$(FUZZ_TARGETS))
	mkdir -p $(FUZZ_BUILD)/artifacts
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
		echo "fuzz-$$t: $(FUZZ_TIME) s"; \
		$(ASAN_ENV) ./$(FUZZ_BUILD)/tests/fuzz/fuzz-$$t \
			-max_total_time=$(FUZZ_TIME) -timeout=30 \
			-print_final_stats=1 \
			-artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- \
			$(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t; \
	done

bench: build
	./$(BUILD)/tests/bench/uvfio-bench
	./$(BUILD)/tests/bench/uvfio-bench-stream --device testdev --runs 3
	tests/bench/bench_stream.sh $(BUILD)/tests/bench/uvfio-bench-stream 3
	./$(BUILD)/tests/bench/uvfio-bench-downtime
	tests/bench/bench_save.sh $(BUILD)/tools/vfio-mig-ctl
	./$(BUILD)/tests/bench/uvfio-bench-report
	tests/bench/bench_preload.sh $(BUILD)/tools/uvfio-run/uvfio-run \
		$(BUILD)/tests/bench/bench-preload \
		$(BUILD)/tests/bench/bench-preload-uvfio

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
