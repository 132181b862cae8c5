// SPDX-License-Identifier: GPL-2.0-only
/*
 * uvfio-run: run an unmodified program with simulated VFIO devices.
 *
 *   uvfio-run [--device SPEC]... [--] COMMAND [ARG...]
 *
 * Checks each SPEC by creating (and removing) the device here, so a bad one
 * is a clear error before COMMAND starts; then puts libuvfio-preload.so in
 * COMMAND's LD_PRELOAD, tells it the devices, and executes COMMAND in its
 * place: COMMAND's exit status is uvfio-run's. The devices are created
 * again, inside the process of COMMAND (or of a child it executes) that
 * first touches /dev/vfio or one of their sysfs paths.
 *
 * Exit status of its own, as env(1) and timeout(1): 125 uvfio-run failed
 * (bad option, bad device), 126 COMMAND cannot be executed, 127 not found.
 */
#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <uvfio/uvfio.h>

#include "preload.h"

namespace {

constexpr int EXIT_RUN_FAILED = 125;
constexpr int EXIT_CANNOT_EXEC = 126;
constexpr int EXIT_NOT_FOUND = 127;

const char usage[] =
	"Usage: uvfio-run [--device SPEC]... [--] COMMAND [ARG...]\n"
	"\n"
	"Run COMMAND, unmodified, with simulated VFIO devices: inside it,\n"
	"/dev/vfio/vfio, /dev/vfio/N and the sysfs of each device\n"
	"(/sys/bus/pci/devices/BDF, /sys/kernel/iommu_groups/N) behave as on\n"
	"a host where the device is bound to vfio-pci, and open, ioctl,\n"
	"read, pread, mmap, ... on them reach uvfio. Everything else is\n"
	"COMMAND's own system.\n"
	"\n"
	"Options:\n"
	"  -d, --device SPEC  create a simulated device from SPEC, a device\n"
	"                     spec string with bdf= (e.g.\n"
	"                     simnic,bdf=0000:00:02.0,mem=1M); may be repeated\n"
	"  -h, --help         print this help and exit\n"
	"      --version      print the version and exit\n"
	"\n"
	"Example:\n"
	"  uvfio-run --device simnic,bdf=0000:00:02.0,mem=1M -- \\\n"
	"      qemu-system-x86_64 -accel tcg -nodefaults -display none \\\n"
	"      -monitor stdio -device vfio-pci,host=0000:00:02.0\n"
	"\n"
	"Environment: UVFIO_DRIVER_PATH (driver plugins) and UVFIO_LOG_LEVEL\n"
	"reach the devices in COMMAND; UVFIO_PRELOAD names the preload\n"
	"library to use instead of the installed one.\n"
	"\n"
	"Exit status: COMMAND's; 125 if uvfio-run itself fails, 126 if\n"
	"COMMAND cannot be executed, 127 if it is not found.\n"
	"See uvfio-run(1).\n";

std::string last_error;

void capture_log(int level, const char *line, void *)
{
	if (level <= UVFIO_LOG_ERR && last_error.empty())
		last_error = line;
}

int fail(const std::string &what)
{
	std::fprintf(stderr, "uvfio-run: %s\n", what.c_str());
	return EXIT_RUN_FAILED;
}

/* The value of the spec's bdf= key, or "". */
std::string spec_bdf(const std::string &spec)
{
	size_t pos = 0;
	while ((pos = spec.find(',', pos)) != std::string::npos) {
		pos++;
		if (!spec.compare(pos, 4, "bdf="))
			return spec.substr(pos + 4,
					   spec.find(',', pos) - (pos + 4));
	}
	return "";
}

/*
 * Create each device here and remove it again: the library's own checks
 * (driver, keys, values, a BDF in use) decide, and its message is ours.
 * The canonical BDF is what the group lookup answers for.
 */
int check_devices(const std::vector<std::string> &specs,
		  std::vector<std::string> *bdfs)
{
	int ret = 0;

	uvfio_set_log_fn(capture_log, nullptr);
	for (const std::string &spec : specs) {
		std::string bdf = spec_bdf(spec);
		last_error.clear();
		if (bdf.empty()) {
			ret = fail("--device '" + spec +
				   "': no bdf= key (uvfio-run needs each "
				   "device's PCI address)");
			break;
		}
		if (uvfio_sim_add(spec.c_str())) {
			int err = errno;
			std::string why = last_error;
			if (why.rfind("uvfio: ", 0) == 0)
				why = why.substr(7);
			/* The library's line names the spec and the problem. */
			if (why.empty())
				why = "--device '" + spec +
				      "': " + std::strerror(err);
			ret = fail(why);
			break;
		}
		bdfs->push_back(bdf);
	}
	/* Canonical names: the group of a device is found by them. */
	for (std::string &bdf : *bdfs) {
		char canon[16];
		unsigned int dom = 0, bus, dev, fn;
		if (std::sscanf(bdf.c_str(), "%x:%x:%x.%x", &dom, &bus, &dev,
				&fn) != 4) {
			dom = 0;
			std::sscanf(bdf.c_str(), "%x:%x.%x", &bus, &dev, &fn);
		}
		std::snprintf(canon, sizeof(canon), "%04x:%02x:%02x.%x", dom,
			      bus, dev, fn);
		uvfio_sim_remove(bdf.c_str());
		bdf = canon;
	}
	uvfio_set_log_fn(nullptr, nullptr);
	return ret;
}

/* The preload beside this program (a build tree), or the installed one. */
std::string preload_path()
{
	const char *env = getenv("UVFIO_PRELOAD");
	if (env && *env)
		return env;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		std::string dir(self, strrchr(self, '/') - self);
		std::string here = dir + "/libuvfio-preload.so";
		if (!access(here.c_str(), R_OK))
			return here;
	}
	return UVFIO_PRELOAD_PATH;
}

/* The libuvfio this program runs with: the preload opens the same one. */
std::string libuvfio_path()
{
	Dl_info info;
	char real[PATH_MAX];
	if (!dladdr(reinterpret_cast<void *>(&uvfio_sim_add), &info) ||
	    !info.dli_fname || !realpath(info.dli_fname, real))
		return "";
	return real;
}

} // namespace

int main(int argc, char **argv)
{
	std::vector<std::string> specs;
	int i;

	for (i = 1; i < argc; i++) {
		std::string a = argv[i];
		if (a == "--") {
			i++;
			break;
		}
		if (a == "-h" || a == "--help") {
			std::fputs(usage, stdout);
			return 0;
		}
		if (a == "--version") {
			std::printf("uvfio-run %s\n", UVFIO_VERSION);
			return 0;
		}
		if (a == "-d" || a == "--device") {
			if (i + 1 == argc)
				return fail(a + " needs a SPEC (try --help)");
			specs.push_back(argv[++i]);
			continue;
		}
		if (!a.compare(0, 9, "--device=")) {
			specs.push_back(a.substr(9));
			continue;
		}
		if (a.size() > 1 && a[0] == '-')
			return fail("unknown option '" + a + "' (try --help)");
		break;
	}
	if (i == argc)
		return fail("no COMMAND to run (try --help)");

	std::vector<std::string> bdfs;
	if (check_devices(specs, &bdfs))
		return EXIT_RUN_FAILED;

	std::string devices;
	for (size_t k = 0; k < specs.size(); k++)
		devices += bdfs[k] + "\t" + specs[k] + "\n";
	std::string preload = preload_path();
	if (access(preload.c_str(), R_OK))
		return fail("cannot find the preload library " + preload + ": " +
			    std::strerror(errno));
	const char *old = getenv("LD_PRELOAD");
	std::string ld = preload + (old && *old ? std::string(":") + old : "");
	if (setenv("LD_PRELOAD", ld.c_str(), 1) ||
	    setenv(UVFIO_RUN_ENV_DEVICES, devices.c_str(), 1) ||
	    setenv(UVFIO_RUN_ENV_LIB, libuvfio_path().c_str(), 1))
		return fail(std::string("setenv: ") + std::strerror(errno));

	/*
	 * Resource limits pass on as they are: no raise_nofile_limit() here.
	 * COMMAND is unmodified; one that uses select(2) must not be handed
	 * fds past FD_SETSIZE, which a raised soft limit allows. A program
	 * that needs more descriptors raises its own soft limit, as the
	 * tools do (uvfio-run.md, "Fds").
	 */
	execvp(argv[i], argv + i);
	int err = errno;
	std::fprintf(stderr, "uvfio-run: %s: %s\n", argv[i],
		     std::strerror(err));
	return err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
}
