// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-mig-ctl: inspect VFIO devices and migrate them, through the uAPI
 * only (tools/lib). A device is named by a spec string (uvfio_sim_add()'s;
 * the simulated device lives for the duration of the command and is
 * reached through uvfio_*), or by a path, a real device (the kernel's, or
 * a simulated one under uvfio-run) opened through its group and container
 * with plain system calls (see <uvfio/tools/vfio_open.h>).
 *
 * Exit codes: 0 success, 1 the operation failed (an armed --fault that
 * fires included), 2 usage error (bad options, a device spec that does
 * not create a device, an unknown fault point).
 */
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <xxhash.h>

#include <uvfio/tools/fsm.h>
#include <uvfio/tools/migration.h>
#include <uvfio/tools/migration_v1.h>
#include <uvfio/tools/rlimit.h>
#include <uvfio/tools/sim_vm.h>
#include <uvfio/tools/vfio_open.h>
#include <uvfio/uvfio.h>

#include "conformance.h"

using namespace uvfio::tools;
using json = nlohmann::ordered_json;

namespace {

constexpr int EXIT_FAIL = 1;
constexpr int EXIT_USAGE = 2;

/* -------- messages -------- */

bool verbose = false;
std::string last_lib_error;	/* the library's last error line */
Protocol protocol_opt = Protocol::V2;	/* --protocol */

void lib_log(int level, const char *line, void *)
{
	if (level <= UVFIO_LOG_ERR)
		last_lib_error = line;
	if (verbose)
		fmt::print(stderr, "{}\n", line);
}

/* One line on stderr: what failed, why, and what the library said. */
int fail(int code, const std::string &what)
{
	std::string msg = "vfio-mig-ctl: " + what;
	if (!last_lib_error.empty() &&
	    msg.find(last_lib_error) == std::string::npos) {
		std::string lib = last_lib_error;
		if (lib.rfind("uvfio: ", 0) == 0)
			lib = lib.substr(7);
		msg += " [" + lib + "]";
	}
	fmt::print(stderr, "{}\n", msg);
	return code;
}

/* Progress on stderr for streams longer than a second, if it is a tty. */
class ProgressBar
{
public:
	ProgressBar(const char *what, __u64 total)
		: what_(what), total_(total), t0_(clock::now()),
		  tty_(isatty(STDERR_FILENO))
	{
	}
	~ProgressBar()
	{
		if (shown_)
			fmt::print(stderr, "\n");
	}
	Progress fn()
	{
		return [this](__u64 bytes) { update(bytes); };
	}

private:
	using clock = std::chrono::steady_clock;
	void update(__u64 bytes)
	{
		double s = std::chrono::duration<double>(clock::now() - t0_).count();
		if (!tty_ || s < 1.0)
			return;
		double rate = bytes / s;
		std::string eta;
		if (total_ > bytes && rate > 0)
			eta = fmt::format("  ETA {:.0f} s", (total_ - bytes) / rate);
		fmt::print(stderr, "\r{}: {:.1f} MiB  {:.1f} MiB/s{}   ", what_,
			   bytes / 1048576.0, rate / 1048576.0, eta);
		shown_ = true;
	}
	const char *what_;
	__u64 total_;
	clock::time_point t0_;
	bool tty_, shown_ = false;
};

/* -------- --fault NAME[:N[+]][=ERRNO] -------- */

/* The points the library declares, one per line: name, errno, what. */
void print_fault_points()
{
	const char *name, *doc;
	int err;
	for (unsigned int i = 0; !uvfio_fault_list(i, &name, &err, &doc); i++) {
		const char *ename = strerrorname_np(err);
		fmt::print("{:<36} {:<7} {}\n", name, ename ? ename : "?", doc);
	}
}

/* An errno by name (EIO) or number; 0 if it is neither. */
int parse_errno(const std::string &s)
{
	if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos)
		return s.size() < 5 ? std::stoi(s) : 0;
	for (int e = 1; e < 4096; e++) {
		const char *n = strerrorname_np(e);
		if (n && s == n)
			return e;
	}
	return 0;
}

/* What --fault armed: the name and the hit that fails. */
std::vector<std::pair<std::string, unsigned int>> armed_faults;

/*
 * Arm one --fault spec before the command runs: NAME fails its first hit,
 * NAME:N the Nth, NAME:N+ the Nth and every later one; =ERRNO overrides
 * the point's errno. 0, or a usage error (bad syntax, unknown point).
 */
int arm_fault(const std::string &arg)
{
	std::string name = arg, count, err;
	unsigned int nth = 1, flags = 0;
	int errnum = 0;

	if (size_t eq = name.find('='); eq != std::string::npos) {
		err = name.substr(eq + 1);
		name.resize(eq);
		errnum = parse_errno(err);
		if (!errnum)
			return fail(EXIT_USAGE, "--fault " + arg + ": \"" + err +
						"\" is not an errno (e.g. EIO or 5)");
	}
	if (size_t colon = name.find(':'); colon != std::string::npos) {
		count = name.substr(colon + 1);
		name.resize(colon);
		if (!count.empty() && count.back() == '+') {
			flags |= UVFIO_FAULT_PERSIST;
			count.pop_back();
		}
		if (count.empty() || count.size() > 9 ||
		    count.find_first_not_of("0123456789") != std::string::npos ||
		    !(nth = unsigned(std::stoul(count))))
			return fail(EXIT_USAGE, "--fault " + arg + ": the count "
					"must be a number from 1 (NAME[:N[+]][=ERRNO])");
	}
	if (uvfio_fault_set(name.c_str(), nth, errnum, flags)) {
		if (errno == ENOENT)
			return fail(EXIT_USAGE, "--fault " + arg + ": no fault "
					"point \"" + name + "\" (vfio-mig-ctl "
					"--fault list shows them)");
		return fail(EXIT_USAGE, "--fault " + arg + ": " +
						strerror(errno));
	}
	armed_faults.emplace_back(name, nth);
	return 0;
}

/*
 * A command that succeeded although an armed fault fired: the failure was
 * absorbed (a DMA fault halts the device's engine and migrates with its
 * state, say). It still counts as the operation failing, so say which.
 */
int check_fired_faults(int ret)
{
	if (ret)
		return ret;
	for (const auto &[name, nth] : armed_faults) {
		long long hits = uvfio_fault_hits(name.c_str());
		if (hits >= nth)
			return fail(EXIT_FAIL, "--fault " + name + " fired; the "
					"command completed, but what it injected "
					"is in the device's state now");
	}
	return 0;
}

/* A device from a spec, or the usage error that it is not one. */
int make_device(SimVm &vm, const std::string &spec, size_t guest,
		std::string *why)
{
	if (spec_bdf(spec).empty()) {
		*why = "device spec \"" + spec + "\" has no bdf=";
		/* An operator's first guess for a host device: say the form. */
		if (is_pci_address(spec) || is_pci_address("0000:" + spec))
			*why = "\"" + spec + "\" is not a device spec; a real "
			       "device is named by its path, e.g. "
			       "/sys/bus/pci/devices/" +
			       (spec.size() == 7 ? "0000:" + spec : spec);
		return -EINVAL;
	}
	return vm.create(spec, guest, why);
}

/*
 * --fault arms this process's simulator. A device named by its path is in
 * it only under uvfio-run (the preload shares the library); a kernel's
 * device has no fault points: say so rather than arm nothing.
 */
bool faults_reach(const std::string &name)
{
	return armed_faults.empty() || uvfio_sim_iommu_group(name.c_str()) >= 0;
}

int refuse_faults(const std::string &path)
{
	return fail(EXIT_USAGE, "--fault arms uvfio's fault points in this "
			"process; " + path + " is a device outside it (a "
			"kernel's), which has none");
}

std::string hex64(__u64 v)
{
	return fmt::format("{:016x}", v);
}

/* For text reports: " (v1)" when --protocol v1 moved the state. */
std::string via()
{
	return protocol_opt == Protocol::V1 ? " (v1)" : "";
}

StreamOptions stream_opt;	/* --engine */

/* Save a device into a memfd (fsm's snapshot, reloaded many times); the
 * memfd, or -errno. */
int save_to_memfd(Migration &mig, bool leave_stopped, std::string *why,
		  const Progress &p = {})
{
	int mfd = memfd_create("vfio-mig-ctl", MFD_CLOEXEC);
	if (mfd < 0)
		return -errno;
	int ret = save_device(mig, {nullptr, mfd}, leave_stopped, nullptr,
			      why, p, stream_opt);
	if (ret) {
		close(mfd);
		return ret;
	}
	return mfd;
}

int write_all_fd(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= size_t(w);
	}
	return 0;
}

/*
 * Where a save's stream goes as it is read, hashed on the way: the save
 * writes into a pipe (fd()), a thread reads it, feeds the XXH3-64 digest
 * and writes to the output (or only hashes, without one). Nothing holds
 * more than two chunks of the stream, whatever the device's size.
 *
 * The thread holds back the last chunk it read until finish() says the
 * save succeeded. A save that fails, even after its stream's end (the
 * device cannot return to its state), so leaves its reader a truncated
 * stream, which every driver's resume rejects, never a complete one: what
 * buffering the whole stream gave before, without the memory.
 */
class DigestSink
{
public:
	static constexpr size_t CHUNK = 1 << 20;

	~DigestSink()
	{
		finish(false);
		XXH3_freeState(xxh_);
	}

	/* out < 0: hash only. 0 or -errno. */
	int open(int out)
	{
		out_ = out;
		xxh_ = XXH3_createState();
		if (!xxh_)
			return -ENOMEM;
		XXH3_64bits_reset(xxh_);
		if (pipe2(pipe_, O_CLOEXEC))
			return -errno;
		/* A chunk per pipe write: fewer wake-ups (best effort). */
		fcntl(pipe_[1], F_SETPIPE_SZ, int(CHUNK));
		cur_.resize(CHUNK);
		held_.resize(CHUNK);
		thread_ = std::thread([this] { drain(); });
		return 0;
	}

	/* What the save writes into. */
	int fd() const { return pipe_[1]; }

	/*
	 * The save is over: end the pipe, wait for the thread, and write the
	 * held-back chunk if it succeeded. 0, or the output's -errno.
	 */
	int finish(bool succeeded)
	{
		if (pipe_[1] >= 0) {
			close(pipe_[1]);
			pipe_[1] = -1;
		}
		if (thread_.joinable())
			thread_.join();
		if (pipe_[0] >= 0) {
			close(pipe_[0]);
			pipe_[0] = -1;
		}
		if (succeeded && !err_ && held_len_ && out_ >= 0)
			err_ = write_all_fd(out_, held_.data(), held_len_);
		held_len_ = 0;
		return err_;
	}

	__u64 bytes() const { return bytes_; }
	__u64 digest() const { return XXH3_64bits_digest(xxh_); }

private:
	void drain()
	{
		for (;;) {
			ssize_t n = read(pipe_[0], cur_.data(), cur_.size());
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				if (n < 0)
					err_ = -errno;
				return;
			}
			XXH3_64bits_update(xxh_, cur_.data(), size_t(n));
			bytes_ += __u64(n);
			if (held_len_ && out_ >= 0)
				err_ = write_all_fd(out_, held_.data(), held_len_);
			if (err_) {
				/*
				 * The output is gone: close the pipe so that
				 * the save fails now (EPIPE) and returns the
				 * device to its state, instead of streaming
				 * the rest into nothing.
				 */
				close(pipe_[0]);
				pipe_[0] = -1;
				held_len_ = 0;
				return;
			}
			cur_.swap(held_);
			held_len_ = size_t(n);
		}
	}

	int out_ = -1;
	int pipe_[2] = {-1, -1};
	XXH3_state_t *xxh_ = nullptr;
	std::vector<char> cur_, held_;
	size_t held_len_ = 0;
	__u64 bytes_ = 0;
	int err_ = 0;			/* the thread's, read after join */
	std::thread thread_;
};

/*
 * Save a device into out (< 0: nowhere) as the stream is read, with its
 * digest and length. 0 or -errno with *why; *out_err is the output's own
 * -errno when writing it failed (the save then fails too, with EPIPE).
 */
int save_streaming(Migration &mig, int out, bool leave_stopped, __u64 *digest,
		   __u64 *len, int *out_err, std::string *why,
		   const Progress &p = {})
{
	DigestSink sink;
	*out_err = 0;
	int ret = sink.open(out);
	if (ret) {
		*why = std::string("cannot start the stream: ") + strerror(-ret);
		return ret;
	}
	ret = save_device(mig, {nullptr, sink.fd()}, leave_stopped, nullptr,
			  why, p, stream_opt);
	*out_err = sink.finish(!ret);
	*digest = sink.digest();
	*len = sink.bytes();
	if (!ret && *out_err)
		ret = *out_err;
	return ret;
}

/*
 * save -o FILE: a regular file (or a name not yet taken) is written as a
 * temporary file in its directory and renamed over it once the stream is
 * whole and on disk, so a failed save never destroys the file it would
 * replace, and a reader never sees half of a new one. Anything else (a
 * FIFO, a character device, stdout) is written as it is.
 */
struct SaveOutput {
	std::string path;	/* what the user named */
	std::string target;	/* what gets replaced (symlinks followed) */
	std::string tmp;	/* the temporary file, "" if none */
	int fd = -1;

	~SaveOutput() { abort(); }

	/* 0 or -errno with *why. */
	int open(const std::string &p, std::string *why)
	{
		path = target = p;
		if (p == "-") {
			fd = STDOUT_FILENO;
			return 0;
		}
		struct stat st;
		bool exists = !stat(p.c_str(), &st);
		if (exists && !S_ISREG(st.st_mode)) {
			fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
			if (fd < 0)
				return say(why, -errno);
			return 0;
		}
		/* Replace what a symlink points to, not the link. */
		if (exists) {
			char *real = realpath(p.c_str(), nullptr);
			if (real) {
				target = real;
				free(real);
			}
		}
		size_t slash = target.rfind('/');
		std::string dir = slash == std::string::npos ? "" :
				  target.substr(0, slash + 1);
		std::string base = slash == std::string::npos ? target :
				   target.substr(slash + 1);
		tmp = dir + "." + base + ".XXXXXX";
		fd = mkostemp(tmp.data(), O_CLOEXEC);
		if (fd < 0) {
			int err = -errno;
			tmp.clear();
			return say(why, err);
		}
		/* As open(O_CREAT, 0644) would have, or the replaced file's. */
		mode_t mask = umask(0);
		umask(mask);
		if (fchmod(fd, exists ? st.st_mode & 07777 : 0644 & ~mask))
			return say(why, -errno);
		return 0;
	}

	/* The stream is whole: make it the file. 0 or -errno with *why. */
	int commit(std::string *why)
	{
		if (tmp.empty()) {
			int ret = 0;
			if (fd != STDOUT_FILENO && fd >= 0 && close(fd))
				ret = -errno;
			fd = -1;
			if (ret)
				*why = "writing " + path + ": " + strerror(-ret);
			return ret;
		}
		/* On disk before it replaces the old one: a crash leaves
		 * either file, never an empty new one. */
		if (fsync(fd) || close(fd)) {
			fd = -1;
			*why = "writing " + path + ": " + strerror(errno);
			return -errno;
		}
		fd = -1;
		if (rename(tmp.c_str(), target.c_str())) {
			*why = "cannot replace " + path + ": " + strerror(errno);
			return -errno;
		}
		tmp.clear();
		/* And the rename itself (best effort: the data is safe). */
		size_t slash = target.rfind('/');
		std::string dir = slash == std::string::npos ? "." :
				  slash == 0 ? "/" : target.substr(0, slash);
		int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		return 0;
	}

	/* Failed: drop the temporary file; what it would replace stays. */
	void abort()
	{
		if (fd >= 0 && fd != STDOUT_FILENO)
			close(fd);
		fd = -1;
		if (!tmp.empty())
			unlink(tmp.c_str());
		tmp.clear();
	}

private:
	int say(std::string *why, int err)
	{
		*why = "cannot create " + path + ": " + strerror(-err);
		return err;
	}
};

/*
 * A command's device, with a transport to it: created from its spec and
 * reached through the simulator, or a real device named by its path,
 * opened as a VMM opens it and reached through plain system calls. The
 * commands see only dev (and fd, guest); the rest is the same for both.
 */
struct CmdDevice {
	std::unique_ptr<Transport> t;
	SimVm vm;				/* a spec's */
	std::unique_ptr<VfioDevice> real;	/* a path's */
	std::unique_ptr<Device> dev;
	std::unique_ptr<Migration> mig;		/* by --protocol */

	/*
	 * guest: bytes of guest memory mapped for the device's DMA (0:
	 * none). 0, or the exit code after saying why: a bad spec or a
	 * malformed name is usage (2), a real device that does not open 1.
	 */
	int open(const std::string &arg, size_t guest = 0)
	{
		std::string why;
		if (is_device_path(arg)) {
			DeviceName dn;
			if (parse_device_path(arg, &dn, &why))
				return fail(EXIT_USAGE, why);
			t = make_kernel_transport();
			real = std::make_unique<VfioDevice>(*t);
			if (real->open(dn, &why) ||
			    (guest && real->map_guest(guest, &why)))
				return fail(EXIT_FAIL, why);
			if (!faults_reach(dn.name))
				return refuse_faults(arg);
			dev = std::make_unique<Device>(*t, real->fd());
			return 0;
		}
		t = make_sim_transport();
		if (make_device(vm, arg, guest, &why))
			return fail(EXIT_USAGE, why);
		dev = std::make_unique<Device>(*t, vm.fd());
		return 0;
	}

	/*
	 * The device's migration by --protocol (v1: its migration region,
	 * found and mapped). 0, or exit code 1 after one line saying why
	 * (a device without the v1 region, above all).
	 */
	int open_mig(const char *cmd)
	{
		std::string why;
		if (open_migration(*dev, protocol_opt, &mig, &why))
			return fail(EXIT_FAIL, fmt::format(
				"{} --protocol {}: {}: {}", cmd,
				protocol_name(protocol_opt), label(), why));
		return 0;
	}

	bool is_real() const { return real != nullptr; }
	int fd() const { return real ? real->fd() : vm.fd(); }
	/* Its name: a spec's BDF, a real device's name in its group. */
	const std::string &name() const
	{
		return real ? real->name().name : vm.bdf();
	}
	GuestMemory guest() const { return real ? real->guest() : vm.guest(); }
	/* For text: the name, and a real device's group. */
	std::string label() const
	{
		return real ? name() + " (" + real->name().group + ")" : name();
	}
	/*
	 * A JSON report: the device first ("bdf" for a PCI address, a real
	 * device's "device" and "group" too), then rest.
	 */
	json report(const json &rest) const
	{
		json j = json::object();
		if (!real || is_pci_address(name()))
			j["bdf"] = name();
		if (real) {
			j["device"] = name();
			j["group"] = real->name().group;
		}
		for (const auto &[k, v] : rest.items())
			j[k] = v;
		return j;
	}
};

/*
 * Load a stream into a device, save it again for the digest of what it
 * now holds, and run it: 0 or -errno with *why.
 */
int load_digest_run(CmdDevice &d, int in_fd, StreamStats *st, __u64 *digest,
		    std::string *why, const Progress &progress = {})
{
	int ret = load_device(*d.mig, {nullptr, in_fd}, false, st, why,
			      progress, stream_opt);
	if (ret)
		return ret;
	/* Hashed as it is read: no copy of the state is kept. */
	__u64 len;
	int out_err;
	ret = save_streaming(*d.mig, -1, true, digest, &len, &out_err, why);
	if (ret) {
		*why = "re-saving for the digest: " + *why;
		return ret;
	}
	if ((ret = d.mig->set_state(VFIO_DEVICE_STATE_RUNNING)))
		*why = "the device cannot run: " + std::string(strerror(-ret));
	return ret;
}

std::string flags_text(__u64 f)
{
	std::string s;
	if (f & VFIO_MIGRATION_STOP_COPY)
		s += "stop_copy";
	if (f & VFIO_MIGRATION_P2P)
		s += "|p2p";
	if (f & VFIO_MIGRATION_PRE_COPY)
		s += "|pre_copy";
	return s.empty() ? "none" : s;
}

/* -------- subcommands -------- */

int cmd_drivers(bool as_json)
{
	json out = json::array();
	const char *spec, *name, *desc;
	for (unsigned i = 0; !uvfio_sim_driver(i, &spec, &name, &desc); i++) {
		if (as_json)
			out.push_back({{"spec_name", spec}, {"driver", name},
				       {"description", desc}});
		else
			fmt::print("{:<10} {:<18} {}\n", spec, name, desc);
	}
	if (as_json)
		fmt::print("{}\n", out.dump(2));
	return 0;
}

int cmd_info(const std::string &spec, bool as_json)
{
	CmdDevice d;
	if (int rc = d.open(spec))
		return rc;
	Transport *t = d.t.get();
	Device &dev = *d.dev;
	std::string why;

	struct vfio_device_info info = {};
	info.argsz = sizeof(info);
	int ret = t->ioctl(d.fd(), VFIO_DEVICE_GET_INFO, &info);
	if (ret)
		return fail(EXIT_FAIL, "GET_INFO: " + std::string(strerror(-ret)));
	DeviceCaps caps;
	if ((ret = dev.probe(&caps)))
		return fail(EXIT_FAIL, "probe: " + std::string(strerror(-ret)));
	__u32 state = 0;
	if (caps.migration)
		dev.get_state(&state);

	json regions = json::array();
	static const char *const rnames[] = {"BAR0", "BAR1", "BAR2", "BAR3", "BAR4",
					     "BAR5", "ROM", "CONFIG", "VGA"};
	for (__u32 i = 0; i < info.num_regions && i < 9; i++) {
		struct vfio_region_info r = {};
		r.argsz = sizeof(r);
		r.index = i;
		if (t->ioctl(d.fd(), VFIO_DEVICE_GET_REGION_INFO, &r) || !r.size)
			continue;
		regions.push_back({{"name", rnames[i]}, {"size", r.size},
				   {"offset", r.offset},
				   {"read", bool(r.flags & VFIO_REGION_INFO_FLAG_READ)},
				   {"write", bool(r.flags & VFIO_REGION_INFO_FLAG_WRITE)},
				   {"mmap", bool(r.flags & VFIO_REGION_INFO_FLAG_MMAP)}});
	}
	json j = d.report({{"flags", info.flags},
			   {"regions", regions},
			   {"irqs", info.num_irqs},
			   {"migration", caps.migration},
			   {"migration_flags", flags_text(caps.migration_flags)},
			   {"state", state_name(state)},
			   {"dma_logging", caps.dma_logging},
			   {"stop_copy_size", caps.stop_copy_size}});
	if (as_json) {
		fmt::print("{}\n", j.dump(2));
		return 0;
	}
	fmt::print("device {}: {} regions, {} irqs\n", d.label(),
		   info.num_regions, info.num_irqs);
	for (auto &r : regions)
		fmt::print("  region {:<6} size {:>12}  {}{}{}\n",
			   r["name"].get<std::string>(), r["size"].get<__u64>(),
			   r["read"].get<bool>() ? "r" : "-",
			   r["write"].get<bool>() ? "w" : "-",
			   r["mmap"].get<bool>() ? "m" : "-");
	if (caps.migration)
		fmt::print("migration: {} (state {}), stop-copy size {} bytes\n",
			   flags_text(caps.migration_flags), state_name(state),
			   caps.stop_copy_size);
	else
		fmt::print("migration: not supported\n");
	fmt::print("dma logging: {}\n", caps.dma_logging ? "yes" : "no");
	return 0;
}

/* A v1 device_state for messages: its state's name, or the bits. */
std::string v1_state_text(__u32 bits)
{
	__u32 st;
	if (v1_state_of_bits(bits, &st))
		return state_name(st);
	return "invalid (" + v1_bits_text(bits) + ")";
}

/*
 * state: print the state, or set each target in turn. v2: one SET per
 * arc of the path the core would walk, printed with whether it opened a
 * data fd (closed at once). v1: one read-modify-write of device_state per
 * target, printed with the bits before and after; after a refused write
 * the state is read again, as the KABI says.
 */
int cmd_state(const std::string &spec, const std::vector<std::string> &targets,
	      bool as_json)
{
	std::vector<__u32> wants;
	for (const std::string &target : targets) {
		__u32 want;
		if (parse_state(target, &want))
			return fail(EXIT_USAGE, "unknown state \"" + target + "\"");
		wants.push_back(want);
	}
	CmdDevice d;
	if (int rc = d.open(spec))
		return rc;
	if (int rc = d.open_mig("state"))
		return rc;
	const bool v1 = protocol_opt == Protocol::V1;
	Transport *t = d.t.get();
	Device &dev = *d.dev;
	DeviceV1 *region = v1 ? &static_cast<MigrationV1 &>(*d.mig).region()
			      : nullptr;
	DeviceCaps caps;
	__u32 from = 0, bits = 0;
	int ret;
	if (v1) {
		if ((ret = region->read_state(&bits)))
			return fail(EXIT_FAIL, "cannot read device_state: " +
						       std::string(strerror(-ret)));
		if (!v1_state_of_bits(bits, &from))
			return fail(EXIT_FAIL, "device_state reads " +
					v1_bits_text(bits) + ", which the v1 "
					"KABI calls invalid");
	} else if ((ret = dev.probe(&caps)) || (ret = dev.get_state(&from))) {
		return fail(EXIT_FAIL, "cannot read the state: " +
					       std::string(strerror(-ret)));
	}
	const char *proto = protocol_name(protocol_opt);
	if (wants.empty()) {
		if (as_json)
			fmt::print("{}\n", d.report({{"protocol", proto},
						     {"state", state_name(from)}})
						   .dump(2));
		else
			fmt::print("{}\n", state_name(from));
		return 0;
	}
	json arcs = json::array();
	__u32 cur = from;
	for (__u32 want : wants) {
		if (want == cur) {
			if (!as_json)
				fmt::print("{} (already)\n", state_name(cur));
			continue;
		}
		if (v1) {
			__u32 want_bits;
			ret = v1_bits_of_state(want, region->region().ndma,
					       &want_bits);
			if (ret == -EOPNOTSUPP)
				return fail(EXIT_FAIL, fmt::format(
					"{} -> {}: the migration region has no NDMA "
					"capability, which the P2P states need: {}",
					state_name(cur), state_name(want),
					strerror(-ret)));
			if (ret)
				return fail(EXIT_FAIL, fmt::format(
					"{} -> {}: not a state to set (the device "
					"enters it on a failed transition; a reset "
					"leaves it): {}", state_name(cur),
					state_name(want), strerror(-ret)));
			__u32 before = bits;
			ret = d.mig->set_state(want);
			__u32 now = 0;
			int r2 = region->read_state(&now);
			if (ret)
				return fail(EXIT_FAIL, fmt::format(
					"{} -> {}: {} (device now {})",
					state_name(cur), state_name(want),
					strerror(-ret), r2 ? "unreadable" :
					v1_state_text(now)));
			bits = now;
			arcs.push_back({{"from", state_name(cur)},
					{"to", state_name(want)},
					{"data_fd", false}});
			if (!as_json)
				fmt::print("{} -> {} ({} -> {})\n",
					   state_name(cur), state_name(want),
					   v1_bits_text(before),
					   v1_bits_text(now));
			cur = want;
			continue;
		}
		/* One SET per arc of the path the core would walk, printed. */
		std::vector<__u32> path;
		if (!fsm_path(caps.migration_flags, cur, want, &path))
			return fail(EXIT_FAIL, fmt::format(
				"{} -> {}: no path for this device ({}): {}",
				state_name(cur), state_name(want),
				flags_text(caps.migration_flags), strerror(EINVAL)));
		for (__u32 next : path) {
			int fd = -1;
			ret = dev.set_state(next, &fd);
			if (ret) {
				__u32 prev = cur;
				dev.get_state(&cur);
				return fail(EXIT_FAIL, fmt::format(
					"arc {} -> {}: {} (device now {})",
					state_name(prev), state_name(next),
					strerror(-ret), state_name(cur)));
			}
			bool data_fd = fd >= 0;
			if (fd >= 0)
				t->close(fd);
			arcs.push_back({{"from", state_name(cur)},
					{"to", state_name(next)},
					{"data_fd", data_fd}});
			if (!as_json)
				fmt::print("{} -> {}{}\n", state_name(cur),
					   state_name(next),
					   data_fd ? " (data fd)" : "");
			cur = next;
		}
	}
	if (as_json)
		fmt::print("{}\n", d.report({{"protocol", proto},
					     {"from", state_name(from)},
					     {"to", state_name(wants.back())},
					     {"arcs", arcs}}).dump(2));
	return 0;
}

/*
 * Walk the whole transition matrix of a device: for every supported pair,
 * reset, go to `from`, SET `to`, and check the result against the
 * documented FSM (reachable iff there is a path; GET then reports `to`).
 * Leaving RESUMING needs a stream: the device's own state, saved first.
 */
int cmd_fsm(const std::string &spec, bool as_json)
{
	CmdDevice d;
	if (int rc = d.open(spec))
		return rc;
	Transport *t = d.t.get();
	Device &dev = *d.dev;
	std::string why;
	DeviceCaps caps;
	int ret = dev.probe(&caps);
	if (ret || !caps.migration)
		return fail(EXIT_FAIL, "the device does not support migration");
	MigrationV2 mig(dev);
	int snap = save_to_memfd(mig, false, &why);
	if (snap < 0)
		return fail(EXIT_FAIL, "cannot save the device: " + why);

	auto go = [&](__u32 s) -> int {
		int fd = -1;
		int r = dev.set_state(s, &fd);
		if (!r && fd >= 0) {
			if (s == VFIO_DEVICE_STATE_RESUMING) {
				lseek(snap, 0, SEEK_SET);
				r = plain_copy({nullptr, snap}, {t, fd}, false,
					       nullptr);
			}
			t->close(fd);
		}
		return r;
	};

	json rows = json::object();
	unsigned mismatches = 0, checked = 0;
	std::string table = fmt::format("{:<13}", "from \\ to");
	for (__u32 to = 1; to < NUM_MIG_STATES; to++)
		if (fsm_has_state(caps.migration_flags, to))
			table += fmt::format(" {:>13}", state_name(to));
	table += "\n";
	for (__u32 from = 1; from < NUM_MIG_STATES; from++) {
		if (!fsm_has_state(caps.migration_flags, from))
			continue;
		json row = json::object();
		table += fmt::format("{:<13}", state_name(from));
		for (__u32 to = 1; to < NUM_MIG_STATES; to++) {
			if (!fsm_has_state(caps.migration_flags, to))
				continue;
			std::vector<__u32> path;
			bool expect = fsm_path(caps.migration_flags, from, to, &path);
			dev.reset();
			if (go(from)) {
				row[state_name(to)] = "setup failed";
				table += fmt::format(" {:>13}", "setup?");
				mismatches++;
				continue;
			}
			int r = go(to);
			__u32 now = 0;
			dev.get_state(&now);
			bool ok = !r && now == to;
			bool good = ok == expect && (ok || r == -EINVAL || !expect);
			std::string cell = ok ? fmt::format("ok({})", path.size())
					      : std::string(strerrorname_np(-r) ?
							    strerrorname_np(-r) : "?");
			if (!good) {
				cell += "!";
				mismatches++;
			}
			checked++;
			row[state_name(to)] = cell;
			table += fmt::format(" {:>13}", cell);
		}
		rows[state_name(from)] = row;
		table += "\n";
	}
	close(snap);
	dev.reset();
	if (as_json)
		fmt::print("{}\n", d.report({{"migration_flags",
					       flags_text(caps.migration_flags)},
					      {"matrix", rows}, {"checked", checked},
					      {"mismatches", mismatches}}).dump(2));
	else
		fmt::print("{} ({}): ok(n) = reached in n arcs, ! = not as "
			   "documented\n{}{} pairs checked against the documented "
			   "FSM: {}\n", d.label(), flags_text(caps.migration_flags),
			   table, checked,
			   mismatches ? fmt::format("{} differ", mismatches)
				      : std::string("all as documented"));
	return mismatches ? fail(EXIT_FAIL, fmt::format(
					    "fsm: {} transitions differ from the "
					    "documented FSM", mismatches))
			  : 0;
}

/*
 * save: the stream goes out as it is read (memory does not grow with the
 * device). A file is replaced only by a whole stream (SaveOutput); on
 * stdout a failed save leaves a truncated stream (DigestSink).
 */
int cmd_save(const std::string &spec, const std::string &out, bool stop,
	     bool as_json)
{
	CmdDevice d;
	if (int rc = d.open(spec))
		return rc;
	if (int rc = d.open_mig("save"))
		return rc;
	std::string why;
	__u64 estimate = 0;
	if (protocol_opt == Protocol::V2)
		d.dev->data_size(&estimate);

	/* Before the device is touched: an unwritable output costs nothing. */
	SaveOutput of;
	if (of.open(out, &why))
		return fail(EXIT_FAIL, why);
	auto t0 = std::chrono::steady_clock::now();
	__u64 len = 0, digest = 0;
	int out_err, ret;
	{
		ProgressBar bar("saving", estimate);
		ret = save_streaming(*d.mig, of.fd, stop, &digest, &len,
				     &out_err, &why, bar.fn());
	}
	if (out_err) {
		of.abort();
		return fail(EXIT_FAIL, "writing " + out + ": " +
					       strerror(-out_err));
	}
	if (ret) {
		of.abort();
		return fail(EXIT_FAIL, "save: " + why);
	}
	if (of.commit(&why))
		return fail(EXIT_FAIL, why);
	double s = std::chrono::duration<double>(std::chrono::steady_clock::now() -
						 t0).count();
	json j = d.report({{"protocol", protocol_name(protocol_opt)},
			   {"bytes", len}, {"seconds", s},
			   {"digest", hex64(digest)}});
	/* With the stream on stdout, the report goes to stderr. */
	FILE *rep = out == "-" ? stderr : stdout;
	if (as_json)
		fmt::print(rep, "{}\n", j.dump(2));
	else
		fmt::print(rep, "saved {} bytes from {}{} in {:.3f} s (digest "
			   "{})\n", len, d.label(), via(), s, hex64(digest));
	return 0;
}

int cmd_load(const std::string &spec, const std::string &in, bool as_json)
{
	int ifd = STDIN_FILENO;
	__u64 total = 0;
	if (in != "-") {
		ifd = open(in.c_str(), O_RDONLY | O_CLOEXEC);
		if (ifd < 0)
			return fail(EXIT_FAIL, "cannot open " + in + ": " +
						       strerror(errno));
		off_t end = lseek(ifd, 0, SEEK_END);
		total = end > 0 ? __u64(end) : 0;
		lseek(ifd, 0, SEEK_SET);
	}
	CmdDevice d;
	int rc = d.open(spec);
	if (!rc)
		rc = d.open_mig("load");
	if (rc) {
		if (ifd != STDIN_FILENO)
			close(ifd);
		return rc;
	}
	StreamStats st;
	std::string why;
	__u64 digest = 0;
	int ret;
	{
		ProgressBar bar("loading", total);
		ret = load_digest_run(d, ifd, &st, &digest, &why, bar.fn());
	}
	if (ifd != STDIN_FILENO)
		close(ifd);
	if (ret)
		return fail(EXIT_FAIL, "load: " + why);
	json j = d.report({{"protocol", protocol_name(protocol_opt)},
			   {"bytes", st.bytes}, {"seconds", st.seconds},
			   {"digest", hex64(digest)}, {"state", "running"}});
	if (as_json)
		fmt::print("{}\n", j.dump(2));
	else
		fmt::print("loaded {} bytes into {}{} in {:.3f} s, running "
			   "(digest {})\n", st.bytes, d.label(), via(),
			   st.seconds, hex64(digest));
	return 0;
}

/* -------- send / recv over TCP -------- */

/* "PORT" or "HOST:PORT" (IPv6 in brackets) into host and port. */
bool split_address(const std::string &a, std::string *host, std::string *port)
{
	size_t colon = a.rfind(':');
	if (colon == std::string::npos) {
		*host = "";
		*port = a;
	} else {
		*host = a.substr(0, colon);
		*port = a.substr(colon + 1);
		if (host->size() > 1 && host->front() == '[' && host->back() == ']')
			*host = host->substr(1, host->size() - 2);
	}
	return !port->empty() &&
	       port->find_first_not_of("0123456789") == std::string::npos;
}

/* A connected (or, with listen, a listening) TCP socket, or -errno. */
int tcp_socket(const std::string &addr, bool listen_, std::string *why)
{
	std::string host, port;
	if (!split_address(addr, &host, &port)) {
		*why = "bad address \"" + addr + "\" (want [HOST:]PORT)";
		return -EINVAL;
	}
	struct addrinfo hints = {}, *res;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = listen_ ? AI_PASSIVE : 0;
	int e = getaddrinfo(host.empty() ? (listen_ ? nullptr : "127.0.0.1")
					 : host.c_str(),
			    port.c_str(), &hints, &res);
	if (e) {
		*why = "cannot resolve " + addr + ": " + gai_strerror(e);
		return -EINVAL;
	}
	int fd = -1, err = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		int one = 1;
		if (listen_ ? !bind(fd, ai->ai_addr, ai->ai_addrlen) &&
				      !listen(fd, 1)
			    : !connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			break;
		}
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		*why = std::string(listen_ ? "cannot listen on " : "cannot connect to ") +
		       addr + ": " + strerror(err);
		return -err;
	}
	return fd;
}

/*
 * send: save the device, stream it to the receiver, half-close, and wait
 * for its one-line verdict ("OK DIGEST" or "ERR why").
 */
int cmd_send(const std::string &spec, const std::string &to, bool as_json)
{
	CmdDevice d;
	if (int rc = d.open(spec))
		return rc;
	if (int rc = d.open_mig("send"))
		return rc;
	std::string why;
	int sock = tcp_socket(to, false, &why);
	/* An address that does not parse or resolve is the user's. */
	if (sock < 0)
		return fail(sock == -EINVAL ? EXIT_USAGE : EXIT_FAIL,
			    "send: " + why);
	/* Streamed as it is read; a failed save leaves the receiver a
	 * truncated stream, which it rejects (DigestSink). */
	__u64 estimate = 0;
	if (protocol_opt == Protocol::V2)
		d.dev->data_size(&estimate);
	StreamStats st;
	__u64 digest = 0;
	int out_err, ret;
	auto t0 = std::chrono::steady_clock::now();
	{
		ProgressBar bar("sending", estimate);
		ret = save_streaming(*d.mig, sock, false, &digest, &st.bytes,
				     &out_err, &why, bar.fn());
	}
	st.seconds = std::chrono::duration<double>(
			     std::chrono::steady_clock::now() - t0).count();
	if (out_err) {
		close(sock);
		return fail(EXIT_FAIL, "send: the connection failed: " +
					       std::string(strerror(-out_err)));
	}
	if (ret) {
		close(sock);
		return fail(EXIT_FAIL, "send: " + why);
	}
	shutdown(sock, SHUT_WR);
	char reply[256] = {};
	ssize_t n, got = 0;
	while (got < ssize_t(sizeof(reply) - 1) &&
	       (n = read(sock, reply + got, sizeof(reply) - 1 - got)) > 0)
		got += n;
	close(sock);
	std::string r(reply, size_t(got));
	while (!r.empty() && r.back() == '\n')
		r.pop_back();
	if (r.rfind("OK ", 0) != 0)
		return fail(EXIT_FAIL, "send: the receiver " +
					       (r.empty() ? std::string("closed the connection without a verdict")
							  : "said: " + r.substr(r.rfind("ERR ", 0) ? 0 : 4)));
	bool verified = r.substr(3) == hex64(digest);
	json j = d.report({{"protocol", protocol_name(protocol_opt)},
			   {"to", to}, {"bytes", st.bytes},
			   {"seconds", st.seconds}, {"digest", hex64(digest)},
			   {"verified", verified}});
	if (as_json)
		fmt::print("{}\n", j.dump(2));
	else
		fmt::print("sent {} bytes from {}{} to {} in {:.3f} s; receiver "
			   "{} (digest {})\n", st.bytes, d.label(), via(), to,
			   st.seconds,
			   verified ? "verified the state" : "has a DIFFERENT state",
			   hex64(digest));
	return verified ? 0 : fail(EXIT_FAIL, "send: the receiver's state differs");
}

/* recv: accept one sender, load its stream, answer with a verdict. */
int cmd_recv(const std::string &spec, const std::string &listen_addr,
	     bool as_json)
{
	std::string why;
	int lsock = tcp_socket(listen_addr, true, &why);
	if (lsock < 0)
		return fail(lsock == -EINVAL ? EXIT_USAGE : EXIT_FAIL,
			    "recv: " + why);
	CmdDevice d;
	int rc = d.open(spec);
	if (!rc)
		rc = d.open_mig("recv");
	if (rc) {
		close(lsock);
		return rc;
	}
	fmt::print(stderr, "recv: listening on {}\n", listen_addr);
	int sock = accept4(lsock, nullptr, nullptr, SOCK_CLOEXEC);
	int err = errno;
	close(lsock);
	if (sock < 0)
		return fail(EXIT_FAIL, "recv: accept: " + std::string(strerror(err)));
	StreamStats st;
	__u64 digest = 0;
	int ret;
	{
		ProgressBar bar("receiving", 0);
		ret = load_digest_run(d, sock, &st, &digest, &why, bar.fn());
	}
	auto answer = [&](const std::string &line) {
		std::string l = line + "\n";
		if (write(sock, l.data(), l.size()) < 0) {
			/* The sender is gone; the verdict is ours alone. */
		}
		close(sock);
	};
	if (ret) {
		answer("ERR " + why);
		return fail(EXIT_FAIL, "recv: " + why);
	}
	answer("OK " + hex64(digest));
	json j = d.report({{"protocol", protocol_name(protocol_opt)},
			   {"bytes", st.bytes}, {"seconds", st.seconds},
			   {"digest", hex64(digest)}, {"state", "running"}});
	if (as_json)
		fmt::print("{}\n", j.dump(2));
	else
		fmt::print("received {} bytes into {}{} in {:.3f} s, running "
			   "(digest {})\n", st.bytes, d.label(), via(),
			   st.seconds, hex64(digest));
	return 0;
}

/*
 * dirty: start dirty tracking of a device's guest memory, let the
 * workload run, report (read and clear) and stop, with a summary: pages,
 * their share of guest memory, and the ranges they form. A real device
 * gets no workload (it plays the simulated function in-process): the
 * report shows what it wrote by itself, and the second report is shown,
 * not checked (type1 reports every page of a device that cannot say).
 */
int cmd_dirty(const std::string &spec, unsigned ms, bool iommu, __u64 seed,
	      unsigned rate, size_t guest, bool as_json)
{
	CmdDevice d;
	if (int rc = d.open(spec, guest))
		return rc;
	std::string why;
	const bool workload = !d.is_real();
	DirtyTracker tr(*d.dev, d.guest());
	int ret = tr.start(!iommu);
	if (ret)
		return fail(EXIT_FAIL, "dirty: cannot start tracking: " +
					       std::string(strerror(-ret)));
	if (workload && d.vm.start_workload(seed, rate, &why))
		return fail(EXIT_FAIL, "dirty: workload: " + why);
	usleep(ms * 1000);
	/* What was posted is done: nothing writes after the report. */
	if (workload && (ret = d.vm.drain_workload(10000)))
		return fail(EXIT_FAIL, "dirty: the workload did not finish: " +
					       std::string(strerror(-ret)));
	std::vector<__u64> bm;
	ret = tr.report(&bm);
	if (ret)
		return fail(EXIT_FAIL, "dirty: report: " + std::string(strerror(-ret)));
	/* A second report right away: read-and-clear leaves nothing. */
	std::vector<__u64> again;
	tr.report(&again);
	__u64 left = 0;
	for (__u64 w : again)
		left += __u64(__builtin_popcountll(w));
	std::string mode = tr.mode();
	tr.stop();

	__u64 pages = 0, npages = guest / DirtyTracker::PAGE;
	json ranges = json::array();
	std::string text;
	for (__u64 p = 0; p < npages;) {
		if (!(bm[p / 64] >> (p % 64) & 1)) {
			p++;
			continue;
		}
		__u64 q = p;
		while (q < npages && (bm[q / 64] >> (q % 64) & 1))
			q++;
		pages += q - p;
		__u64 iova = d.guest().iova + p * DirtyTracker::PAGE;
		ranges.push_back({{"iova", iova},
				  {"bytes", (q - p) * DirtyTracker::PAGE}});
		if (ranges.size() <= 8)
			text += fmt::format("  {:#x} + {} pages\n", iova, q - p);
		p = q;
	}
	json j = d.report({{"tracking", mode},
			   {"workload", workload},
			   {"workload_ms", ms},
			   {"workload_descriptors", d.vm.workload_completed()},
			   {"guest_pages", npages}, {"dirty_pages", pages},
			   {"dirty_ranges", ranges.size()}, {"after_clear", left},
			   {"ranges", ranges}});
	if (as_json) {
		fmt::print("{}\n", j.dump(2));
	} else {
		std::string after = workload ?
			fmt::format("{} ms of workload ({} descriptors)", ms,
				    d.vm.workload_completed()) :
			fmt::format("{} ms (a real device: no workload)", ms);
		fmt::print("{}: {} dirty pages of {} ({:.1f}%) in {} ranges after "
			   "{}, by {}\n{}", d.label(), pages, npages,
			   100.0 * pages / std::max<__u64>(npages, 1),
			   ranges.size(), after, mode, text);
		if (ranges.size() > 8)
			fmt::print("  ... {} more ranges\n", ranges.size() - 8);
		fmt::print("read and cleared: a second report has {} pages\n", left);
	}
	/* Only a drained workload promises that nothing wrote since. */
	return left && workload ?
		fail(EXIT_FAIL, "dirty: pages left after read-and-clear") : 0;
}

struct MigrateArgs {
	std::string src, dst;
	bool no_precopy = false;
	bool workload = false;
	__u64 seed = 1;
	unsigned rate = 20000;
	unsigned warmup_ms = 200;
	double budget_ms = 10;
	unsigned max_passes = 10;
	size_t guest = 16 << 20;
	bool as_json = false;
};

/*
 * migrate: each device with its own container and guest memory, in this
 * process; either may be a real device (no workload on one: it plays the
 * simulated function's guest driver in-process).
 */
int cmd_migrate(const MigrateArgs &a)
{
	CmdDevice src, dst;
	std::string why;
	if (a.workload && is_device_path(a.src))
		return fail(EXIT_USAGE, "--workload plays the simulated DMA "
				"function's guest driver in this process; " +
				a.src + " is a real device");
	if (int rc = src.open(a.src, a.guest))
		return rc;
	if (int rc = dst.open(a.dst, a.guest))
		return rc;
	if (int rc = src.open_mig("migrate"))
		return rc;
	if (int rc = dst.open_mig("migrate"))
		return rc;
	Device &s = *src.dev;
	if (a.workload) {
		if (src.vm.start_workload(a.seed, a.rate, &why))
			return fail(EXIT_FAIL, "workload: " + why);
		usleep(a.warmup_ms * 1000);
	}
	MigrateOptions opt;
	opt.precopy = !a.no_precopy;
	opt.max_passes = a.max_passes;
	opt.downtime_budget_ms = a.budget_ms;
	opt.stream = stream_opt;
	opt.cpu_written = src.vm.cpu_written();
	MigrateReport r;
	__u64 estimate = 0;
	if (protocol_opt == Protocol::V2)
		s.data_size(&estimate);
	int ret;
	{
		ProgressBar bar("migrating", estimate);
		ret = migrate(*src.mig, src.guest(), *dst.mig, dst.guest(), opt,
			      [&] { src.vm.stop_workload(); }, &r, &why,
			      bar.fn());
	}
	if (ret)
		return fail(EXIT_FAIL, "migrate: " + why);

	json passes = json::array();
	for (auto &p : r.passes)
		passes.push_back({{"device_bytes", p.device_bytes},
				  {"guest_pages", p.guest_pages},
				  {"seconds", p.seconds}});
	double gbs = r.total_bytes / std::max(r.total_seconds, 1e-9) / 1e9;
	json j = {{"source", src.name()}, {"destination", dst.name()},
		  {"protocol", protocol_name(protocol_opt)},
		  {"precopy", r.precopy}, {"dirty_tracking", r.dirty_tracking},
		  {"workload_descriptors", src.vm.workload_completed()},
		  {"passes", passes}, {"stop_copy_bytes", r.stop_copy_bytes},
		  {"final_guest_pages", r.final_guest_pages},
		  {"downtime_ms", r.downtime_ms},
		  {"total_seconds", r.total_seconds},
		  {"total_bytes", r.total_bytes}, {"throughput_gbs", gbs},
		  {"verified", r.verified}, {"verification", r.verify_detail}};
	if (a.as_json) {
		fmt::print("{}\n", j.dump(2));
	} else {
		fmt::print("migration {} -> {}{}\n", src.label(), dst.label(),
			   via());
		fmt::print("  pre-copy          {}\n", r.precopy ? "yes" : "no");
		fmt::print("  dirty tracking    {}\n", r.dirty_tracking);
		if (a.workload)
			fmt::print("  workload          {} descriptors done by the "
				   "source\n", src.vm.workload_completed());
		for (size_t i = 0; i < r.passes.size(); i++)
			fmt::print("  pass {:<2}           {:>12} device bytes, {:>6} "
				   "guest pages, {:.1f} ms\n", i + 1,
				   r.passes[i].device_bytes, r.passes[i].guest_pages,
				   r.passes[i].seconds * 1e3);
		fmt::print("  stop-copy         {:>12} device bytes, {:>6} "
			   "guest pages\n", r.stop_copy_bytes, r.final_guest_pages);
		fmt::print("  downtime          {:.2f} ms (budget {} ms)\n",
			   r.downtime_ms, a.budget_ms);
		fmt::print("  total             {:.1f} MB in {:.3f} s, {:.2f} GB/s\n",
			   r.total_bytes / 1e6, r.total_seconds, gbs);
		fmt::print("  verification      {}: {}\n",
			   r.verified ? "PASS" : "FAIL", r.verify_detail);
	}
	return r.verified ? 0 : fail(EXIT_FAIL, "migrate: verification failed: " +
							 r.verify_detail);
}

/* The conformance suite (tools/conformance) on the drivers and devices. */
int cmd_conformance(const std::vector<std::string> &specs,
		    const std::vector<std::string> &devices,
		    const std::string &peer, const std::string &junit,
		    const std::string &filter)
{
	namespace cf = uvfio::conformance;
	cf::Options opt;
	if (!peer.empty()) {
		if (devices.empty())
			return fail(EXIT_USAGE, "--peer goes with --device: "
					"it is where a real device's stream "
					"is loaded");
		cf::Target t;
		std::string why;
		if (!cf::parse_device_target(peer, &t, &why))
			return fail(EXIT_USAGE, "--peer: " + why);
		CmdDevice d;
		if (int rc = d.open(peer))
			return rc;
		opt.peer = peer;
	}
	for (const std::string &s : specs) {
		cf::Target t;
		if (is_device_path(s))
			return fail(EXIT_USAGE, "\"" + s + "\" is a device, not "
					"a driver: --device " + s);
		if (!cf::parse_target(s, &t))
			return fail(EXIT_USAGE, fmt::format(
					    "bad driver spec \"{}\" (DRIVER"
					    "[,key=value...], no bdf)", s));
		opt.targets.push_back(t);
	}
	for (const std::string &path : devices) {
		cf::Target t;
		std::string why;
		if (!cf::parse_device_target(path, &t, &why))
			return fail(EXIT_USAGE, why);
		/* One line now rather than a failure in every test. */
		CmdDevice d;
		if (int rc = d.open(path))
			return rc;
		opt.targets.push_back(t);
	}
	if (!junit.empty()) {
		/* Fail before an hour of tests, not after. */
		FILE *f = std::fopen(junit.c_str(), "w");
		if (!f)
			return fail(EXIT_FAIL, fmt::format("cannot write {}: {}",
							   junit,
							   strerror(errno)));
		std::fclose(f);
		opt.junit = junit;
	}
	if (!filter.empty())
		opt.gtest_args.push_back("--gtest_filter=" + filter);
	int rc = cf::run(opt);
	if (rc == 2)
		return EXIT_USAGE;
	return rc ? fail(EXIT_FAIL, "conformance: some tests failed") : 0;
}

} // namespace

int main(int argc, char **argv)
{
	CLI::App app{"Inspect and migrate VFIO devices through the VFIO uAPI.\n"
		     "A device is a spec string, a simulated device created "
		     "for the command,\ne.g. \"simnic,bdf=0000:00:02.0,"
		     "mem=64M\" (see uvfio-spec.md); or a path, a real\n"
		     "device opened through its group: /sys/bus/pci/devices/"
		     "BDF,\n/sys/bus/mdev/devices/UUID or /dev/vfio/N@NAME (a "
		     "simulated one under uvfio-run)."};
	const char *dev_help = "device: a spec, or a real device's path";
	app.require_subcommand(1);
	app.add_flag("-v,--verbose", verbose, "print the library's log lines");
	std::string engine = "uring";
	app.add_option("--engine", engine, "stream engine for streams that run "
		       "to their end: uring (io_uring, splice) or plain "
		       "(read/write, QEMU's sizes)")
		->check(CLI::IsMember({"uring", "plain"}))->capture_default_str();
	std::string protocol = "v2";
	app.add_option("--protocol", protocol,
		       "migration uAPI for state, save, load, send, recv and "
		       "migrate: v2 (VFIO_DEVICE_FEATURE and data fds) or v1 "
		       "(the migration region)")
		->check(CLI::IsMember({"v1", "v2"}))->capture_default_str();
	std::vector<std::string> faults;
	app.add_option("--fault", faults, "arm a fault point before the "
		       "command: NAME[:N[+]][=ERRNO] (repeatable; "
		       "--fault list shows the points)")
		->allow_extra_args(false)	/* one NAME per --fault */
		->each([](const std::string &v) {
			if (v == "list") {
				print_fault_points();
				throw CLI::Success();
			}
		});
	bool as_json = false;

	auto *drivers = app.add_subcommand("drivers", "list the device drivers");
	drivers->add_flag("--json", as_json, "JSON output");

	std::string spec, file;
	auto *info = app.add_subcommand("info", "show a device's regions, "
					"interrupts and migration support");
	info->add_option("device", spec, dev_help)->required();
	info->add_flag("--json", as_json, "JSON output");

	auto *state = app.add_subcommand("state", "get the migration state, or "
					 "set it, printing each arc");
	state->add_option("device", spec, dev_help)->required();
	std::vector<std::string> targets;
	state->add_option("target", targets, "state(s) to set, in turn: "
			  "running, stop, stop_copy, resuming, running_p2p, "
			  "pre_copy, pre_copy_p2p");
	state->add_flag("--json", as_json, "JSON output");

	auto *fsm = app.add_subcommand("fsm", "walk a device's whole transition "
				       "matrix and check it");
	fsm->add_option("device", spec, dev_help)->required();
	fsm->add_flag("--json", as_json, "JSON output");

	bool stop = false;
	auto *save = app.add_subcommand("save", "save a device's state to a "
					"file or stdout");
	save->add_option("device", spec, dev_help)->required();
	save->add_option("-o,--output", file, "file, or - for stdout")
		->required();
	save->add_flag("--stop", stop, "leave the device stopped");
	save->add_flag("--json", as_json, "JSON report (on stderr with -o -)");

	auto *load = app.add_subcommand("load", "load a device's state from a "
					"file or stdin and run it");
	load->add_option("device", spec, dev_help)->required();
	load->add_option("-i,--input", file, "file, or - for stdin")
		->required();
	load->add_flag("--json", as_json, "JSON report");

	std::string addr;
	auto *send = app.add_subcommand("send", "save a device and send its state "
					"over TCP to vfio-mig-ctl recv");
	send->add_option("device", spec, dev_help)->required();
	send->add_option("--to", addr, "[HOST:]PORT of the receiver (host "
			 "default 127.0.0.1)")->required();
	send->add_flag("--json", as_json, "JSON report");

	auto *recv = app.add_subcommand("recv", "receive a device's state over "
					"TCP, load it and run it");
	recv->add_option("device", spec, dev_help)->required();
	recv->add_option("--listen", addr, "[HOST:]PORT to accept one sender on")
		->required();
	recv->add_flag("--json", as_json, "JSON report");

	unsigned dirty_ms = 100, dirty_rate = 20000;
	__u64 dirty_seed = 1;
	size_t dirty_guest = 16 << 20;
	bool dirty_iommu = false;
	auto *dirty = app.add_subcommand("dirty", "track the guest pages a busy "
					 "device writes: start, report, stop");
	dirty->add_option("device", spec, "device: a spec (the simulated DMA "
			  "function, with the workload) or a real device's "
			  "path (no workload)")->required();
	dirty->add_option("--ms", dirty_ms, "workload time between start and "
			  "report")->capture_default_str();
	dirty->add_flag("--iommu", dirty_iommu, "the IOMMU's dirty pages even if "
			"the device does DMA logging");
	auto *dirty_seed_opt = dirty->add_option("--seed", dirty_seed,
						 "workload seed")
		->capture_default_str();
	auto *dirty_rate_opt = dirty->add_option("--rate", dirty_rate,
						 "workload descriptors per "
						 "second")
		->capture_default_str();
	dirty->add_option("--guest-mem", dirty_guest, "guest memory (K/M/G)")
		->transform(CLI::AsSizeValue(false))->capture_default_str();
	dirty->add_flag("--json", as_json, "JSON output");

	MigrateArgs m;
	auto *mig = app.add_subcommand("migrate", "live-migrate one device to "
				       "another in this process, with a report");
	mig->add_option("source", m.src, "source device: a spec or a path")
		->required();
	mig->add_option("destination", m.dst, "destination device: a spec or "
			"a path")->required();
	mig->add_flag("--no-precopy", m.no_precopy,
		      "stop-and-copy only, even if the source offers PRE_COPY");
	mig->add_flag("--workload", m.workload,
		      "run the seeded guest workload on the source meanwhile");
	mig->add_option("--seed", m.seed, "workload seed")->capture_default_str();
	mig->add_option("--rate", m.rate, "workload descriptors per second")
		->capture_default_str();
	mig->add_option("--warmup-ms", m.warmup_ms,
			"workload time before the migration starts")
		->capture_default_str();
	mig->add_option("--downtime-budget", m.budget_ms,
			"switch over when what is left fits (ms)")
		->capture_default_str()->check(CLI::PositiveNumber);
	mig->add_option("--max-passes", m.max_passes, "pre-copy passes at most")
		->capture_default_str()->check(CLI::Range(1, 1000));
	mig->add_option("--guest-mem", m.guest, "guest memory per device "
			"(K/M/G suffix)")
		->transform(CLI::AsSizeValue(false))->capture_default_str();
	mig->add_flag("--json", as_json, "JSON report");

	std::vector<std::string> conf_specs, conf_devices;
	std::string junit, filter, conf_peer;
	auto *conf = app.add_subcommand("conformance", "run the conformance "
					"suite against drivers");
	conf->add_option("-d,--driver", conf_specs, "driver to test, as a "
			 "device spec without bdf (\"simnic\" or "
			 "\"simnic,mem=4M\"); repeatable; default: every "
			 "registered driver (plugins: name them, with "
			 "UVFIO_DRIVER_PATH set)");
	conf->add_option("--device", conf_devices, "a real device to test "
			 "(/sys/bus/pci/devices/BDF, /sys/bus/mdev/devices/"
			 "UUID or /dev/vfio/N@NAME), opened through its group "
			 "for each test; repeatable");
	conf->add_option("--peer", conf_peer, "a second real device of the "
			 "same kind (a path, as --device): the --device tests "
			 "load their streams into it, and the round trip "
			 "runs (default: $UVFIO_CONFORMANCE_PEER)");
	conf->add_option("--junit", junit, "write a JUnit XML report to FILE");
	conf->add_option("--filter", filter, "run only tests matching a "
			 "GoogleTest filter (e.g. '*Fsm*:*DataFd*')");

	try {
		app.parse(argc, argv);
	} catch (const CLI::CallForHelp &e) {
		return app.exit(e);
	} catch (const CLI::CallForAllHelp &e) {
		return app.exit(e);
	} catch (const CLI::Success &e) {
		return app.exit(e);
	} catch (const CLI::ParseError &e) {
		fmt::print(stderr, "vfio-mig-ctl: {}\nRun with --help for more "
			   "information.\n", e.what());
		return EXIT_USAGE;
	}

	stream_opt.uring = engine == "uring";
	parse_protocol(protocol, &protocol_opt);
	/* The other commands speak v2 (or none): say so, do not ignore it. */
	if (protocol_opt == Protocol::V1 &&
	    !(*state || *save || *load || *send || *recv || *mig))
		return fail(EXIT_USAGE, "--protocol v1 applies to state, save, "
			    "load, send, recv and migrate");
	/* A peer that goes away is an error to report, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Before any device or thread exists: a simulated device's data
	 * fds and memfds count against this process (conformance holds
	 * every driver's). Failing to raise it only leaves the default.
	 */
	raise_nofile_limit();
	uvfio_set_log_fn(lib_log, nullptr);
	uvfio_set_log_level(verbose ? UVFIO_LOG_DEBUG : UVFIO_LOG_ERR);
	for (const std::string &f : faults)
		if (int ret = arm_fault(f))
			return ret;

	auto run = [&]() {
		if (*drivers)
			return cmd_drivers(as_json);
		if (*info)
			return cmd_info(spec, as_json);
		if (*state)
			return cmd_state(spec, targets, as_json);
		if (*fsm)
			return cmd_fsm(spec, as_json);
		if (*save)
			return cmd_save(spec, file, stop, as_json);
		if (*load)
			return cmd_load(spec, file, as_json);
		if (*send)
			return cmd_send(spec, addr, as_json);
		if (*dirty) {
			if (is_device_path(spec) &&
			    (dirty_seed_opt->count() || dirty_rate_opt->count()))
				return fail(EXIT_USAGE, "dirty: --seed and --rate "
						"are the workload's, which plays the "
						"simulated function in-process; " +
						spec + " is a real device");
			return cmd_dirty(spec, dirty_ms, dirty_iommu, dirty_seed,
					 dirty_rate, dirty_guest, as_json);
		}
		if (*recv)
			return cmd_recv(spec, addr, as_json);
		if (*conf)
			return cmd_conformance(conf_specs, conf_devices,
					       conf_peer, junit, filter);
		m.as_json = as_json;
		return cmd_migrate(m);
	};
	return check_fired_faults(run());
}
