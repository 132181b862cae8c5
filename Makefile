# uvfio - top-level entry points. Quick start on a fresh Debian 12 machine:
#     make demo     # a live migration of a busy simulated NIC, with a report
#     make test     # build and run every test
#
# Each target installs missing Debian packages (as root; otherwise it prints
# the apt-get line to run), configures build/ with Meson once, and builds
# incrementally: running a target twice redoes nothing.

BUILD ?= build
MESON_OPTS ?=

# Everything the build, the tests and the benchmarks need, by Debian name.
DEB_PACKAGES := meson ninja-build pkg-config gcc g++ \
	liburing-dev libgtest-dev libgmock-dev libbenchmark-dev \
	libcli11-dev nlohmann-json3-dev libfmt-dev libxxhash-dev scdoc

.PHONY: all deps build demo test bench clean

all: build

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
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

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# A live migration of a busy simulated NIC with pre-copy, and its report.
demo: build
	./$(BUILD)/tools/vfio-mig-ctl migrate --workload \
		simnic,bdf=0000:00:02.0,mem=64M,seed=1 \
		simnic,bdf=0000:00:03.0,mem=64M

test: build
	meson test -C $(BUILD) --print-errorlogs --num-processes 2

bench: build
	./$(BUILD)/tests/bench/uvfio-bench
	./$(BUILD)/tests/bench/uvfio-bench-stream
	./$(BUILD)/tests/bench/uvfio-bench-downtime

clean:
	rm -rf $(BUILD)
