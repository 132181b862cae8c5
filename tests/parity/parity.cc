// SPDX-License-Identifier: GPL-2.0-only
/*
 * uvfio-parity: the differential check between uvfio's core and the
 * kernel's. It opens one VFIO device by its path, the way a VMM does
 * (tools/lib's opener over the kernel transport: plain system calls, so
 * the same binary runs on a kernel device and, under uvfio-run, on a
 * simulated one), and runs the client-side checks whose outcome the VFIO
 * core decides: VFIO_DEVICE_FEATURE header validation, the migration FSM
 * matrix, what a failed SET leaves, data-fd file semantics, group and
 * container ioctl validation, type1 MAP/UNMAP/DIRTY_PAGES validation and
 * DMA logging validation.
 *
 *   uvfio-parity [--timeout SECONDS] DEVICE
 *   uvfio-parity --unit NAME DEVICE      (one unit, no supervisor)
 *   uvfio-parity --list                  (the unit names)
 *
 * DEVICE is /sys/bus/pci/devices/BDF, /sys/bus/mdev/devices/UUID or
 * /dev/vfio/N@NAME. Each check prints one line, "ID: result": the ID is
 * stable and dotted, the result holds no address, time or fd number, so
 * two runs on one device print the same text, and a run on uvfio and a
 * run on Linux can be compared line by line (tests/parity/compare.sh,
 * against the differences listed in Documentation/kernel-parity.md).
 *
 * Robustness: the checks run in units, each in a process of its own (this
 * program executed again with --unit), with a deadline. A unit that
 * crashes or hangs loses only its own remaining lines, and prints
 * "UNIT._run: ..." instead; the others run. The deadline is 60 s per unit
 * unless --timeout says otherwise. Each unit opens the device
 * afresh (under uvfio-run that is a fresh simulated device too), and the
 * device is reset between checks that change its state. Reads of data
 * fds wait for data with poll(2) first and give up after a deadline.
 *
 * Exit status: 0 when the checks ran (whatever they found), 1 when the
 * device cannot be opened, 2 for a usage error.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <uvfio/tools/transport.h>
#include <uvfio/tools/vfio_open.h>
#include <uvfio/uapi/vfio.h>

extern char **environ;

namespace {

using namespace uvfio::tools;

/* -------- output -------- */

void emit(const std::string &id, const std::string &result)
{
	std::string line = id + ": " + result + "\n";
	const char *p = line.data();
	size_t left = line.size();
	/* One write per line: a unit that dies never leaves half a line. */
	while (left) {
		ssize_t n = ::write(STDOUT_FILENO, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		left -= static_cast<size_t>(n);
	}
}

std::string ename(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(EBADF)
	E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(ENODEV)
	E(EINVAL) E(ENOTTY) E(ENOSPC) E(ESPIPE) E(EPIPE) E(ERANGE) E(ENOSYS)
	E(ENOMSG) E(EOVERFLOW) E(EBADFD) E(EOPNOTSUPP) E(ECONNRESET)
	E(ETIMEDOUT) E(EMFILE) E(ENOTSOCK)
#undef E
	default:
		return "E" + std::to_string(err);
	}
}

/* A call's outcome: "ok" or the errno's name. */
std::string res(long ret)
{
	return ret >= 0 ? "ok" : ename(static_cast<int>(ret));
}

const char *state_names[] = {"ERROR",    "STOP",        "RUNNING",
			     "STOP_COPY", "RESUMING",   "RUNNING_P2P",
			     "PRE_COPY",  "PRE_COPY_P2P"};
constexpr __u32 NSTATES = 8;

std::string sname(__u32 s)
{
	return s < NSTATES ? state_names[s] : std::to_string(s);
}

std::string hex(unsigned long long v)
{
	char b[32];
	std::snprintf(b, sizeof(b), "0x%llx", v);
	return b;
}

/* F_GETFL, by name: the access mode and the status flags userspace sees. */
std::string fl_name(int fl)
{
	std::string s;
	switch (fl & O_ACCMODE) {
	case O_RDONLY: s = "RDONLY"; break;
	case O_WRONLY: s = "WRONLY"; break;
	default: s = "RDWR"; break;
	}
	fl &= ~O_ACCMODE;
	/*
	 * The kernel's O_LARGEFILE (x86-64 and asm-generic): a 64-bit libc
	 * defines its own as 0, but F_GETFL shows the kernel's bit.
	 */
	constexpr int K_O_LARGEFILE = 0100000;
	struct { int bit; const char *name; } bits[] = {
		{O_NONBLOCK, "NONBLOCK"}, {O_APPEND, "APPEND"},
		{K_O_LARGEFILE, "LARGEFILE"}, {O_DIRECT, "DIRECT"},
		{O_NOATIME, "NOATIME"}, {O_SYNC, "SYNC"}, {O_ASYNC, "ASYNC"},
	};
	for (auto &b : bits)
		if (b.bit && (fl & b.bit) == b.bit) {
			s += std::string("|") + b.name;
			fl &= ~b.bit;
		}
	if (fl)
		s += "|" + hex(static_cast<unsigned int>(fl));
	return s;
}

std::string poll_name(short ev)
{
	std::string s;
	struct { short bit; const char *name; } bits[] = {
		{POLLIN, "IN"}, {POLLPRI, "PRI"}, {POLLOUT, "OUT"},
		{POLLERR, "ERR"}, {POLLHUP, "HUP"}, {POLLNVAL, "NVAL"},
	};
	for (auto &b : bits)
		if (ev & b.bit)
			s += (s.empty() ? "" : "|") + std::string(b.name);
	return s.empty() ? "none" : s;
}

/* poll(2) one fd: the events seen (none after timeout_ms), or the errno. */
std::string poll_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = {fd, events, 0};
	int n;
	do
		n = ::poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return ename(errno);
	return poll_name(n ? p.revents : 0);
}

long long now_ms()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Anonymous memory, unmapped on scope exit. */
class Mem
{
public:
	explicit Mem(size_t size, int prot = PROT_READ | PROT_WRITE)
		: size_(size)
	{
		void *p = mmap(nullptr, size, prot, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		p_ = p == MAP_FAILED ? nullptr : static_cast<char *>(p);
		if (p_ && (prot & PROT_WRITE))
			std::memset(p_, 0, size);
	}
	~Mem()
	{
		if (p_)
			munmap(p_, size_);
	}
	Mem(const Mem &) = delete;
	Mem &operator=(const Mem &) = delete;
	char *get() const { return p_; }
	__u64 addr(size_t off = 0) const
	{
		return reinterpret_cast<__u64>(p_ + off);
	}
	/* Give the pages back: the range becomes a hole. */
	void release()
	{
		if (p_)
			munmap(p_, size_);
		p_ = nullptr;
	}

private:
	char *p_ = nullptr;
	size_t size_;
};

/* A user address that is never mapped: copies from or to it fault. */
void *const BAD_PTR = reinterpret_cast<void *>(8);

/* -------- the unit's context -------- */

struct Unit {
	Transport &t;
	DeviceName dn;
	VfioDevice dev;

	Unit(Transport &tr, const DeviceName &name) : t(tr), dn(name), dev(tr) {}
	int fd() const { return dev.fd(); }
};

/* -------- VFIO_DEVICE_FEATURE -------- */

/*
 * VFIO_DEVICE_FEATURE with `len` payload bytes (copied in and back out);
 * argsz is 8 + len unless given. The buffer is larger than argsz says, so
 * a short argsz is refused by the core's check, never by a fault.
 */
long feature(Transport &t, int fd, __u32 flags, void *payload, size_t len,
	     std::optional<__u32> argsz = {})
{
	std::vector<__u64> buf((sizeof(vfio_device_feature) + len + 64) / 8 + 1);
	auto *f = reinterpret_cast<struct vfio_device_feature *>(buf.data());
	f->argsz = argsz ? *argsz : static_cast<__u32>(sizeof(*f) + len);
	f->flags = flags;
	if (len)
		std::memcpy(f->data, payload, len);
	long r = t.ioctl(fd, VFIO_DEVICE_FEATURE, f);
	if (len)
		std::memcpy(payload, f->data, len);
	return r;
}

/*
 * A feature header that ends a readable page, the next page inaccessible:
 * the header is read, the payload (argsz says there is one) faults.
 */
long feature_at_edge(Transport &t, int fd, __u32 flags, __u32 argsz)
{
	Mem page(2 * 4096);
	if (!page.get())
		return -ENOMEM;
	char *end = page.get() + 4096;
	if (mprotect(end, 4096, PROT_NONE))
		return -errno;
	auto *h = reinterpret_cast<struct vfio_device_feature *>(end - 8);
	h->argsz = argsz;
	h->flags = flags;
	return t.ioctl(fd, VFIO_DEVICE_FEATURE, h);
}

constexpr __u32 GET = VFIO_DEVICE_FEATURE_GET;
constexpr __u32 SET = VFIO_DEVICE_FEATURE_SET;
constexpr __u32 PROBE = VFIO_DEVICE_FEATURE_PROBE;

/* What a SET or GET of MIG_DEVICE_STATE left in the user's struct. */
constexpr __s32 FD_SENTINEL = 0x5a5a5a5a;

struct MigResult {
	long ret;
	__u32 state;	/* device_state as written back */
	__s32 data_fd;	/* data_fd as written back */
};

MigResult mig_state(Transport &t, int fd, __u32 flags, __u32 state)
{
	struct vfio_device_feature_mig_state mig = {};
	mig.device_state = state;
	mig.data_fd = FD_SENTINEL;
	long r = feature(t, fd, flags | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			 &mig, sizeof(mig));
	return {r, mig.device_state, mig.data_fd};
}

std::string fd_word(__s32 v)
{
	if (v == FD_SENTINEL)
		return "untouched";
	return v < 0 ? std::to_string(v) : "fd";
}

int get_state(Transport &t, int fd, __u32 *state)
{
	MigResult r = mig_state(t, fd, GET, 0);
	if (r.ret < 0)
		return static_cast<int>(r.ret);
	*state = r.state;
	return 0;
}

/* SET; on success *data_fd is the new fd or -1. */
int set_state(Transport &t, int fd, __u32 state, int *data_fd)
{
	MigResult r = mig_state(t, fd, SET, state);
	*data_fd = -1;
	if (r.ret < 0)
		return static_cast<int>(r.ret);
	if (r.data_fd >= 0 && r.data_fd != FD_SENTINEL)
		*data_fd = r.data_fd;
	return 0;
}

void close_fd(Transport &t, int *fd)
{
	if (*fd >= 0)
		t.close(*fd);
	*fd = -1;
}

/* VFIO_DEVICE_RESET, then the state must be RUNNING: "" or what is wrong. */
std::string reset_device(Unit &u)
{
	long r = u.t.ioctl(u.fd(), VFIO_DEVICE_RESET, nullptr);
	if (r < 0)
		return "reset " + ename(static_cast<int>(r));
	__u32 s = 0;
	int g = get_state(u.t, u.fd(), &s);
	if (g < 0)
		return "get after reset " + ename(g);
	if (s != VFIO_DEVICE_STATE_RUNNING)
		return "reset left " + sname(s);
	return "";
}

/* -------- data fds -------- */

/*
 * Read a saving fd until its stream ends; *end says how: "EOF" (0),
 * "ENOMSG" or another errno, or "timeout". poll(2) first, so a reader
 * waits for data without spinning; the read runs after the poll's timeout
 * too, because a pre-copy fd with nothing now is not readable but answers
 * read() with ENOMSG (a kernel driver's file with no poll is always
 * readable).
 */
size_t drain(Transport &t, int fd, std::string *end, std::vector<char> *out,
	     int budget_ms = 20000)
{
	std::vector<char> buf(256 << 10);
	size_t total = 0;
	long long deadline = now_ms() + budget_ms;
	for (;;) {
		if (now_ms() > deadline) {
			*end = "timeout";
			return total;
		}
		struct pollfd p = {fd, POLLIN, 0};
		::poll(&p, 1, 200);
		ssize_t n = t.read(fd, buf.data(), buf.size());
		if (n > 0) {
			total += static_cast<size_t>(n);
			if (out)
				out->insert(out->end(), buf.data(), buf.data() + n);
			continue;
		}
		if (n == -EAGAIN || n == -EINTR)
			continue;
		*end = n == 0 ? "EOF" : ename(static_cast<int>(n));
		return total;
	}
}

long write_all(Transport &t, int fd, const std::vector<char> &data)
{
	size_t off = 0;
	while (off < data.size()) {
		ssize_t n = t.write(fd, data.data() + off, data.size() - off);
		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n <= 0)
			return n ? n : -EIO;
		off += static_cast<size_t>(n);
	}
	return 0;
}

/* A device's STOP_COPY stream, for loading into RESUMING. */
int save_stream(Unit &u, std::vector<char> *stream, std::string *why)
{
	std::string r = reset_device(u);
	if (!r.empty()) {
		*why = r;
		return -EIO;
	}
	int dfd;
	int ret = set_state(u.t, u.fd(), VFIO_DEVICE_STATE_STOP_COPY, &dfd);
	if (ret < 0 || dfd < 0) {
		*why = "STOP_COPY " + (ret < 0 ? ename(ret) : "gave no fd");
		return ret < 0 ? ret : -EIO;
	}
	std::string end;
	drain(u.t, dfd, &end, stream);
	close_fd(u.t, &dfd);
	if (end != "EOF") {
		*why = "STOP_COPY read ended " + end;
		return -EIO;
	}
	r = reset_device(u);
	if (!r.empty()) {
		*why = r;
		return -EIO;
	}
	return 0;
}

/* -------- unit: feature (the VFIO_DEVICE_FEATURE header) -------- */

void unit_feature(Unit &u)
{
	Transport &t = u.t;
	int fd = u.fd();
	constexpr __u32 MIG = VFIO_DEVICE_FEATURE_MIGRATION;
	struct vfio_device_feature_migration m = {};
	const size_t ml = sizeof(m);

	/* vfio_ioctl_device_feature(): argsz, unknown flags, GET+SET. */
	emit("feature.argsz_zero", res(feature(t, fd, GET | MIG, &m, ml, 0)));
	emit("feature.argsz_short", res(feature(t, fd, GET | MIG, &m, ml, 7)));
	emit("feature.argsz_header_only",
	     res(feature(t, fd, GET | MIG, &m, ml, 8)));
	emit("feature.flags_unknown_bit19",
	     res(feature(t, fd, GET | MIG | (1u << 19), &m, ml)));
	emit("feature.flags_unknown_bit31",
	     res(feature(t, fd, GET | MIG | (1u << 31), &m, ml)));
	emit("feature.get_set", res(feature(t, fd, GET | SET | MIG, &m, ml)));
	emit("feature.bad_pointer",
	     res(t.ioctl(fd, VFIO_DEVICE_FEATURE, BAD_PTR)));
	/* The header is refused before the index is looked at. */
	emit("feature.unknown_index.argsz_short",
	     res(feature(t, fd, GET | 0xffff, &m, ml, 7)));
	emit("feature.unknown_index.get_set",
	     res(feature(t, fd, GET | SET | 0xffff, &m, ml)));
	/* An index the core does not know goes to ops->device_feature. */
	emit("feature.unknown_index.get", res(feature(t, fd, GET | 0xffff, &m, ml)));
	emit("feature.unknown_index.probe",
	     res(feature(t, fd, PROBE | GET | 0xffff, &m, ml)));
	emit("feature.unknown_index.1000",
	     res(feature(t, fd, GET | 1000, &m, ml)));

	/* vfio_check_feature() through MIGRATION (GET only). */
	emit("feature.check.none", res(feature(t, fd, MIG, &m, ml)));
	emit("feature.check.probe", res(feature(t, fd, PROBE | MIG, &m, ml)));
	emit("feature.check.probe_get",
	     res(feature(t, fd, PROBE | GET | MIG, &m, ml)));
	emit("feature.check.probe_set",
	     res(feature(t, fd, PROBE | SET | MIG, &m, ml)));
	emit("feature.check.probe_get_set",
	     res(feature(t, fd, PROBE | GET | SET | MIG, &m, ml)));
	/* PROBE does not look at the payload size. */
	emit("feature.check.probe_get_no_payload",
	     res(feature(t, fd, PROBE | GET | MIG, &m, ml, 8)));
	emit("feature.check.set_unsupported",
	     res(feature(t, fd, SET | MIG, &m, ml)));
	emit("feature.check.payload_short",
	     res(feature(t, fd, GET | MIG, &m, ml, 8 + ml - 1)));
	m = {};
	long r = feature(t, fd, GET | MIG, &m, ml);
	emit("feature.migration.get",
	     r < 0 ? res(r) : "ok flags=" + hex(m.flags));
	emit("feature.migration.get_payload_fault",
	     res(feature_at_edge(t, fd, GET | MIG, 16)));
}

/* -------- unit: migration (MIG_DEVICE_STATE, MIG_DATA_SIZE) -------- */

void unit_migration(Unit &u)
{
	Transport &t = u.t;
	int fd = u.fd();
	constexpr __u32 ST = VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	constexpr __u32 DS = VFIO_DEVICE_FEATURE_MIG_DATA_SIZE;
	struct vfio_device_feature_mig_state s = {};
	struct vfio_device_feature_mig_data_size d = {};

	/* A device keeps its state across closes (mtty does): start RUNNING. */
	std::string rr = reset_device(u);
	if (!rr.empty())
		emit("migration._setup", rr);

	emit("migration.state.probe", res(feature(t, fd, PROBE | ST, &s, 8)));
	emit("migration.state.probe_get",
	     res(feature(t, fd, PROBE | GET | ST, &s, 8)));
	emit("migration.state.probe_set",
	     res(feature(t, fd, PROBE | SET | ST, &s, 8)));
	emit("migration.state.probe_get_set",
	     res(feature(t, fd, PROBE | GET | SET | ST, &s, 8)));
	emit("migration.state.none", res(feature(t, fd, ST, &s, 8)));
	emit("migration.state.get_payload_short",
	     res(feature(t, fd, GET | ST, &s, 8, 8 + 7)));
	emit("migration.state.set_payload_short",
	     res(feature(t, fd, SET | ST, &s, 8, 8 + 7)));
	emit("migration.state.get_payload_zero",
	     res(feature(t, fd, GET | ST, &s, 8, 8)));
	MigResult g = mig_state(t, fd, GET, 0);
	emit("migration.state.get",
	     g.ret < 0 ? res(g.ret)
		       : "ok " + sname(g.state) + " data_fd=" + fd_word(g.data_fd));
	/* A SET to the current state does nothing and opens nothing. */
	g = mig_state(t, fd, SET, VFIO_DEVICE_STATE_RUNNING);
	emit("migration.state.set_current",
	     g.ret < 0 ? res(g.ret)
		       : "ok " + sname(g.state) + " data_fd=" + fd_word(g.data_fd));
	emit("migration.state.set_payload_fault",
	     res(feature_at_edge(t, fd, SET | ST, 16)));
	emit("migration.state.get_payload_fault",
	     res(feature_at_edge(t, fd, GET | ST, 16)));

	emit("migration.data_size.probe", res(feature(t, fd, PROBE | DS, &d, 8)));
	emit("migration.data_size.probe_get",
	     res(feature(t, fd, PROBE | GET | DS, &d, 8)));
	emit("migration.data_size.probe_set",
	     res(feature(t, fd, PROBE | SET | DS, &d, 8)));
	emit("migration.data_size.set", res(feature(t, fd, SET | DS, &d, 8)));
	emit("migration.data_size.payload_short",
	     res(feature(t, fd, GET | DS, &d, 8, 8 + 7)));
	d.stop_copy_length = 0;
	long r = feature(t, fd, GET | DS, &d, 8);
	emit("migration.data_size.get",
	     r < 0 ? res(r)
		   : std::string("ok ") + (d.stop_copy_length ? "nonzero" : "zero"));
}

/* -------- units: fsm.FROM (the SET matrix from one state) -------- */

void unit_fsm(Unit &u, __u32 from)
{
	Transport &t = u.t;
	int fd = u.fd();
	const std::string pre = "fsm." + sname(from) + "->";
	std::vector<char> stream;
	std::string why;

	/* RESUMING is left through a load: it needs a real stream. */
	if (from == VFIO_DEVICE_STATE_RESUMING &&
	    save_stream(u, &stream, &why) < 0) {
		emit("fsm." + sname(from) + "._setup", "save failed: " + why);
		return;
	}

	/* Every target, ERROR and one past the last state included. */
	for (__u32 to = 0; to <= NSTATES; to++) {
		const std::string id = pre + sname(to);
		std::string r = reset_device(u);
		if (!r.empty()) {
			emit(id, "setup: " + r);
			continue;
		}
		/* Reach `from` the way the FSM allows: one SET from RUNNING. */
		int sfd = -1;
		if (from != VFIO_DEVICE_STATE_RUNNING) {
			int ret = set_state(t, fd, from, &sfd);
			if (ret < 0) {
				emit(id, "setup: SET " + sname(from) + " " +
						 ename(ret));
				continue;
			}
			if (from == VFIO_DEVICE_STATE_RESUMING) {
				long w = sfd < 0 ? -EBADF : write_all(t, sfd, stream);
				if (w < 0) {
					emit(id, "setup: write stream " +
							 ename(static_cast<int>(w)));
					close_fd(t, &sfd);
					continue;
				}
			}
		}
		MigResult m = mig_state(t, fd, SET, to);
		if (m.ret >= 0) {
			std::string out = "ok";
			if (m.data_fd == FD_SENTINEL)
				out += " data_fd=untouched";
			else if (m.data_fd >= 0)
				out += " fd";
			else if (m.data_fd != -1)
				out += " data_fd=" + std::to_string(m.data_fd);
			if (m.state != to)
				out += " device_state=" + sname(m.state);
			emit(id, out);
			if (m.data_fd >= 0 && m.data_fd != FD_SENTINEL)
				t.close(m.data_fd);
		} else {
			emit(id, res(m.ret));
			/* What the failed SET left: the device, and the struct. */
			__u32 now = 0;
			int gr = get_state(t, fd, &now);
			emit(id + ".after",
			     std::string("state=") +
				     (gr < 0 ? ename(gr) : sname(now)) +
				     " device_state=" +
				     (m.state == to ? "kept" : sname(m.state)) +
				     " data_fd=" + fd_word(m.data_fd));
		}
		close_fd(t, &sfd);
	}
	std::string r = reset_device(u);
	if (!r.empty())
		emit("fsm." + sname(from) + "._cleanup", r);
}

/* -------- unit: datafd (the file userspace holds) -------- */

std::string getfl(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? ename(errno) : fl_name(fl);
}

std::string cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	return fl < 0 ? ename(errno) : (fl & FD_CLOEXEC) ? "yes" : "no";
}

std::string set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return ename(errno);
	if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return ename(errno);
	return "ok";
}

std::string lseek_res(int fd, off_t off, int whence)
{
	off_t r = ::lseek(fd, off, whence);
	return r < 0 ? ename(errno) : "ok";
}

std::string rw_res(ssize_t n)
{
	if (n < 0)
		return ename(static_cast<int>(n));
	return n == 0 ? "0" : "data";
}

long precopy_info(Transport &t, int dfd, __u32 argsz, void *arg = nullptr)
{
	struct vfio_precopy_info info = {};
	info.argsz = argsz;
	return t.ioctl(dfd, VFIO_MIG_GET_PRECOPY_INFO, arg ? arg : &info);
}

/* The checks every data fd gets, saving or resuming. */
void file_checks(Unit &u, const std::string &p, int dfd)
{
	Transport &t = u.t;
	char b[16] = {};

	emit(p + ".cloexec", cloexec(dfd));
	emit(p + ".fl", getfl(dfd));
	emit(p + ".lseek", lseek_res(dfd, 0, SEEK_CUR));
	emit(p + ".lseek_set", lseek_res(dfd, 0, SEEK_SET));
	emit(p + ".pread", rw_res(t.pread(dfd, b, sizeof(b), 0)));
	emit(p + ".pwrite", rw_res(t.pwrite(dfd, b, sizeof(b), 0)));
	emit(p + ".pread_negative", rw_res(t.pread(dfd, b, sizeof(b), -1)));
	emit(p + ".ioctl_unknown",
	     res(t.ioctl(dfd, _IO(VFIO_TYPE, VFIO_BASE + 99), nullptr)));
	emit(p + ".device_ioctl",
	     res(t.ioctl(dfd, VFIO_DEVICE_GET_INFO, b)));
}

/*
 * Reset the device and SET state: the stream's fd; -1 after a
 * "PREFIX._setup" line when the SET gives none; -2 after a
 * "datafd._setup" line when the reset fails (the unit stops).
 */
int start_stream(Unit &u, __u32 state,
		 const std::string &prefix)
{
	std::string r = reset_device(u);
	if (!r.empty()) {
		emit("datafd._setup", r);
		return -2;
	}
	int dfd = -1;
	int ret = set_state(u.t, u.fd(), state, &dfd);
	if (ret < 0 || dfd < 0) {
		emit(prefix + "._setup", ret < 0 ? ename(ret) : "no data fd");
		return -1;
	}
	return dfd;
}

void unit_datafd(Unit &u)
{
	Transport &t = u.t;
	int fd = u.fd();
	char b[16] = {};
	std::string end, r;
	int dfd = -1;
	int ret;

	/* STOP_COPY: a saving fd to its end, then after the state is left. */
	dfd = start_stream(u, VFIO_DEVICE_STATE_STOP_COPY, "datafd.stop_copy");
	if (dfd == -2)
		return;
	if (dfd >= 0) {
		const std::string p = "datafd.stop_copy";
		file_checks(u, p, dfd);
		emit(p + ".write", rw_res(t.write(dfd, b, sizeof(b))));
		emit(p + ".poll_in", poll_fd(dfd, POLLIN, 2000));
		emit(p + ".poll_out", poll_fd(dfd, POLLOUT, 0));
		emit(p + ".precopy_info", res(precopy_info(t, dfd, 24)));
		emit(p + ".read_zero", rw_res(t.read(dfd, b, 0)));
		size_t n = drain(t, dfd, &end, nullptr);
		emit(p + ".end", std::string(n ? "data, then " : "") + end);
		emit(p + ".read_after_end", rw_res(t.read(dfd, b, sizeof(b))));
		emit(p + ".poll_at_end", poll_fd(dfd, POLLIN, 2000));
		emit(p + ".set_nonblock", set_nonblock(dfd));
		emit(p + ".fl_nonblock", getfl(dfd));
		emit(p + ".read_nonblock_at_end",
		     rw_res(t.read(dfd, b, sizeof(b))));
		/* Leaving STOP_COPY disables the file. */
		int dummy;
		emit(p + ".leave",
		     res(set_state(t, fd, VFIO_DEVICE_STATE_STOP, &dummy)));
		emit(p + ".read_after_leave", rw_res(t.read(dfd, b, sizeof(b))));
		emit(p + ".read_after_leave_again",
		     rw_res(t.read(dfd, b, sizeof(b))));
		emit(p + ".poll_after_leave", poll_fd(dfd, POLLIN | POLLOUT, 0));
		emit(p + ".precopy_info_after_leave",
		     res(precopy_info(t, dfd, 24)));
		emit(p + ".close", res(t.close(dfd)));
		dfd = -1;
	}

	/* The same, left before the end was read. */
	dfd = start_stream(u, VFIO_DEVICE_STATE_STOP_COPY, "datafd.stop_copy_unread");
	if (dfd == -2)
		return;
	if (dfd >= 0) {
		const std::string p = "datafd.stop_copy_unread";
		/* Wait until the stream has data: nothing left to timing. */
		emit(p + ".poll_in", poll_fd(dfd, POLLIN, 2000));
		int dummy;
		emit(p + ".leave",
		     res(set_state(t, fd, VFIO_DEVICE_STATE_STOP, &dummy)));
		emit(p + ".read_after_leave", rw_res(t.read(dfd, b, sizeof(b))));
		emit(p + ".read_after_leave_again",
		     rw_res(t.read(dfd, b, sizeof(b))));
		close_fd(t, &dfd);
	}

	/* PRE_COPY: the temporary end, then on into STOP_COPY on one fd. */
	dfd = start_stream(u, VFIO_DEVICE_STATE_PRE_COPY, "datafd.pre_copy");
	if (dfd == -2)
		return;
	if (dfd >= 0) {
		const std::string p = "datafd.pre_copy";
		file_checks(u, p, dfd);
		emit(p + ".write", rw_res(t.write(dfd, b, sizeof(b))));
		emit(p + ".precopy_info.argsz_short",
		     res(precopy_info(t, dfd, 23)));
		emit(p + ".precopy_info.bad_pointer",
		     res(precopy_info(t, dfd, 24, BAD_PTR)));
		emit(p + ".precopy_info", res(precopy_info(t, dfd, 24)));
		emit(p + ".poll_in", poll_fd(dfd, POLLIN, 2000));
		size_t n = drain(t, dfd, &end, nullptr);
		emit(p + ".end", std::string(n ? "data, then " : "") + end);
		emit(p + ".read_after_end", rw_res(t.read(dfd, b, sizeof(b))));
		emit(p + ".poll_at_end", poll_fd(dfd, POLLIN, 500));
		emit(p + ".set_nonblock", set_nonblock(dfd));
		emit(p + ".read_nonblock_at_end",
		     rw_res(t.read(dfd, b, sizeof(b))));
		int nfd = -1;
		MigResult m = mig_state(t, fd, SET, VFIO_DEVICE_STATE_STOP_COPY);
		emit(p + ".to_stop_copy",
		     m.ret < 0 ? res(m.ret) : "ok data_fd=" + fd_word(m.data_fd));
		if (m.ret >= 0 && m.data_fd >= 0 && m.data_fd != FD_SENTINEL)
			nfd = m.data_fd;
		close_fd(t, &nfd);
		/* Blocking again: the rest of the stream, to its real end. */
		fcntl(dfd, F_SETFL, fcntl(dfd, F_GETFL) & ~O_NONBLOCK);
		n = drain(t, dfd, &end, nullptr);
		emit(p + ".stop_copy_end",
		     std::string(n ? "data, then " : "") + end);
		emit(p + ".precopy_info_in_stop_copy",
		     res(precopy_info(t, dfd, 24)));
		close_fd(t, &dfd);
	}

	/* RESUMING: a write-only file, disabled when the state is left. */
	std::vector<char> stream;
	std::string why;
	if (save_stream(u, &stream, &why) < 0) {
		emit("datafd.resuming._setup", "save failed: " + why);
		return;
	}
	ret = set_state(t, fd, VFIO_DEVICE_STATE_RESUMING, &dfd);
	if (ret < 0 || dfd < 0) {
		emit("datafd.resuming._setup",
		     ret < 0 ? ename(ret) : "no data fd");
	} else {
		const std::string p = "datafd.resuming";
		file_checks(u, p, dfd);
		emit(p + ".read", rw_res(t.read(dfd, b, sizeof(b))));
		emit(p + ".poll", poll_fd(dfd, POLLIN | POLLOUT, 0));
		emit(p + ".precopy_info", res(precopy_info(t, dfd, 24)));
		emit(p + ".precopy_info.argsz_short",
		     res(precopy_info(t, dfd, 23)));
		emit(p + ".write_zero", rw_res(t.write(dfd, b, 0)));
		emit(p + ".write_stream", res(write_all(t, dfd, stream)));
		int dummy;
		emit(p + ".leave",
		     res(set_state(t, fd, VFIO_DEVICE_STATE_STOP, &dummy)));
		emit(p + ".write_after_leave",
		     rw_res(t.write(dfd, b, 1)));
		emit(p + ".poll_after_leave", poll_fd(dfd, POLLOUT, 0));
		close_fd(t, &dfd);
	}

	/* A reset disables a live saving file too. */
	dfd = start_stream(u, VFIO_DEVICE_STATE_STOP_COPY, "datafd.reset");
	if (dfd == -2)
		return;
	if (dfd >= 0) {
		emit("datafd.reset.poll_in", poll_fd(dfd, POLLIN, 2000));
		emit("datafd.reset", res(t.ioctl(fd, VFIO_DEVICE_RESET, nullptr)));
		__u32 s = 0;
		int g = get_state(t, fd, &s);
		emit("datafd.reset.state", g < 0 ? ename(g) : sname(s));
		emit("datafd.reset.read_after", rw_res(t.read(dfd, b, sizeof(b))));
		close_fd(t, &dfd);
	}
	if (!(r = reset_device(u)).empty())
		emit("datafd._cleanup", r);
}

/* -------- unit: group (group and container validation order) -------- */

std::string status_flags(__u32 f)
{
	std::string s;
	if (f & VFIO_GROUP_FLAGS_VIABLE)
		s = "VIABLE";
	if (f & VFIO_GROUP_FLAGS_CONTAINER_SET)
		s += (s.empty() ? "" : "|") + std::string("CONTAINER_SET");
	f &= ~(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
	if (f)
		s += (s.empty() ? "" : "|") + hex(f);
	return s.empty() ? "0" : s;
}

std::string get_status(Transport &t, int g, __u32 argsz = 8)
{
	struct vfio_group_status st = {};
	st.argsz = argsz;
	long r = t.ioctl(g, VFIO_GROUP_GET_STATUS, &st);
	return r < 0 ? res(r) : "ok " + status_flags(st.flags);
}

long ext(Transport &t, int c, unsigned long e)
{
	return t.ioctl(c, VFIO_CHECK_EXTENSION, reinterpret_cast<void *>(e));
}

std::string val(long r)
{
	return r < 0 ? res(r) : std::to_string(r);
}

void extensions(Transport &t, int c, const std::string &p)
{
	static const char *names[] = {
		nullptr,      "TYPE1",	     "SPAPR_TCE",   "TYPE1v2",
		"DMA_CC",     "EEH",	     "TYPE1_NESTING", "SPAPR_TCE_v2",
		"NOIOMMU",    "UNMAP_ALL",   "UPDATE_VADDR",
	};
	for (unsigned long e = 1; e <= 10; e++)
		emit(p + "." + names[e], val(ext(t, c, e)));
	emit(p + ".0", val(ext(t, c, 0)));
	emit(p + ".1000", val(ext(t, c, 1000)));
}

long map_dma(Transport &t, int c, __u32 flags, __u64 vaddr, __u64 iova,
	     __u64 size, __u32 argsz = sizeof(struct vfio_iommu_type1_dma_map))
{
	struct vfio_iommu_type1_dma_map m = {};
	m.argsz = argsz;
	m.flags = flags;
	m.vaddr = vaddr;
	m.iova = iova;
	m.size = size;
	return t.ioctl(c, VFIO_IOMMU_MAP_DMA, &m);
}

constexpr __u32 RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;

/* UNMAP_DMA without a bitmap; *unmapped gets the size written back. */
long unmap_dma(Transport &t, int c, __u32 flags, __u64 iova, __u64 size,
	       __u64 *unmapped = nullptr,
	       __u32 argsz = sizeof(struct vfio_iommu_type1_dma_unmap))
{
	struct vfio_iommu_type1_dma_unmap m = {};
	m.argsz = argsz;
	m.flags = flags;
	m.iova = iova;
	m.size = size;
	long r = t.ioctl(c, VFIO_IOMMU_UNMAP_DMA, &m);
	if (unmapped)
		*unmapped = m.size;
	return r;
}

std::string unmap_res(long r, __u64 unmapped)
{
	return r < 0 ? res(r) : "ok size=" + hex(unmapped);
}

void unit_group(Unit &u)
{
	Transport &t = u.t;
	std::string why;
	DeviceName dn = u.dn;
	int ret = resolve_group(t, &dn, &why);
	if (ret < 0) {
		emit("group._setup", ename(ret));
		return;
	}
	const char *name = dn.name.c_str();
	Mem mem(64 << 10);

	int c = t.open("/dev/vfio/vfio", O_RDWR);
	if (c < 0) {
		emit("group._setup", "container " + ename(c));
		return;
	}
	/* vfio_fops_unl_ioctl() and the drivers' CHECK_EXTENSION, no group. */
	emit("container.api_version", val(t.ioctl(c, VFIO_GET_API_VERSION, nullptr)));
	extensions(t, c, "container.no_group.check_extension");
	emit("container.no_group.set_iommu",
	     res(t.ioctl(c, VFIO_SET_IOMMU,
			 reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU))));
	emit("container.no_group.map_dma",
	     res(map_dma(t, c, RW, mem.addr(), 0x100000, 0x1000)));
	emit("container.no_group.get_info",
	     res(t.ioctl(c, VFIO_IOMMU_GET_INFO, mem.get())));
	emit("container.no_group.unknown_ioctl",
	     res(t.ioctl(c, _IO(VFIO_TYPE, VFIO_BASE + 99), nullptr)));

	int g = t.open(dn.group.c_str(), O_RDWR);
	if (g < 0) {
		emit("group._setup", "group " + ename(g));
		t.close(c);
		return;
	}
	int g2 = t.open(dn.group.c_str(), O_RDWR);
	emit("group.open_twice", res(g2));
	if (g2 >= 0)
		t.close(g2);

	/* vfio_group_ioctl_get_status() */
	emit("group.get_status.argsz_short", get_status(t, g, 7));
	emit("group.get_status.argsz_zero", get_status(t, g, 0));
	emit("group.get_status.bad_pointer",
	     res(t.ioctl(g, VFIO_GROUP_GET_STATUS, BAD_PTR)));
	emit("group.get_status.no_container", get_status(t, g));
	emit("group.get_status.argsz_large", get_status(t, g, 4096));
	emit("group.unknown_ioctl",
	     res(t.ioctl(g, _IO(VFIO_TYPE, VFIO_BASE + 99), nullptr)));
	/* vfio_group_ioctl_unset_container() with nothing set. */
	emit("group.unset_container.no_container",
	     res(t.ioctl(g, VFIO_GROUP_UNSET_CONTAINER, nullptr)));
	/* vfio_group_ioctl_get_device_fd(): the name first, then the IOMMU. */
	emit("group.get_device_fd.no_container",
	     res(t.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, const_cast<char *>(name))));
	emit("group.get_device_fd.no_container.bad_name",
	     res(t.ioctl(g, VFIO_GROUP_GET_DEVICE_FD,
			 const_cast<char *>("no-such-device"))));
	emit("group.get_device_fd.no_container.empty_name",
	     res(t.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, const_cast<char *>(""))));

	/* vfio_group_ioctl_set_container(): the fd, then the group, then its type. */
	int bad = -1;
	emit("group.set_container.bad_pointer",
	     res(t.ioctl(g, VFIO_GROUP_SET_CONTAINER, BAD_PTR)));
	emit("group.set_container.fd_negative",
	     res(t.ioctl(g, VFIO_GROUP_SET_CONTAINER, &bad)));
	/* A pipe: an fd of the process that is no VFIO file, and a number
	 * that was one and is closed now. */
	int pp[2] = {-1, -1};
	if (pipe2(pp, O_CLOEXEC))
		emit("group._setup", "pipe " + ename(errno));
	int closed = pp[1];
	int null = pp[0];
	if (closed >= 0)
		::close(closed);
	emit("group.set_container.fd_closed",
	     res(t.ioctl(g, VFIO_GROUP_SET_CONTAINER, &closed)));
	emit("group.set_container.fd_not_vfio",
	     res(t.ioctl(g, VFIO_GROUP_SET_CONTAINER, &null)));
	emit("group.set_container.fd_group",
	     res(t.ioctl(g, VFIO_GROUP_SET_CONTAINER, &g)));
	emit("group.set_container", res(t.ioctl(g, VFIO_GROUP_SET_CONTAINER, &c)));
	emit("group.set_container.twice",
	     res(t.ioctl(g, VFIO_GROUP_SET_CONTAINER, &c)));
	int c2 = t.open("/dev/vfio/vfio", O_RDWR);
	emit("group.set_container.other_container",
	     res(c2 < 0 ? c2 : t.ioctl(g, VFIO_GROUP_SET_CONTAINER, &c2)));
	/* Once set, a bad fd is still refused as a bad fd first. */
	emit("group.set_container.set.fd_negative",
	     res(t.ioctl(g, VFIO_GROUP_SET_CONTAINER, &bad)));
	emit("group.set_container.set.fd_not_vfio",
	     res(t.ioctl(g, VFIO_GROUP_SET_CONTAINER, &null)));
	if (null >= 0)
		::close(null);
	emit("group.get_status.container_set", get_status(t, g));
	emit("group.get_device_fd.no_iommu",
	     res(t.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, const_cast<char *>(name))));
	emit("group.get_device_fd.no_iommu.bad_name",
	     res(t.ioctl(g, VFIO_GROUP_GET_DEVICE_FD,
			 const_cast<char *>("no-such-device"))));

	/* vfio_ioctl_set_iommu() and CHECK_EXTENSION with a group. */
	emit("container.group.map_dma",
	     res(map_dma(t, c, RW, mem.addr(), 0x100000, 0x1000)));
	emit("container.set_iommu.unknown_type",
	     res(t.ioctl(c, VFIO_SET_IOMMU, reinterpret_cast<void *>(99))));
	emit("container.set_iommu.zero",
	     res(t.ioctl(c, VFIO_SET_IOMMU, reinterpret_cast<void *>(0))));
	emit("container.set_iommu.spapr_tce",
	     res(t.ioctl(c, VFIO_SET_IOMMU,
			 reinterpret_cast<void *>(VFIO_SPAPR_TCE_IOMMU))));
	emit("container.set_iommu.other_container_no_group",
	     res(c2 < 0 ? c2
			: t.ioctl(c2, VFIO_SET_IOMMU,
				  reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU))));
	emit("container.set_iommu",
	     res(t.ioctl(c, VFIO_SET_IOMMU,
			 reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU))));
	emit("container.set_iommu.twice",
	     res(t.ioctl(c, VFIO_SET_IOMMU,
			 reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU))));
	emit("container.set_iommu.twice_other_type",
	     res(t.ioctl(c, VFIO_SET_IOMMU,
			 reinterpret_cast<void *>(VFIO_TYPE1_IOMMU))));
	extensions(t, c, "container.model.check_extension");
	emit("container.model.api_version",
	     val(t.ioctl(c, VFIO_GET_API_VERSION, nullptr)));
	emit("container.model.unknown_ioctl",
	     res(t.ioctl(c, _IO(VFIO_TYPE, VFIO_BASE + 99), nullptr)));
	emit("container.model.iommu_enable",
	     res(t.ioctl(c, VFIO_IOMMU_ENABLE, nullptr)));
	if (c2 >= 0)
		t.close(c2);

	/* GET_DEVICE_FD with an IOMMU: the name and its copy. */
	emit("group.get_device_fd.bad_name",
	     res(t.ioctl(g, VFIO_GROUP_GET_DEVICE_FD,
			 const_cast<char *>("no-such-device"))));
	emit("group.get_device_fd.bad_pointer",
	     res(t.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, BAD_PTR)));
	{
		std::string longname(4096, 'a');
		emit("group.get_device_fd.name_page_long",
		     res(t.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, longname.data())));
		longname.resize(4095);
		emit("group.get_device_fd.name_page_minus_one",
		     res(t.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, longname.data())));
	}
	int d = t.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, const_cast<char *>(name));
	emit("group.get_device_fd", res(d));
	if (d >= 0) {
		emit("device.cloexec", cloexec(d));
		emit("device.fl", getfl(d));
		int d2 = t.ioctl(g, VFIO_GROUP_GET_DEVICE_FD,
				 const_cast<char *>(name));
		emit("group.get_device_fd.second", res(d2));
		if (d2 >= 0)
			t.close(d2);
		emit("group.unset_container.device_open",
		     res(t.ioctl(g, VFIO_GROUP_UNSET_CONTAINER, nullptr)));
		emit("group.get_status.device_open", get_status(t, g));
		t.close(d);
	}
	emit("group.unset_container",
	     res(t.ioctl(g, VFIO_GROUP_UNSET_CONTAINER, nullptr)));
	emit("group.unset_container.twice",
	     res(t.ioctl(g, VFIO_GROUP_UNSET_CONTAINER, nullptr)));
	emit("group.get_status.after_unset", get_status(t, g));
	emit("group.get_device_fd.after_unset",
	     res(t.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, const_cast<char *>(name))));
	/* The last group out takes the IOMMU model with it. */
	emit("container.after_unset.map_dma",
	     res(map_dma(t, c, RW, mem.addr(), 0x100000, 0x1000)));
	emit("container.after_unset.set_iommu",
	     res(t.ioctl(c, VFIO_SET_IOMMU,
			 reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU))));
	/* And the group can join again, and get a model again. */
	emit("group.set_container.again",
	     res(t.ioctl(g, VFIO_GROUP_SET_CONTAINER, &c)));
	emit("container.set_iommu.again",
	     res(t.ioctl(c, VFIO_SET_IOMMU,
			 reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU))));
	/* Closing the group fd detaches it. */
	t.close(g);
	emit("container.group_closed.map_dma",
	     res(map_dma(t, c, RW, mem.addr(), 0x100000, 0x1000)));
	t.close(c);
}

/* -------- unit: type1 (MAP_DMA, UNMAP_DMA, DIRTY_PAGES, GET_INFO) -------- */

const char *cap_name(__u16 id)
{
	switch (id) {
	case VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: return "IOVA_RANGE";
	case VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: return "MIGRATION";
	case VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: return "DMA_AVAIL";
	default: return "?";
	}
}

struct Info {
	long ret = 0;
	__u32 argsz = 0, flags = 0;
	__u64 pgsizes = 0;
	std::string caps;
	__u64 mig_pgsize = 0, mig_max = 0;
	__u32 mig_flags = ~0u;
	long avail = -1;
};

Info get_info(Transport &t, int c, __u32 argsz = 4096)
{
	std::vector<__u64> buf(4096 / 8);
	auto *info = reinterpret_cast<struct vfio_iommu_type1_info *>(buf.data());
	info->argsz = argsz;
	Info r;
	r.ret = t.ioctl(c, VFIO_IOMMU_GET_INFO, info);
	if (r.ret < 0)
		return r;
	r.argsz = info->argsz;
	r.flags = info->flags;
	r.pgsizes = info->iova_pgsizes;
	if (!(info->flags & VFIO_IOMMU_INFO_CAPS) || argsz < sizeof(*info) ||
	    !info->cap_offset)
		return r;
	const char *base = reinterpret_cast<const char *>(buf.data());
	for (__u32 off = info->cap_offset, n = 0; off && n < 16; n++) {
		if (off + sizeof(vfio_info_cap_header) > buf.size() * 8)
			break;
		auto *h = reinterpret_cast<const vfio_info_cap_header *>(base + off);
		r.caps += (r.caps.empty() ? "" : ",") + std::string(cap_name(h->id));
		if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) {
			auto *m = reinterpret_cast<
				const vfio_iommu_type1_info_cap_migration *>(h);
			r.mig_pgsize = m->pgsize_bitmap;
			r.mig_max = m->max_dirty_bitmap_size;
			r.mig_flags = m->flags;
		} else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
			r.avail = reinterpret_cast<
				const vfio_iommu_type1_info_dma_avail *>(h)->avail;
		}
		off = h->next;
	}
	return r;
}

std::string info_flags(__u32 f)
{
	std::string s;
	if (f & VFIO_IOMMU_INFO_PGSIZES)
		s = "PGSIZES";
	if (f & VFIO_IOMMU_INFO_CAPS)
		s += (s.empty() ? "" : "|") + std::string("CAPS");
	f &= ~(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
	if (f)
		s += (s.empty() ? "" : "|") + hex(f);
	return s.empty() ? "0" : s;
}

/* DIRTY_PAGES with a GET_BITMAP range after the header: its argsz. */
constexpr __u32 DIRTY_GET_SIZE =
	sizeof(struct vfio_iommu_type1_dirty_bitmap) +
	sizeof(struct vfio_iommu_type1_dirty_bitmap_get);

long dirty(Transport &t, int c, __u32 flags,
	   __u32 argsz = sizeof(struct vfio_iommu_type1_dirty_bitmap))
{
	struct vfio_iommu_type1_dirty_bitmap d = {};
	d.argsz = argsz;
	d.flags = flags;
	return t.ioctl(c, VFIO_IOMMU_DIRTY_PAGES, &d);
}

int popcount(const std::vector<__u64> &bm)
{
	int n = 0;
	for (__u64 w : bm)
		n += __builtin_popcountll(w);
	return n;
}

long get_bitmap(Transport &t, int c, __u64 iova, __u64 size, __u64 pgsize,
		__u64 bm_size, void *data, __u32 argsz = DIRTY_GET_SIZE)
{
	__u64 buf[(DIRTY_GET_SIZE + 7) / 8] = {};
	auto *hdr = reinterpret_cast<struct vfio_iommu_type1_dirty_bitmap *>(buf);
	auto *range = reinterpret_cast<struct vfio_iommu_type1_dirty_bitmap_get *>(
		reinterpret_cast<char *>(buf) + sizeof(*hdr));
	hdr->argsz = argsz;
	hdr->flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	range->iova = iova;
	range->size = size;
	range->bitmap.pgsize = pgsize;
	range->bitmap.size = bm_size;
	range->bitmap.data = static_cast<__u64 *>(data);
	return t.ioctl(c, VFIO_IOMMU_DIRTY_PAGES, buf);
}

/* UNMAP_DMA with GET_DIRTY_BITMAP: its argsz. */
constexpr __u32 UNMAP_BITMAP_SIZE =
	sizeof(struct vfio_iommu_type1_dma_unmap) + sizeof(struct vfio_bitmap);

long unmap_bitmap(Transport &t, int c, __u64 iova, __u64 size, __u64 pgsize,
		  __u64 bm_size, void *data, __u64 *unmapped,
		  __u32 argsz = UNMAP_BITMAP_SIZE)
{
	__u64 buf[(UNMAP_BITMAP_SIZE + 7) / 8] = {};
	auto *hdr = reinterpret_cast<struct vfio_iommu_type1_dma_unmap *>(buf);
	auto *bitmap = reinterpret_cast<struct vfio_bitmap *>(
		reinterpret_cast<char *>(buf) + sizeof(*hdr));
	hdr->argsz = argsz;
	hdr->flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
	hdr->iova = iova;
	hdr->size = size;
	bitmap->pgsize = pgsize;
	bitmap->size = bm_size;
	bitmap->data = static_cast<__u64 *>(data);
	long r = t.ioctl(c, VFIO_IOMMU_UNMAP_DMA, buf);
	*unmapped = hdr->size;
	return r;
}

void unit_type1(Unit &u)
{
	Transport &t = u.t;
	int c = u.dev.container_fd();
	constexpr __u64 A = 0x100000, B = 0x110000, SZ = 0x10000;
	constexpr __u64 HOLE = 0x10000000;
	Mem mem(1 << 20);
	if (!mem.get()) {
		emit("type1._setup", "ENOMEM");
		return;
	}

	/* vfio_iommu_type1_get_info() */
	Info in = get_info(t, c, 15);
	emit("type1.info.argsz_short", res(in.ret));
	emit("type1.info.bad_pointer",
	     res(t.ioctl(c, VFIO_IOMMU_GET_INFO, BAD_PTR)));
	in = get_info(t, c);
	if (in.ret < 0) {
		emit("type1.info", res(in.ret));
	} else {
		emit("type1.info", "ok flags=" + info_flags(in.flags) +
					   " min_pgsize=" +
					   hex(in.pgsizes & -in.pgsizes));
		emit("type1.info.caps", in.caps.empty() ? "none" : in.caps);
		emit("type1.info.cap_migration",
		     "pgsize_bitmap=" + hex(in.mig_pgsize) +
			     " max_dirty_bitmap_size=" + hex(in.mig_max) +
			     " flags=" + hex(in.mig_flags));
		emit("type1.info.cap_dma_avail", std::to_string(in.avail));
	}
	/* A 16-byte caller (no cap_offset) learns the size it needs. */
	in = get_info(t, c, 16);
	emit("type1.info.argsz_16",
	     in.ret < 0 ? res(in.ret)
			: "ok flags=" + info_flags(in.flags) + " argsz=" +
				  (in.argsz > 16 ? "grown" : "16"));
	in = get_info(t, c, 24);
	emit("type1.info.argsz_24",
	     in.ret < 0 ? res(in.ret)
			: "ok flags=" + info_flags(in.flags) + " argsz=" +
				  (in.argsz > 24 ? "grown" : "24"));

	/* vfio_iommu_type1_map_dma() and vfio_dma_do_map(), in order. */
	const __u32 msz = sizeof(struct vfio_iommu_type1_dma_map);
	emit("type1.map.argsz_short",
	     res(map_dma(t, c, RW, mem.addr(), A, SZ, msz - 1)));
	emit("type1.map.bad_pointer",
	     res(t.ioctl(c, VFIO_IOMMU_MAP_DMA, BAD_PTR)));
	emit("type1.map.flags_unknown",
	     res(map_dma(t, c, RW | (1u << 3), mem.addr(), A, SZ)));
	emit("type1.map.flags_none", res(map_dma(t, c, 0, mem.addr(), A, SZ)));
	emit("type1.map.vaddr_with_prot",
	     res(map_dma(t, c, RW | VFIO_DMA_MAP_FLAG_VADDR, mem.addr(), A, SZ)));
	emit("type1.map.vaddr_no_mapping",
	     res(map_dma(t, c, VFIO_DMA_MAP_FLAG_VADDR, mem.addr(), A, SZ)));
	emit("type1.map.size_zero", res(map_dma(t, c, RW, mem.addr(), A, 0)));
	emit("type1.map.iova_unaligned",
	     res(map_dma(t, c, RW, mem.addr(), A + 0x800, SZ)));
	emit("type1.map.size_unaligned",
	     res(map_dma(t, c, RW, mem.addr(), A, SZ + 0x800)));
	emit("type1.map.vaddr_unaligned",
	     res(map_dma(t, c, RW, mem.addr(0x800), A, SZ)));
	emit("type1.map.iova_wrap",
	     res(map_dma(t, c, RW, mem.addr(), ~0xfffULL, 0x2000)));
	emit("type1.map.vaddr_wrap",
	     res(map_dma(t, c, RW, ~0xfffULL, A, 0x2000)));
	emit("type1.map", res(map_dma(t, c, RW, mem.addr(), A, SZ)));
	emit("type1.map.same", res(map_dma(t, c, RW, mem.addr(), A, SZ)));
	emit("type1.map.overlap_tail",
	     res(map_dma(t, c, RW, mem.addr(SZ), A + SZ / 2, SZ)));
	emit("type1.map.overlap_head",
	     res(map_dma(t, c, RW, mem.addr(SZ), A - SZ / 2, SZ)));
	emit("type1.map.inside",
	     res(map_dma(t, c, RW, mem.addr(SZ), A + 0x1000, 0x1000)));
	emit("type1.map.adjacent",
	     res(map_dma(t, c, VFIO_DMA_MAP_FLAG_READ, mem.addr(SZ), B, SZ)));
	/* Where the IOMMU's aperture and the pinning of vaddr decide. */
	long r = map_dma(t, c, RW, mem.addr(2 * SZ), 1ULL << 52, 0x1000);
	emit("type1.map.iova_above_48_bits", res(r));
	if (r >= 0)
		unmap_dma(t, c, 0, 1ULL << 52, 0x1000);
	{
		/* Memory the process cannot touch: a pin would fail there. */
		Mem none(0x10000, PROT_NONE);
		r = map_dma(t, c, RW, none.addr(), HOLE, 0x10000);
		emit("type1.map.vaddr_no_access", res(r));
		if (r >= 0)
			unmap_dma(t, c, 0, HOLE, 0x10000);
	}
	in = get_info(t, c);
	emit("type1.info.cap_dma_avail.two_maps",
	     in.ret < 0 ? res(in.ret) : std::to_string(in.avail));

	/* vfio_iommu_type1_unmap_dma() and vfio_dma_do_unmap() */
	__u64 un = 0;
	const __u32 usz = sizeof(struct vfio_iommu_type1_dma_unmap);
	emit("type1.unmap.argsz_short",
	     res(unmap_dma(t, c, 0, A, SZ, nullptr, usz - 1)));
	emit("type1.unmap.bad_pointer",
	     res(t.ioctl(c, VFIO_IOMMU_UNMAP_DMA, BAD_PTR)));
	emit("type1.unmap.flags_unknown",
	     res(unmap_dma(t, c, 1u << 3, A, SZ)));
	emit("type1.unmap.all_with_range",
	     res(unmap_dma(t, c, VFIO_DMA_UNMAP_FLAG_ALL, A, SZ)));
	emit("type1.unmap.all_with_bitmap",
	     res(unmap_dma(t, c,
			   VFIO_DMA_UNMAP_FLAG_ALL |
				   VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
			   0, 0, nullptr, UNMAP_BITMAP_SIZE)));
	emit("type1.unmap.vaddr_with_bitmap",
	     res(unmap_dma(t, c,
			   VFIO_DMA_UNMAP_FLAG_VADDR |
				   VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
			   A, SZ, nullptr, UNMAP_BITMAP_SIZE)));
	r = unmap_dma(t, c, VFIO_DMA_UNMAP_FLAG_VADDR, HOLE, SZ, &un);
	emit("type1.unmap.vaddr_nothing_mapped", unmap_res(r, un));
	emit("type1.unmap.size_zero", res(unmap_dma(t, c, 0, A, 0)));
	emit("type1.unmap.iova_unaligned", res(unmap_dma(t, c, 0, A + 0x800, SZ)));
	emit("type1.unmap.size_unaligned", res(unmap_dma(t, c, 0, A, SZ + 0x800)));
	emit("type1.unmap.wrap", res(unmap_dma(t, c, 0, ~0xfffULL, 0x2000)));
	emit("type1.unmap.cut_head", res(unmap_dma(t, c, 0, A + 0x1000, 0x1000)));
	emit("type1.unmap.cut_tail", res(unmap_dma(t, c, 0, A, 0x1000)));
	emit("type1.unmap.straddle", res(unmap_dma(t, c, 0, A + SZ / 2, SZ)));
	r = unmap_dma(t, c, 0, HOLE, SZ, &un);
	emit("type1.unmap.nothing_mapped", unmap_res(r, un));
	std::vector<__u64> bm(64);
	emit("type1.unmap.bitmap_not_tracking",
	     res(unmap_bitmap(t, c, A, SZ, 4096, 8, bm.data(), &un)));

	/* vfio_iommu_type1_dirty_pages() */
	const __u32 dsz = sizeof(struct vfio_iommu_type1_dirty_bitmap);
	constexpr __u32 START = VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
	constexpr __u32 STOP = VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
	emit("type1.dirty.argsz_short", res(dirty(t, c, START, dsz - 1)));
	emit("type1.dirty.bad_pointer",
	     res(t.ioctl(c, VFIO_IOMMU_DIRTY_PAGES, BAD_PTR)));
	emit("type1.dirty.flags_zero", res(dirty(t, c, 0)));
	emit("type1.dirty.flags_unknown", res(dirty(t, c, 1u << 3)));
	emit("type1.dirty.flags_start_stop", res(dirty(t, c, START | STOP)));
	emit("type1.dirty.get_bitmap.not_tracking",
	     res(get_bitmap(t, c, A, 2 * SZ, 4096, 8, bm.data())));
	emit("type1.dirty.stop.not_tracking", res(dirty(t, c, STOP)));
	emit("type1.dirty.start", res(dirty(t, c, START)));
	emit("type1.dirty.start.twice", res(dirty(t, c, START)));
	const std::string gb = "type1.dirty.get_bitmap";
	emit(gb + ".argsz_header_only",
	     res(get_bitmap(t, c, A, 2 * SZ, 4096, 8, bm.data(), dsz)));
	emit(gb + ".argsz_short",
	     res(get_bitmap(t, c, A, 2 * SZ, 4096, 8, bm.data(),
			    DIRTY_GET_SIZE - 1)));
	emit(gb + ".pgsize_8k",
	     res(get_bitmap(t, c, A, 2 * SZ, 8192, 8, bm.data())));
	emit(gb + ".pgsize_2m",
	     res(get_bitmap(t, c, 0, 1 << 21, 1 << 21, 8, bm.data())));
	emit(gb + ".pgsize_not_power_of_2",
	     res(get_bitmap(t, c, A, 2 * SZ, 0x3000, 8, bm.data())));
	emit(gb + ".iova_unaligned",
	     res(get_bitmap(t, c, A + 0x800, 2 * SZ, 4096, 8, bm.data())));
	emit(gb + ".size_zero", res(get_bitmap(t, c, A, 0, 4096, 8, bm.data())));
	emit(gb + ".size_unaligned",
	     res(get_bitmap(t, c, A, 2 * SZ + 0x800, 4096, 8, bm.data())));
	emit(gb + ".wrap",
	     res(get_bitmap(t, c, ~0xfffULL, 0x2000, 4096, 8, bm.data())));
	emit(gb + ".bitmap_size_zero",
	     res(get_bitmap(t, c, A, 2 * SZ, 4096, 0, bm.data())));
	emit(gb + ".bitmap_too_small",
	     res(get_bitmap(t, c, A, 0x80000, 4096, 8, bm.data())));
	emit(gb + ".cut_head",
	     res(get_bitmap(t, c, A + 0x1000, SZ - 0x1000, 4096, 8, bm.data())));
	emit(gb + ".cut_tail",
	     res(get_bitmap(t, c, A, 0x1000, 4096, 8, bm.data())));
	emit(gb + ".bitmap_fault",
	     res(get_bitmap(t, c, A, 2 * SZ, 4096, 8, BAD_PTR)));
	std::fill(bm.begin(), bm.end(), 0);
	r = get_bitmap(t, c, A, 2 * SZ, 4096, 8, bm.data());
	emit(gb, r < 0 ? res(r) : "ok bits=" + std::to_string(popcount(bm)));
	std::fill(bm.begin(), bm.end(), 0);
	r = get_bitmap(t, c, HOLE, SZ, 4096, 8, bm.data());
	emit(gb + ".nothing_mapped",
	     r < 0 ? res(r) : "ok bits=" + std::to_string(popcount(bm)));
	/* A mapping made while tracking is tracked too. */
	r = map_dma(t, c, RW, mem.addr(4 * SZ), HOLE, SZ);
	emit("type1.dirty.map_while_tracking", res(r));
	std::fill(bm.begin(), bm.end(), 0);
	r = get_bitmap(t, c, HOLE, SZ, 4096, 8, bm.data());
	emit(gb + ".new_mapping",
	     r < 0 ? res(r) : "ok bits=" + std::to_string(popcount(bm)));

	/* UNMAP_DMA with GET_DIRTY_BITMAP. */
	const std::string ub = "type1.unmap.bitmap";
	emit(ub + ".argsz_short",
	     res(unmap_bitmap(t, c, B, SZ, 4096, 8, bm.data(), &un,
			      UNMAP_BITMAP_SIZE - 1)));
	emit(ub + ".pgsize_8k",
	     res(unmap_bitmap(t, c, B, SZ, 8192, 8, bm.data(), &un)));
	emit(ub + ".too_small",
	     res(unmap_bitmap(t, c, A, 0x80000, 4096, 8, bm.data(), &un)));
	emit(ub + ".size_zero",
	     res(unmap_bitmap(t, c, B, 0, 4096, 8, bm.data(), &un)));
	emit(ub + ".cut",
	     res(unmap_bitmap(t, c, B, 0x1000, 4096, 8, bm.data(), &un)));
	std::fill(bm.begin(), bm.end(), 0);
	r = unmap_bitmap(t, c, B, SZ, 4096, 8, bm.data(), &un);
	emit(ub, r < 0 ? res(r)
		       : "ok size=" + hex(un) +
				 " bits=" + std::to_string(popcount(bm)));
	emit("type1.dirty.stop", res(dirty(t, c, STOP)));
	emit("type1.dirty.stop.twice", res(dirty(t, c, STOP)));
	emit("type1.unmap.bitmap_after_stop",
	     res(unmap_bitmap(t, c, A, SZ, 4096, 8, bm.data(), &un)));

	/* What is left goes with UNMAP_ALL; a second one finds nothing. */
	r = unmap_dma(t, c, 0, A - SZ, 3 * SZ, &un);
	emit("type1.unmap.cover_with_holes", unmap_res(r, un));
	r = map_dma(t, c, RW, mem.addr(), A, SZ);
	emit("type1.map.again", res(r));
	r = unmap_dma(t, c, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0, &un);
	emit("type1.unmap.all", unmap_res(r, un));
	r = unmap_dma(t, c, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0, &un);
	emit("type1.unmap.all.twice", unmap_res(r, un));
	in = get_info(t, c);
	emit("type1.info.cap_dma_avail.after",
	     in.ret < 0 ? res(in.ret) : std::to_string(in.avail));
	emit("type1.unknown_ioctl",
	     res(t.ioctl(c, _IO(VFIO_TYPE, VFIO_BASE + 99), nullptr)));
}

/* -------- unit: type1v1 (VFIO_TYPE1_IOMMU's own rules) -------- */

void unit_type1v1(Unit &u)
{
	Transport &t = u.t;
	std::string why;
	DeviceName dn = u.dn;
	int ret = resolve_group(t, &dn, &why);
	if (ret < 0) {
		emit("type1v1._setup", ename(ret));
		return;
	}
	Mem mem(1 << 20);
	int c = t.open("/dev/vfio/vfio", O_RDWR);
	int g = t.open(dn.group.c_str(), O_RDWR);
	if (c < 0 || g < 0) {
		emit("type1v1._setup", ename(c < 0 ? c : g));
		if (c >= 0)
			t.close(c);
		if (g >= 0)
			t.close(g);
		return;
	}
	long r = t.ioctl(g, VFIO_GROUP_SET_CONTAINER, &c);
	if (r >= 0)
		r = t.ioctl(c, VFIO_SET_IOMMU,
			    reinterpret_cast<void *>(VFIO_TYPE1_IOMMU));
	emit("type1v1.set_iommu", res(r));
	if (r >= 0) {
		constexpr __u64 A = 0x100000, SZ = 0x10000;
		__u64 un = 0;
		emit("type1v1.check_extension.TYPE1v2", val(ext(t, c, VFIO_TYPE1v2_IOMMU)));
		emit("type1v1.dirty.start",
		     res(dirty(t, c, VFIO_IOMMU_DIRTY_PAGES_FLAG_START)));
		emit("type1v1.dirty.flags_zero", res(dirty(t, c, 0)));
		emit("type1v1.map", res(map_dma(t, c, RW, mem.addr(), A, SZ)));
		r = unmap_dma(t, c, 0, A + 0x1000, 0x1000, &un);
		emit("type1v1.unmap.inside", unmap_res(r, un));
		r = unmap_dma(t, c, 0, A - 0x1000, 0x2000, &un);
		emit("type1v1.unmap.over_first_page", unmap_res(r, un));
		emit("type1v1.map.again", res(map_dma(t, c, RW, mem.addr(), A, SZ)));
		r = unmap_dma(t, c, 0, A, 0x1000, &un);
		emit("type1v1.unmap.first_page", unmap_res(r, un));
		r = unmap_dma(t, c, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0, &un);
		emit("type1v1.unmap.all", unmap_res(r, un));
	}
	/*
	 * A fresh model of the nesting type: type1 offers it whatever the
	 * IOMMU, and the IOMMU decides at attach (vfio_iommu_type1_attach_group()).
	 */
	r = t.ioctl(g, VFIO_GROUP_UNSET_CONTAINER, nullptr);
	if (r >= 0)
		r = t.ioctl(g, VFIO_GROUP_SET_CONTAINER, &c);
	if (r < 0) {
		emit("type1_nesting._setup", res(r));
	} else {
		emit("type1_nesting.check_extension",
		     val(ext(t, c, VFIO_TYPE1_NESTING_IOMMU)));
		emit("type1_nesting.set_iommu",
		     res(t.ioctl(c, VFIO_SET_IOMMU,
				 reinterpret_cast<void *>(VFIO_TYPE1_NESTING_IOMMU))));
	}
	t.close(g);
	t.close(c);
}

/* -------- unit: logging (DMA_LOGGING_START, _STOP, _REPORT) -------- */

long log_start(Transport &t, int fd, __u64 page_size,
	       const std::vector<vfio_device_feature_dma_logging_range> &ranges,
	       __u32 flags = SET, std::optional<__u32> num = {},
	       std::optional<__u32> argsz = {}, const void *ranges_ptr = nullptr)
{
	struct vfio_device_feature_dma_logging_control ctl = {};
	ctl.page_size = page_size;
	ctl.num_ranges = num ? *num : static_cast<__u32>(ranges.size());
	ctl.ranges = ranges_ptr ? reinterpret_cast<__u64>(ranges_ptr)
				: reinterpret_cast<__u64>(ranges.data());
	return feature(t, fd, flags | VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
		       &ctl, sizeof(ctl), argsz);
}

long log_stop(Transport &t, int fd, __u32 flags = SET)
{
	return feature(t, fd, flags | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
		       nullptr, 0);
}

long log_report(Transport &t, int fd, __u64 iova, __u64 length,
		__u64 page_size, void *bitmap, __u32 flags = GET,
		std::optional<__u32> argsz = {})
{
	struct vfio_device_feature_dma_logging_report rep = {};
	rep.iova = iova;
	rep.length = length;
	rep.page_size = page_size;
	rep.bitmap = reinterpret_cast<__u64>(bitmap);
	return feature(t, fd, flags | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
		       &rep, sizeof(rep), argsz);
}

void unit_logging(Unit &u)
{
	Transport &t = u.t;
	int fd = u.fd();
	using R = vfio_device_feature_dma_logging_range;
	constexpr __u64 A = 0x100000, SZ = 0x10000;
	const std::vector<R> one = {{A, SZ}};
	std::vector<__u64> bm(64);

	/*
	 * Without log_ops the core answers ENOTTY to everything below before
	 * any other check; with them, it validates and calls the driver.
	 */
	long probe = log_start(t, fd, 4096, one, PROBE | SET);
	emit("logging.log_ops", probe == -ENOTTY ? "no" : probe < 0 ? res(probe)
								      : "yes");
	if (probe == -ENOTTY) {
		/* The core's answer before any check, for each feature. */
		static const struct {
			const char *name;
			__u32 index;
		} fs[] = {
			{"start", VFIO_DEVICE_FEATURE_DMA_LOGGING_START},
			{"stop", VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP},
			{"report", VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT},
		};
		static const struct {
			const char *name;
			__u32 flags;
		} vs[] = {
			{"none", 0}, {"probe", PROBE}, {"probe_get", PROBE | GET},
			{"probe_set", PROBE | SET}, {"get", GET}, {"set", SET},
		};
		__u64 payload[4] = {};
		for (auto &f : fs) {
			const std::string id = std::string("logging.no_log_ops.") + f.name;
			for (auto &v : vs)
				emit(id + "." + v.name,
				     res(feature(t, fd, v.flags | f.index, payload,
						 sizeof(payload))));
			emit(id + ".argsz_short",
			     res(feature(t, fd, GET | SET | f.index, payload,
					 sizeof(payload), 7)));
		}
		return;
	}
	/* A START that succeeds is stopped before the next check. */
	auto start = [&](const std::string &id, long r) {
		emit(id, res(r));
		if (r >= 0)
			log_stop(t, fd);
	};

	const std::string s = "logging.start";
	emit(s + ".probe", res(log_start(t, fd, 4096, one, PROBE)));
	emit(s + ".probe_set", res(probe));
	emit(s + ".probe_get", res(log_start(t, fd, 4096, one, PROBE | GET)));
	emit(s + ".get", res(log_start(t, fd, 4096, one, GET)));
	emit(s + ".none", res(log_start(t, fd, 4096, one, 0)));
	start(s + ".argsz_short", log_start(t, fd, 4096, one, SET, {}, 8 + 23));
	start(s + ".num_ranges_zero", log_start(t, fd, 4096, one, SET, 0));
	start(s + ".num_ranges_257", log_start(t, fd, 4096, one, SET, 257));
	start(s + ".ranges_fault",
	      log_start(t, fd, 4096, one, SET, 1, {}, BAD_PTR));
	start(s + ".iova_unaligned", log_start(t, fd, 4096, {{A + 0x800, SZ}}));
	start(s + ".length_unaligned",
	      log_start(t, fd, 4096, {{A, SZ + 0x800}}));
	start(s + ".page_size_zero", log_start(t, fd, 0, one));
	start(s + ".overflow", log_start(t, fd, 4096, {{~0xfffULL, 0x2000}}));
	start(s + ".overlap", log_start(t, fd, 4096, {{A, SZ}, {A + 0x1000, SZ}}));
	start(s + ".overlap_reverse",
	      log_start(t, fd, 4096, {{A + 0x1000, SZ}, {A, SZ}}));
	start(s + ".duplicate", log_start(t, fd, 4096, {{A, SZ}, {A, SZ}}));
	/* The second range is bad: the first was looked at already. */
	start(s + ".second_unaligned",
	      log_start(t, fd, 4096, {{A, SZ}, {A + 2 * SZ + 0x800, SZ}}));
	start(s + ".length_zero", log_start(t, fd, 4096, {{A, 0}}));

	const std::string p = "logging.report";
	emit(p + ".set", res(log_report(t, fd, A, SZ, 4096, bm.data(), SET)));
	emit(p + ".probe_get",
	     res(log_report(t, fd, A, SZ, 4096, bm.data(), PROBE | GET)));
	emit(p + ".probe_set",
	     res(log_report(t, fd, A, SZ, 4096, bm.data(), PROBE | SET)));
	emit(p + ".no_session", res(log_report(t, fd, A, SZ, 4096, bm.data())));

	const std::string o = "logging.stop";
	emit(o + ".probe", res(log_stop(t, fd, PROBE | SET)));
	emit(o + ".get", res(log_stop(t, fd, GET)));
	emit(o + ".none", res(log_stop(t, fd, 0)));

	long r = log_start(t, fd, 4096, one);
	emit(s, res(r));
	if (r >= 0) {
		emit(p + ".argsz_short",
		     res(log_report(t, fd, A, SZ, 4096, bm.data(), GET, 8 + 31)));
		emit(p + ".page_size_2048",
		     res(log_report(t, fd, A, SZ, 2048, bm.data())));
		emit(p + ".page_size_zero",
		     res(log_report(t, fd, A, SZ, 0, bm.data())));
		emit(p + ".page_size_12k",
		     res(log_report(t, fd, A, SZ, 0x3000, bm.data())));
		emit(p + ".overflow",
		     res(log_report(t, fd, ~0xfffULL, 0x2000, 4096, bm.data())));
		emit(p + ".bad_pointer",
		     res(t.ioctl(fd, VFIO_DEVICE_FEATURE, BAD_PTR)));
		/* These pass the core's own checks: iova_bitmap decides. */
		emit(p + ".length_zero",
		     res(log_report(t, fd, A, 0, 4096, bm.data())));
		emit(p + ".bitmap_fault",
		     res(log_report(t, fd, A, SZ, 4096, BAD_PTR)));
		std::fill(bm.begin(), bm.end(), 0);
		r = log_report(t, fd, A, SZ, 4096, bm.data());
		emit(p, r < 0 ? res(r)
			      : "ok bits=" + std::to_string(popcount(bm)));
		emit(o, res(log_stop(t, fd)));
	}
}

/* -------- units and the supervisor -------- */

struct UnitDef {
	std::string name;
	std::function<void(Unit &)> run;
	bool open_device;	/* through the opener, or raw (group units) */
};

std::vector<UnitDef> units()
{
	std::vector<UnitDef> v = {
		{"feature", unit_feature, true},
		{"migration", unit_migration, true},
	};
	for (__u32 s = 1; s < NSTATES; s++)
		v.push_back({"fsm." + sname(s),
			     [s](Unit &u) { unit_fsm(u, s); }, true});
	v.push_back({"datafd", unit_datafd, true});
	v.push_back({"group", unit_group, false});
	v.push_back({"type1", unit_type1, true});
	v.push_back({"type1v1", unit_type1v1, false});
	v.push_back({"logging", unit_logging, true});
	return v;
}

int usage(const char *argv0)
{
	std::fprintf(stderr,
		     "usage: %s [--timeout SECONDS] DEVICE\n"
		     "       %s --unit NAME DEVICE\n"
		     "       %s --list\n"
		     "DEVICE: /sys/bus/pci/devices/BDF, /sys/bus/mdev/devices/UUID "
		     "or /dev/vfio/N@NAME\n",
		     argv0, argv0, argv0);
	return 2;
}

/* Run one unit in this process. Exit status: 0, or 1 if it cannot open. */
int run_unit(const std::string &name, const DeviceName &dn)
{
	std::unique_ptr<Transport> t = make_kernel_transport();
	if (name == "open") {
		Unit u(*t, dn);
		std::string why;
		if (u.dev.open(dn, &why) < 0) {
			std::fprintf(stderr, "uvfio-parity: %s\n", why.c_str());
			return 1;
		}
		return 0;
	}
	for (const UnitDef &d : units()) {
		if (d.name != name)
			continue;
		Unit u(*t, dn);
		if (d.open_device) {
			std::string why;
			int ret = u.dev.open(dn, &why);
			if (ret < 0) {
				std::fprintf(stderr, "uvfio-parity: %s\n",
					     why.c_str());
				emit(name + "._open", ename(ret));
				return 1;
			}
		}
		d.run(u);
		return 0;
	}
	std::fprintf(stderr, "uvfio-parity: no unit \"%s\" (--list)\n",
		     name.c_str());
	return 2;
}

std::string self_path(const char *argv0)
{
	char buf[4096];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = 0;
		return buf;
	}
	return argv0;
}

/*
 * Run `self --unit NAME DEVICE` with a deadline; copy its lines to our
 * stdout as they come. Returns how it ended: "" (exit 0), or a reason.
 */
std::string spawn_unit(const std::string &self, const std::string &name,
		       const std::string &device, int timeout_s,
		       int *exit_code = nullptr)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC))
		return "pipe " + ename(errno);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	std::vector<std::string> args = {self, "--unit", name, device};
	std::vector<char *> argv;
	for (std::string &a : args)
		argv.push_back(a.data());
	argv.push_back(nullptr);
	pid_t pid;
	/* A bare name (no /proc to find ourselves): search PATH as a shell did. */
	int err = self.find('/') == std::string::npos
			  ? posix_spawnp(&pid, self.c_str(), &fa, nullptr,
					 argv.data(), environ)
			  : posix_spawn(&pid, self.c_str(), &fa, nullptr,
					argv.data(), environ);
	posix_spawn_file_actions_destroy(&fa);
	::close(pfd[1]);
	if (err) {
		::close(pfd[0]);
		return "spawn " + ename(err);
	}

	std::string pending, why;
	long long deadline = now_ms() + timeout_s * 1000LL;
	char buf[4096];
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			kill(pid, SIGKILL);
			why = "timeout after " + std::to_string(timeout_s) + " s";
			break;
		}
		struct pollfd p = {pfd[0], POLLIN, 0};
		int n = ::poll(&p, 1, static_cast<int>(std::min(left, 1000LL)));
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		ssize_t got = ::read(pfd[0], buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		pending.append(buf, static_cast<size_t>(got));
		size_t nl;
		while ((nl = pending.find('\n')) != std::string::npos) {
			std::string line = pending.substr(0, nl + 1);
			pending.erase(0, nl + 1);
			if (::write(STDOUT_FILENO, line.data(), line.size()) < 0)
				break;
		}
	}
	::close(pfd[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}
	if (!why.empty())
		return why;
	if (WIFSIGNALED(status))
		return std::string("killed by signal ") +
		       std::to_string(WTERMSIG(status));
	if (exit_code)
		*exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (WIFEXITED(status) && WEXITSTATUS(status))
		return "exit " + std::to_string(WEXITSTATUS(status));
	return "";
}

} // namespace

int main(int argc, char **argv)
{
	std::string unit, device;
	int timeout_s = 60;

	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		if (a == "--list") {
			for (const UnitDef &d : units())
				std::printf("%s\n", d.name.c_str());
			return 0;
		} else if (a == "--unit" && i + 1 < argc) {
			unit = argv[++i];
		} else if (a == "--timeout" && i + 1 < argc) {
			timeout_s = std::atoi(argv[++i]);
			if (timeout_s <= 0)
				return usage(argv[0]);
		} else if (a == "-h" || a == "--help") {
			usage(argv[0]);
			return 0;
		} else if (!a.empty() && a[0] == '-') {
			return usage(argv[0]);
		} else if (device.empty()) {
			device = a;
		} else {
			return usage(argv[0]);
		}
	}
	if (device.empty())
		return usage(argv[0]);

	DeviceName dn;
	std::string why;
	if (parse_device_path(device, &dn, &why) < 0) {
		std::fprintf(stderr, "uvfio-parity: %s\n", why.c_str());
		return 2;
	}
	/* A data fd whose reader went away must not kill a unit. */
	signal(SIGPIPE, SIG_IGN);

	if (!unit.empty())
		return run_unit(unit, dn);

	/*
	 * The supervisor touches no device itself (under uvfio-run it never
	 * activates): a unit process tells whether the device opens, then
	 * each unit runs in its own.
	 */
	std::string self = self_path(argv[0]);
	int code = 0;
	std::string r = spawn_unit(self, "open", device, timeout_s, &code);
	if (!r.empty()) {
		std::fprintf(stderr, "uvfio-parity: cannot open %s (%s)\n",
			     device.c_str(), r.c_str());
		return 1;
	}
	for (const UnitDef &d : units()) {
		r = spawn_unit(self, d.name, device, timeout_s);
		if (!r.empty())
			emit(d.name + "._run", r);
	}
	return 0;
}
