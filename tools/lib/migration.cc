// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration client: device features and states, the plain stream
 * engine, save, load and live migration, through a Transport only.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <uvfio/tools/migration.h>
#include <uvfio/uapi/vfio.h>

namespace uvfio::tools {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t)
{
	return std::chrono::duration<double>(clock_type::now() - t).count();
}

const char *const state_names[] = {
	"error", "stop", "running", "stop_copy",
	"resuming", "running_p2p", "pre_copy", "pre_copy_p2p",
};

/* A VFIO_DEVICE_FEATURE argument: header, then one payload T. */
template <typename T> struct Feature {
	alignas(8) unsigned char buf[sizeof(struct vfio_device_feature) +
				     sizeof(T)] = {};
	explicit Feature(__u32 flags)
	{
		hdr()->argsz = sizeof(buf);
		hdr()->flags = flags;
	}
	struct vfio_device_feature *hdr()
	{
		return reinterpret_cast<struct vfio_device_feature *>(buf);
	}
	T *data()
	{
		return reinterpret_cast<T *>(buf + sizeof(struct vfio_device_feature));
	}
};

std::string errstr(int err)
{
	return std::strerror(err < 0 ? -err : err);
}

void say(std::string *why, const std::string &s)
{
	if (why && why->empty())
		*why = s;
}

/* Write all of buf to an endpoint, in chunks of at most chunk bytes. */
int write_all(const Endpoint &e, const char *buf, size_t len, size_t chunk)
{
	for (size_t off = 0; off < len;) {
		size_t n = std::min(chunk, len - off);
		ssize_t w = e.io	  ? e.io->write(buf + off, n)
			    : e.transport ? e.transport->write(e.fd, buf + off, n)
					  : ::write(e.fd, buf + off, n);
		if (w < 0 && !e.transport && !e.io)
			w = -errno;
		if (w == -EINTR)
			continue;
		if (w < 0)
			return int(w);
		if (w == 0)
			return -EIO;
		off += size_t(w);
	}
	return 0;
}

ssize_t read_some(const Endpoint &e, char *buf, size_t len)
{
	for (;;) {
		ssize_t n = e.io	  ? e.io->read(buf, len)
			    : e.transport ? e.transport->read(e.fd, buf, len)
					  : ::read(e.fd, buf, len);
		if (n < 0 && !e.transport && !e.io)
			n = -errno;
		if (n != -EINTR)
			return n;
	}
}

/*
 * Copy guest pages the VMM way, while the guest (the workload's vCPU) and
 * the device may be writing them: a race by design (the dirty log makes
 * the next pass send them again), which ThreadSanitizer is told not to
 * watch here. no_sanitize("thread") alone does not do it: it drops the
 * function's own instrumentation, but memcpy is TSan's interceptor,
 * which checks the ranges anyway; so the thread ignores its accesses for
 * the copy.
 */
#if defined(__SANITIZE_THREAD__)
#define UVFIO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UVFIO_TSAN 1
#endif
#endif
#ifdef UVFIO_TSAN
extern "C" void __tsan_ignore_thread_begin(void);
extern "C" void __tsan_ignore_thread_end(void);
#endif

__attribute__((no_sanitize("thread"))) void
copy_page(void *dst, const void *src, size_t len)
{
#ifdef UVFIO_TSAN
	__tsan_ignore_thread_begin();
#endif
	std::memcpy(dst, src, len);
#ifdef UVFIO_TSAN
	__tsan_ignore_thread_end();
#endif
}

constexpr __u64 PAGE = DirtyTracker::PAGE;

/* Guest memory copies along a dirty tracker. */
class GuestTracker
{
public:
	GuestTracker(Device &src, const GuestMemory &s, const GuestMemory &d)
		: t_(src, s), s_(s), d_(d)
	{
	}

	int start(bool dma_logging, std::string *mode)
	{
		int ret = t_.start(dma_logging);
		*mode = t_.mode();
		return ret;
	}
	void stop() { t_.stop(); }

	/* Copy all of guest memory (the first pass). */
	__u64 copy_all()
	{
		for (__u64 off = 0; off < s_.size; off += PAGE)
			copy_page(static_cast<char *>(d_.host) + off,
				  static_cast<const char *>(s_.host) + off,
				  std::min(PAGE, s_.size - off));
		return s_.size / PAGE;
	}

	/*
	 * Copy the pages dirtied since the last call; with no tracking,
	 * everything (only safe once the source is stopped). Pages copied,
	 * or -errno.
	 */
	long long copy_dirty()
	{
		if (!std::strcmp(t_.mode(), "none"))
			return (long long)copy_all();
		int ret = t_.report(&bitmap_);
		if (ret)
			return ret;
		long long n = 0;
		for (__u64 p = 0; p < s_.size / PAGE; p++) {
			if (!(bitmap_[p / 64] >> (p % 64) & 1))
				continue;
			copy_page(static_cast<char *>(d_.host) + p * PAGE,
				  static_cast<const char *>(s_.host) + p * PAGE,
				  PAGE);
			n++;
		}
		return n;
	}

private:
	DirtyTracker t_;
	GuestMemory s_, d_;
	std::vector<__u64> bitmap_;
};

/* A memfd as a plain endpoint, for comparing two saved states. */
struct MemFile {
	int fd = -1;
	MemFile() { fd = memfd_create("uvfio-verify", MFD_CLOEXEC); }
	~MemFile()
	{
		if (fd >= 0)
			::close(fd);
	}
	std::vector<char> contents()
	{
		off_t len = lseek(fd, 0, SEEK_END);
		std::vector<char> v(len > 0 ? size_t(len) : 0);
		if (!v.empty() && ::pread(fd, v.data(), v.size(), 0) != len)
			v.clear();
		return v;
	}
};

} // namespace

const char *state_name(__u32 state)
{
	return state < std::size(state_names) ? state_names[state] : "invalid";
}

int parse_state(const std::string &name, __u32 *state)
{
	std::string n;
	for (char c : name)
		n += c == '-' ? '_' : char(std::tolower(static_cast<unsigned char>(c)));
	for (__u32 i = 0; i < std::size(state_names); i++) {
		if (n == state_names[i]) {
			*state = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* -------- Device -------- */

int Device::probe(DeviceCaps *caps)
{
	*caps = {};
	Feature<struct vfio_device_feature_migration> m(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION);
	int ret = t_.ioctl(fd_, VFIO_DEVICE_FEATURE, m.hdr());
	if (ret && ret != -ENOTTY)
		return ret;
	caps->migration = !ret;
	caps->migration_flags = ret ? 0 : m.data()->flags;

	Feature<struct vfio_device_feature_dma_logging_control> l(
		VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
		VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
	caps->dma_logging = !t_.ioctl(fd_, VFIO_DEVICE_FEATURE, l.hdr());

	if (caps->migration)
		caps->data_size = !data_size(&caps->stop_copy_size);
	return 0;
}

int Device::get_state(__u32 *state)
{
	Feature<struct vfio_device_feature_mig_state> f(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
	int ret = t_.ioctl(fd_, VFIO_DEVICE_FEATURE, f.hdr());
	if (!ret)
		*state = f.data()->device_state;
	return ret;
}

int Device::set_state(__u32 state, int *data_fd)
{
	Feature<struct vfio_device_feature_mig_state> f(
		VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
	f.data()->device_state = state;
	f.data()->data_fd = -1;
	int ret = t_.ioctl(fd_, VFIO_DEVICE_FEATURE, f.hdr());
	if (data_fd)
		*data_fd = ret ? -1 : f.data()->data_fd;
	return ret;
}

int Device::data_size(__u64 *bytes)
{
	Feature<struct vfio_device_feature_mig_data_size> f(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE);
	int ret = t_.ioctl(fd_, VFIO_DEVICE_FEATURE, f.hdr());
	if (!ret)
		*bytes = f.data()->stop_copy_length;
	return ret;
}

int Device::precopy_info(int data_fd, __u64 *initial, __u64 *dirty)
{
	struct vfio_precopy_info info = {};
	info.argsz = sizeof(info);
	int ret = t_.ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info);
	if (!ret) {
		*initial = info.initial_bytes;
		*dirty = info.dirty_bytes;
	}
	return ret;
}

int Device::reset()
{
	return t_.ioctl(fd_, VFIO_DEVICE_RESET, nullptr);
}

/* -------- DirtyTracker -------- */

int DirtyTracker::start(bool prefer_device)
{
	DeviceCaps caps;
	int ret = dev_.probe(&caps);
	if (ret)
		return ret;
	stop();
	if (prefer_device && caps.dma_logging) {
		struct vfio_device_feature_dma_logging_range r = {mem_.iova,
								   mem_.size};
		Feature<struct vfio_device_feature_dma_logging_control> f(
			VFIO_DEVICE_FEATURE_SET |
			VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
		f.data()->page_size = PAGE;
		f.data()->num_ranges = 1;
		f.data()->ranges = reinterpret_cast<uintptr_t>(&r);
		ret = dev_.transport().ioctl(dev_.fd(), VFIO_DEVICE_FEATURE,
					     f.hdr());
		if (!ret)
			mode_ = DMA_LOG;
		return ret;
	}
	if (mem_.container < 0)
		return 0;	/* nothing to track with */
	struct vfio_iommu_type1_dirty_bitmap db = {};
	db.argsz = sizeof(db);
	db.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
	ret = dev_.transport().ioctl(mem_.container, VFIO_IOMMU_DIRTY_PAGES,
				     &db);
	if (!ret)
		mode_ = IOMMU;
	return ret;
}

int DirtyTracker::report(std::vector<__u64> *bitmap)
{
	bitmap->assign((mem_.size / PAGE + 63) / 64, 0);
	if (mode_ == DMA_LOG) {
		Feature<struct vfio_device_feature_dma_logging_report> f(
			VFIO_DEVICE_FEATURE_GET |
			VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
		f.data()->iova = mem_.iova;
		f.data()->length = mem_.size;
		f.data()->page_size = PAGE;
		f.data()->bitmap = reinterpret_cast<uintptr_t>(bitmap->data());
		return dev_.transport().ioctl(dev_.fd(), VFIO_DEVICE_FEATURE,
					      f.hdr());
	}
	if (mode_ == IOMMU) {
		alignas(8) unsigned char buf[sizeof(struct vfio_iommu_type1_dirty_bitmap) +
					     sizeof(struct vfio_iommu_type1_dirty_bitmap_get)] = {};
		auto *db = reinterpret_cast<struct vfio_iommu_type1_dirty_bitmap *>(buf);
		auto *g = reinterpret_cast<struct vfio_iommu_type1_dirty_bitmap_get *>(
			buf + sizeof(*db));
		db->argsz = sizeof(buf);
		db->flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
		g->iova = mem_.iova;
		g->size = mem_.size;
		g->bitmap.pgsize = PAGE;
		g->bitmap.size = bitmap->size() * 8;
		g->bitmap.data = reinterpret_cast<__u64 *>(bitmap->data());
		return dev_.transport().ioctl(mem_.container,
					      VFIO_IOMMU_DIRTY_PAGES, buf);
	}
	return -EINVAL;
}

void DirtyTracker::stop()
{
	if (mode_ == DMA_LOG) {
		struct vfio_device_feature f = {};
		f.argsz = sizeof(f);
		f.flags = VFIO_DEVICE_FEATURE_SET |
			  VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP;
		dev_.transport().ioctl(dev_.fd(), VFIO_DEVICE_FEATURE, &f);
	} else if (mode_ == IOMMU) {
		struct vfio_iommu_type1_dirty_bitmap db = {};
		db.argsz = sizeof(db);
		db.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
		dev_.transport().ioctl(mem_.container, VFIO_IOMMU_DIRTY_PAGES, &db);
	}
	mode_ = NONE;
}

const char *DirtyTracker::mode() const
{
	return mode_ == DMA_LOG ? "dma-logging" : mode_ == IOMMU ? "iommu" : "none";
}

/* -------- the plain engine -------- */

int plain_copy(const Endpoint &src, const Endpoint &dst, bool until_pause,
	       StreamStats *stats, const Progress &progress)
{
	/* QEMU's sizes: 1 MiB reads, 32 KiB writes into a resuming fd. */
	const size_t read_size = 1 << 20;
	const size_t write_size = dst.transport ? 32 << 10 : read_size;
	std::vector<char> buf(read_size);
	auto t0 = clock_type::now();
	auto last_report = t0;
	__u64 moved = 0;

	for (;;) {
		ssize_t n = read_some(src, buf.data(), buf.size());
		if (n == -ENOMSG && until_pause)
			break;
		if (n < 0)
			return int(n);
		if (n == 0)
			break;
		int ret = write_all(dst, buf.data(), size_t(n), write_size);
		if (ret)
			return ret;
		moved += __u64(n);
		if (progress && clock_type::now() - last_report >
					std::chrono::milliseconds(100)) {
			last_report = clock_type::now();
			progress(moved);
		}
	}
	if (stats) {
		stats->bytes += moved;
		stats->seconds += seconds_since(t0);
	}
	if (progress)
		progress(moved);
	return 0;
}

int copy_to_eof(const Endpoint &src, const Endpoint &dst,
		const StreamOptions &so, StreamStats *stats,
		const Progress &progress)
{
	/* Data fds of both transports are real descriptors; a StreamIo
	 * is not one. */
	if (so.uring && !src.io && !dst.io)
		return uring_copy(src.fd, dst.fd, stats, progress, so.uring_opt);
	return plain_copy(src, dst, false, stats, progress);
}

/*
 * A simulated device's saving data fd may queue device memory by
 * reference (uvfio_copy_to_user_stable). Spliced on into a pipe or a
 * socket, the references outlive the stream: if the device then runs
 * again, bytes not yet taken downstream change under their checksum. Where
 * the device will run after a save, only a regular file (whose page cache
 * takes a copy) gets spliced data; anything else gets copies, as from a
 * kernel data fd (which does not splice at all).
 */
static bool is_regular_file(int fd)
{
	struct stat st;
	return !fstat(fd, &st) && S_ISREG(st.st_mode);
}

/* -------- the protocols -------- */

const char *protocol_name(Protocol p)
{
	return p == Protocol::V1 ? "v1" : "v2";
}

int parse_protocol(const std::string &name, Protocol *p)
{
	if (name == "v1")
		*p = Protocol::V1;
	else if (name == "v2")
		*p = Protocol::V2;
	else
		return -EINVAL;
	return 0;
}

int MigrationV2::set_state(__u32 state, Endpoint *stream)
{
	int fd = -1;
	int ret = dev_.set_state(state, &fd);
	if (stream)
		*stream = {&dev_.transport(), fd};
	else if (fd >= 0)
		dev_.transport().close(fd);
	return ret;
}

void MigrationV2::close_stream(Endpoint *stream)
{
	if (stream->fd >= 0)
		dev_.transport().close(stream->fd);
	*stream = {};
}

int MigrationV2::precopy_info(const Endpoint &stream, __u64 *initial,
			      __u64 *dirty)
{
	return dev_.precopy_info(stream.fd, initial, dirty);
}

namespace {

/* QEMU's recovery: the fallback state, else a reset. */
void recover(Migration &mig, __u32 fallback)
{
	if (mig.set_state(fallback))
		mig.reset();
}

/* What failed in a stream: the errno, and what the protocol saw. */
std::string stream_failure(Migration &mig, int err)
{
	std::string s = errstr(err);
	std::string detail = mig.stream_error();
	if (!detail.empty())
		s += " (" + detail + ")";
	return s;
}

} // namespace

int save_device(Migration &mig, const Endpoint &dst, bool leave_stopped,
		StreamStats *stats, std::string *why, const Progress &progress,
		const StreamOptions &so)
{
	__u32 orig;
	int ret = mig.get_state(&orig);
	if (ret) {
		say(why, "cannot read the device state: " + errstr(ret));
		return ret;
	}
	if (orig != VFIO_DEVICE_STATE_RUNNING && orig != VFIO_DEVICE_STATE_STOP &&
	    orig != VFIO_DEVICE_STATE_RUNNING_P2P)
		orig = VFIO_DEVICE_STATE_STOP;
	Endpoint from;
	ret = mig.set_state(VFIO_DEVICE_STATE_STOP_COPY, &from);
	if (ret || !from.valid()) {
		say(why, "cannot enter STOP_COPY: " + errstr(ret ? ret : -EPROTO));
		mig.close_stream(&from);
		recover(mig, orig);
		return ret ? ret : -EPROTO;
	}
	__u32 after = leave_stopped ? __u32(VFIO_DEVICE_STATE_STOP) : orig;
	StreamOptions copy_so = so;
	if (after != VFIO_DEVICE_STATE_STOP && !is_regular_file(dst.fd))
		copy_so.uring_opt.splice = false;
	ret = copy_to_eof(from, dst, copy_so, stats, progress);
	mig.close_stream(&from);
	if (ret) {
		say(why, "saving the device state failed: " +
				 stream_failure(mig, ret));
		recover(mig, orig);
		return ret;
	}
	ret = mig.set_state(after);
	if (ret) {
		say(why, std::string("saved, but cannot return to ") +
				 state_name(after) + ": " + errstr(ret));
		recover(mig, VFIO_DEVICE_STATE_RUNNING);
	}
	return ret;
}

int save_device(Device &dev, const Endpoint &dst, bool leave_stopped,
		StreamStats *stats, std::string *why, const Progress &progress,
		const StreamOptions &so)
{
	MigrationV2 mig(dev);
	return save_device(mig, dst, leave_stopped, stats, why, progress, so);
}

int load_device(Migration &mig, const Endpoint &src, bool run,
		StreamStats *stats, std::string *why, const Progress &progress,
		const StreamOptions &so)
{
	Endpoint to;
	int ret = 0;
	/*
	 * v2 stops first, as before; v1 goes to RESUMING from where it is,
	 * as the KABI's resuming sequence does (RUNNING to RESUMING).
	 */
	if ((mig.protocol() == Protocol::V2 &&
	     (ret = mig.set_state(VFIO_DEVICE_STATE_STOP))) ||
	    (ret = mig.set_state(VFIO_DEVICE_STATE_RESUMING, &to)) ||
	    !to.valid()) {
		say(why, "cannot enter RESUMING: " + errstr(ret ? ret : -EPROTO));
		mig.close_stream(&to);
		recover(mig, VFIO_DEVICE_STATE_RUNNING);
		return ret ? ret : -EPROTO;
	}
	ret = copy_to_eof(src, to, so, stats, progress);
	mig.close_stream(&to);
	if (ret) {
		say(why, "loading the device state failed: " +
				 stream_failure(mig, ret));
		mig.reset();
		return ret;
	}
	ret = mig.set_state(VFIO_DEVICE_STATE_STOP);
	if (ret) {
		say(why, "the device refused the state (" + errstr(ret) +
				 "); it was reset");
		mig.reset();
		return ret;
	}
	if (run && (ret = mig.set_state(VFIO_DEVICE_STATE_RUNNING))) {
		say(why, "loaded, but cannot run: " + errstr(ret));
		mig.reset();
	}
	return ret;
}

int load_device(Device &dev, const Endpoint &src, bool run,
		StreamStats *stats, std::string *why, const Progress &progress,
		const StreamOptions &so)
{
	MigrationV2 mig(dev);
	return load_device(mig, src, run, stats, why, progress, so);
}

/* -------- live migration -------- */

namespace {

/* Save a device's state into memory (verification, outside downtime). */
int snapshot(Migration &mig, std::vector<char> *out, std::string *why)
{
	MemFile mf;
	if (mf.fd < 0)
		return -errno;
	int ret = save_device(mig, {nullptr, mf.fd}, true, nullptr, why);
	if (!ret)
		*out = mf.contents();
	return ret;
}

/*
 * The convergence policy: switch over once the initial data is sent and
 * what is left (device data PRECOPY_INFO reports, and guest pages at the
 * last pass's count) would take no longer than the budget at the last
 * pass's rate.
 */
bool converged(const PassReport &p, __u64 initial, __u64 dirty,
	       double budget_ms)
{
	__u64 left = initial + dirty + p.guest_pages * PAGE;
	if (initial)
		return false;
	if (!left)
		return true;	/* nothing to send: no rate needed */
	double rate = double(p.device_bytes + p.guest_pages * PAGE) /
		      std::max(p.seconds, 1e-6);
	return rate > 0 && left / rate * 1000 <= budget_ms;
}

/*
 * Both sides equal once the destination is loaded: their states saved
 * again (outside the downtime) and guest memory.
 */
void verify(Migration &src, const GuestMemory &s, Migration &dst,
	    const GuestMemory &d, MigrateReport *r)
{
	std::vector<char> a, b;
	std::string why;
	if (snapshot(src, &a, &why) || snapshot(dst, &b, &why)) {
		r->verify_detail = "could not re-save: " + why;
	} else if (a != b) {
		r->verify_detail = "device state differs";
	} else if (s.size && std::memcmp(s.host, d.host, s.size)) {
		r->verify_detail = "guest memory differs";
	} else {
		r->verified = true;
		r->verify_detail = "device state and guest memory equal";
	}
}

} // namespace

int migrate(Migration &src, GuestMemory src_mem, Migration &dst,
	    GuestMemory dst_mem, const MigrateOptions &opt,
	    const std::function<void()> &on_stop, MigrateReport *r,
	    std::string *why, const Progress &progress)
{
	DeviceCaps sc, dc;
	int ret;
	Endpoint from, to;
	auto t_start = clock_type::now();
	*r = {};

	if ((ret = src.device().probe(&sc)) || (ret = dst.device().probe(&dc))) {
		say(why, "cannot probe the devices: " + errstr(ret));
		return ret;
	}
	/* v1 has its region (open_migration found it), not the feature. */
	const bool src_v1 = src.protocol() == Protocol::V1;
	const bool dst_v1 = dst.protocol() == Protocol::V1;
	if ((!src_v1 && !sc.migration) || (!dst_v1 && !dc.migration)) {
		say(why, std::string(!src_v1 && !sc.migration ? "source"
							       : "destination") +
				 " does not support migration");
		return -EOPNOTSUPP;
	}
	if (src_mem.size != dst_mem.size) {
		say(why, "guest memory sizes differ");
		return -EINVAL;
	}
	r->precopy = opt.precopy &&
		     (src_v1 || (sc.migration_flags & VFIO_MIGRATION_PRE_COPY));

	GuestTracker guest(src.device(), src_mem, dst_mem);
	if (src_mem.size &&
	    (ret = guest.start(true, &r->dirty_tracking))) {
		say(why, "cannot start dirty tracking: " + errstr(ret));
		return ret;
	}
	if (!src_mem.size)
		r->dirty_tracking = "none";

	auto fail = [&](int err, const std::string &what) {
		say(why, what + ": " + errstr(err));
		guest.stop();
		src.close_stream(&from);
		dst.close_stream(&to);
		recover(src, VFIO_DEVICE_STATE_RUNNING);
		dst.reset();
		return err;
	};
	/* A stream's failure, with what the protocol saw. */
	auto stream_fail = [&](int err, const std::string &what) {
		std::string detail = src.stream_error();
		if (detail.empty())
			detail = dst.stream_error();
		return fail(err, detail.empty() ? what : what + " (" + detail + ")");
	};

	if ((!dst_v1 && (ret = dst.set_state(VFIO_DEVICE_STATE_STOP))) ||
	    (ret = dst.set_state(VFIO_DEVICE_STATE_RESUMING, &to)))
		return fail(ret, "destination cannot enter RESUMING");
	if (!to.valid())
		return fail(-EPROTO, "destination gave no stream");

	/* Guest memory, first pass: all of it. */
	PassReport first;
	auto tp = clock_type::now();
	if (src_mem.size)
		first.guest_pages = guest.copy_all();

	if (r->precopy) {
		if ((ret = src.set_state(VFIO_DEVICE_STATE_PRE_COPY, &from)) ||
		    !from.valid())
			return fail(ret ? ret : -EPROTO,
				    "source cannot enter PRE_COPY");
		__u64 base = 0;
		auto prog = [&](__u64 b) {
			if (progress)
				progress(base + b);
		};
		for (unsigned pass = 0; pass < opt.max_passes; pass++) {
			PassReport p = pass ? PassReport{} : first;
			if (pass)
				tp = clock_type::now();
			StreamStats s;
			ret = plain_copy(from, to, true, &s, prog);
			if (ret)
				return stream_fail(ret, "pre-copy stream failed");
			p.device_bytes = s.bytes;
			base += s.bytes;
			if (pass && src_mem.size) {
				long long n = guest.copy_dirty();
				if (n < 0)
					return fail(int(n), "dirty tracking failed");
				p.guest_pages = __u64(n);
			}
			p.seconds = seconds_since(tp);
			r->passes.push_back(p);

			__u64 initial = 0, dirty = 0;
			if ((ret = src.precopy_info(from, &initial, &dirty)))
				return fail(ret, "PRECOPY_INFO failed");
			if (pass && converged(p, initial, dirty,
					      opt.downtime_budget_ms))
				break;
			std::this_thread::sleep_for(
				std::chrono::milliseconds(opt.min_pass_ms));
		}
	} else {
		first.seconds = seconds_since(tp);
		r->passes.push_back(first);
	}

	/* The switch-over: vCPUs first, then the device. */
	if (on_stop)
		on_stop();
	auto td0 = clock_type::now();
	Endpoint again;
	if ((ret = src.set_state(VFIO_DEVICE_STATE_STOP_COPY, &again)))
		return fail(ret, "source cannot enter STOP_COPY");
	if (!r->precopy)
		from = again;
	else
		src.close_stream(&again);	/* none: the stream goes on */
	if (!from.valid())
		return fail(-EPROTO, "source gave no stream");
	if (src_mem.size) {
		long long n = guest.copy_dirty();
		if (n < 0)
			return fail(int(n), "dirty tracking failed");
		r->final_guest_pages = __u64(n);
		for (auto [off, len] : opt.cpu_written) {
			if (off >= src_mem.size)
				continue;
			len = std::min(len, src_mem.size - off);
			copy_page(static_cast<char *>(dst_mem.host) + off,
				  static_cast<const char *>(src_mem.host) + off,
				  len);
			r->final_guest_pages += (len + PAGE - 1) / PAGE;
		}
	}
	StreamStats s;
	ret = copy_to_eof(from, to, opt.stream, &s);
	if (ret)
		return stream_fail(ret, "stop-copy stream failed");
	r->stop_copy_bytes = s.bytes;
	src.close_stream(&from);
	dst.close_stream(&to);
	if ((ret = dst.set_state(VFIO_DEVICE_STATE_STOP)))
		return fail(ret, "the destination refused the state");
	auto td1 = clock_type::now();
	r->total_seconds = seconds_since(t_start);
	guest.stop();
	if ((ret = src.set_state(VFIO_DEVICE_STATE_STOP)))
		return fail(ret, "source cannot leave STOP_COPY");

	verify(src, src_mem, dst, dst_mem, r);

	auto tr0 = clock_type::now();
	if ((ret = dst.set_state(VFIO_DEVICE_STATE_RUNNING)))
		return fail(ret, "the destination cannot run");
	auto tr1 = clock_type::now();
	r->downtime_ms =
		std::chrono::duration<double, std::milli>(td1 - td0).count() +
		std::chrono::duration<double, std::milli>(tr1 - tr0).count();
	r->total_bytes = r->stop_copy_bytes;
	for (auto &p : r->passes)
		r->total_bytes += p.device_bytes + p.guest_pages * PAGE;
	r->total_bytes += r->final_guest_pages * PAGE;
	return 0;
}

int migrate(Device &src, GuestMemory src_mem, Device &dst,
	    GuestMemory dst_mem, const MigrateOptions &opt,
	    const std::function<void()> &on_stop, MigrateReport *r,
	    std::string *why, const Progress &progress)
{
	MigrationV2 s(src), d(dst);
	return migrate(s, src_mem, d, dst_mem, opt, on_stop, r, why, progress);
}

} // namespace uvfio::tools
