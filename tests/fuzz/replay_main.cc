// SPDX-License-Identifier: GPL-2.0-only
/*
 * The fuzz targets as regression tests, built with the normal compiler:
 * every file in the directories given (the committed seeds and the inputs
 * that once crashed a target) runs through LLVMFuzzerTestOneInput, as
 * libFuzzer would run it. A crash, a sanitizer report or a failed check in
 * the target fails the test; so do an empty list and an unreadable file.
 * Names starting with '.' (.gitkeep) are skipped.
 */
#include <dirent.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv);
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	std::vector<std::string> files;
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		if (!d) {
			std::perror(argv[i]);
			return 1;
		}
		while (struct dirent *e = readdir(d))
			if (e->d_name[0] != '.')
				files.push_back(std::string(argv[i]) + "/" +
						e->d_name);
		closedir(d);
	}
	if (files.empty()) {
		std::fprintf(stderr, "no inputs\n");
		return 1;
	}
	/* One order on every machine: a failure reproduces. */
	std::sort(files.begin(), files.end());

	LLVMFuzzerInitialize(&argc, &argv);
	for (const std::string &f : files) {
		std::ifstream in(f, std::ios::binary);
		if (!in) {
			std::fprintf(stderr, "%s: cannot read\n", f.c_str());
			return 1;
		}
		std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)),
					  std::istreambuf_iterator<char>());
		std::printf("%s (%zu bytes)\n", f.c_str(), data.size());
		std::fflush(stdout);
		LLVMFuzzerTestOneInput(data.data(), data.size());
	}
	std::printf("%zu inputs passed\n", files.size());
	return 0;
}
