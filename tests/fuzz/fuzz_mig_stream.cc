// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzz target: the migration stream loaders of testdev and simnic.
 *
 * Contract (DESIGN.md, "Errors and bad input"): any bytes written to a
 * RESUMING data fd are either a stream the device loads (RESUMING -> STOP
 * succeeds and the device is in STOP) or are rejected with an errno - by
 * a write, when the driver refused the stream header, and then by
 * RESUMING -> STOP, or by RESUMING -> STOP alone - the device left in
 * ERROR or in RESUMING, never STOP or running. Either way
 * VFIO_DEVICE_RESET brings it back to RUNNING, from where it can be
 * driven again (here: to STOP and back).
 *
 * The input's first byte picks the device and options (fuzz_mig_stream.h);
 * the seeds in corpus/mig-stream/ are real saved streams, made by
 * fuzz-seed-mig-stream (run it again when a driver's stream format
 * changes: a stream of an older version is refused at its header, and
 * the fuzzer would get no further). Each input gets a new device, removed
 * after it.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <xxhash.h>

#include <uvfio/uvfio.h>

#include "fuzz_mig_stream.h"
#include "fuzz_util.h"

using namespace uvfio_fuzz;

namespace {

const char *const bdf = "0000:00:08.0";

/* The record header both drivers use (drivers/common/mig_rec.h). */
struct rec_header {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint64_t offset;
	uint32_t length;
	uint32_t seq;
	uint64_t hash;
};
static_assert(sizeof(rec_header) == 32);

/*
 * Give every complete record the checksum its header and payload call
 * for: the XXH3-64 of the payload, seeded with the XXH3-64 of the header
 * up to the hash.
 */
void fix_hashes(std::vector<uint8_t> &s)
{
	size_t off = 0;
	while (s.size() - off >= sizeof(rec_header)) {
		rec_header h;
		std::memcpy(&h, s.data() + off, sizeof(h));
		if (h.length > s.size() - off - sizeof(h))
			break;
		uint64_t seed = XXH3_64bits(&h, offsetof(rec_header, hash));
		h.hash = XXH3_64bits_withSeed(s.data() + off + sizeof(h),
					      h.length, seed);
		std::memcpy(s.data() + off, &h, sizeof(h));
		off += sizeof(h) + h.length;
	}
}

/* MIG_DEVICE_STATE SET: 0 or the errno; *data_fd gets the stream's fd. */
int set_state(int fd, uint32_t state, int *data_fd)
{
	int new_fd = -1;
	int err = mig_device_state(fd, true, &state, &new_fd);
	if (data_fd)
		*data_fd = new_fd;
	else if (new_fd >= 0)
		FUZZ_CHECK(uvfio_close(new_fd) == 0);
	return err;
}

uint32_t get_state(int fd)
{
	uint32_t state = 0;
	FUZZ_CHECK(mig_device_state(fd, false, &state, nullptr) == 0);
	return state;
}

/* All of s into the data fd; the pump drains it into the driver. */
void write_all(int fd, const std::vector<uint8_t> &s)
{
	size_t off = 0;
	while (off < s.size()) {
		ssize_t n = uvfio_write(fd, s.data() + off, s.size() - off);
		/* The driver refused the stream already: it says so at STOP. */
		if (n < 0)
			return;
		off += static_cast<size_t>(n);
	}
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	uvfio_set_log_level(UVFIO_LOG_ERR - 1);
	return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	uint8_t sel = data[0];
	std::vector<uint8_t> stream(data + 1, data + size);
	if (sel & MIG_SEL_FIX_HASH)
		fix_hashes(stream);

	int fds_before = count_open_fds();
	std::string spec = mig_stream_specs[sel & MIG_SEL_SIMNIC];
	spec += std::string(",bdf=") + bdf;
	FUZZ_CHECK(uvfio_sim_add(spec.c_str()) == 0);
	int fd = uvfio_open(bdf);
	FUZZ_CHECK(fd >= 0);

	int data_fd = -1;
	FUZZ_CHECK(set_state(fd, VFIO_DEVICE_STATE_RESUMING, &data_fd) == 0);
	FUZZ_CHECK(data_fd >= 0);
	write_all(data_fd, stream);
	if (sel & MIG_SEL_CLOSE_FIRST)
		FUZZ_CHECK(uvfio_close(data_fd) == 0);

	int err = set_state(fd, VFIO_DEVICE_STATE_STOP, nullptr);
	uint32_t state = get_state(fd);
	if (getenv("UVFIO_FUZZ_DEBUG"))
		std::fprintf(stderr, "RESUMING -> STOP: %s, state %u\n",
			     err ? std::strerror(err) : "ok", state);
	if (!err)
		FUZZ_CHECK(state == VFIO_DEVICE_STATE_STOP);
	else
		FUZZ_CHECK(state == VFIO_DEVICE_STATE_ERROR ||
			   state == VFIO_DEVICE_STATE_RESUMING);
	if (!(sel & MIG_SEL_CLOSE_FIRST))
		FUZZ_CHECK(uvfio_close(data_fd) == 0);

	/* Whatever the stream did, a reset gives back a working device. */
	FUZZ_CHECK(uvfio_ioctl(fd, VFIO_DEVICE_RESET, nullptr) == 0);
	FUZZ_CHECK(get_state(fd) == VFIO_DEVICE_STATE_RUNNING);
	FUZZ_CHECK(set_state(fd, VFIO_DEVICE_STATE_STOP, nullptr) == 0);
	FUZZ_CHECK(set_state(fd, VFIO_DEVICE_STATE_RUNNING, nullptr) == 0);

	FUZZ_CHECK(uvfio_close(fd) == 0);
	FUZZ_CHECK(uvfio_sim_remove(bdf) == 0);
	FUZZ_CHECK(count_open_fds() == fds_before);
	return 0;
}
