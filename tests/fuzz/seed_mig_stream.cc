// SPDX-License-Identifier: GPL-2.0-only
/*
 * Writes the seeds of the mig-stream fuzz target into a directory: for each
 * device of fuzz_mig_stream.h, the STOP_COPY stream of a device whose
 * memory a seed filled, saved through the syscall surface, behind the
 * selector byte that loads it into the same device (with and without
 * checksum fix-ups). The committed corpus/mig-stream/ came from
 *     build/tests/fuzz/fuzz-seed-mig-stream tests/fuzz/corpus/mig-stream
 */
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <uvfio/uvfio.h>

#include "fuzz_mig_stream.h"
#include "fuzz_util.h"

using namespace uvfio_fuzz;

namespace {

int set_state(int fd, uint32_t state, int *data_fd)
{
	return -mig_device_state(fd, true, &state, data_fd);
}

int save(const std::string &spec, std::vector<unsigned char> *out)
{
	const char *bdf = "0000:00:09.0";
	std::string full = spec + ",bdf=" + bdf + ",seed=7";
	if (uvfio_sim_add(full.c_str()))
		return -errno;
	int fd = uvfio_open(bdf), data_fd = -1, ret;
	if (fd < 0)
		return -errno;
	ret = set_state(fd, VFIO_DEVICE_STATE_STOP_COPY, &data_fd);
	if (!ret) {
		unsigned char buf[4096];
		ssize_t n;
		while ((n = uvfio_read(data_fd, buf, sizeof(buf))) > 0)
			out->insert(out->end(), buf, buf + n);
		if (n < 0)
			ret = -errno;
		uvfio_close(data_fd);
	}
	uvfio_close(fd);
	uvfio_sim_remove(bdf);
	return ret;
}

} // namespace

int main(int argc, char **argv)
{
	if (argc != 2) {
		std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	const char *names[] = {"testdev", "simnic"};
	for (unsigned d = 0; d < 2; d++) {
		std::vector<unsigned char> s;
		int ret = save(mig_stream_specs[d], &s);
		if (ret) {
			std::fprintf(stderr, "%s: %s\n", names[d],
				     std::strerror(-ret));
			return 1;
		}
		for (unsigned char fix : {0, 1}) {
			unsigned char sel = static_cast<unsigned char>(
				d | (fix ? MIG_SEL_FIX_HASH : 0));
			std::string path = std::string(argv[1]) + "/" +
					   names[d] + (fix ? "-fix" : "");
			FILE *f = std::fopen(path.c_str(), "wb");
			if (!f || std::fwrite(&sel, 1, 1, f) != 1 ||
			    std::fwrite(s.data(), 1, s.size(), f) != s.size() ||
			    std::fclose(f)) {
				std::perror(path.c_str());
				return 1;
			}
			std::printf("%s: %zu bytes\n", path.c_str(), s.size() + 1);
		}
	}
	return 0;
}
