// SPDX-License-Identifier: GPL-2.0-only
/*
 * Live migration, as a VMM runs it: pre-copy passes of device data and
 * dirty guest pages until what is left fits the downtime budget, then
 * stop-copy, resume, and a verification of both sides, through a
 * Transport only.
 */
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include <uvfio/tools/migration.h>
#include <uvfio/uapi/vfio.h>

#include "lib_priv.h"

namespace uvfio::tools {

using namespace detail;

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

namespace detail {

constexpr __u64 PAGE = DirtyTracker::PAGE;

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

GuestTracker::GuestTracker(std::vector<Device *> devs, const GuestMemory &s,
			   const GuestMemory &d)
	: devs_(std::move(devs)), s_(s), d_(d)
{
}

int GuestTracker::start(bool dma_logging, std::string *mode)
{
	stop();
	bool all_log = dma_logging;
	for (Device *dev : devs_) {
		DeviceCaps c;
		if (int ret = dev->probe(&c))
			return ret;
		all_log = all_log && c.dma_logging;
	}
	/*
	 * Every device's own log, their union read each pass; else the
	 * container's, which sees every device in it.
	 */
	size_t n = all_log ? devs_.size() : std::min<size_t>(devs_.size(), 1);
	int ret = 0;
	for (size_t i = 0; i < n && !ret; i++) {
		t_.push_back(std::make_unique<DirtyTracker>(*devs_[i], s_));
		ret = t_.back()->start(all_log);
	}
	*mode = t_.empty() ? "none" : t_.back()->mode();
	return ret;
}

void GuestTracker::stop()
{
	t_.clear();
}

__u64 GuestTracker::copy_all()
{
	for (__u64 off = 0; off < s_.size; off += PAGE)
		copy_page(static_cast<char *>(d_.host) + off,
			  static_cast<const char *>(s_.host) + off,
			  std::min(PAGE, s_.size - off));
	return s_.size / PAGE;
}

long long GuestTracker::copy_dirty()
{
	if (t_.empty() || !std::strcmp(t_[0]->mode(), "none"))
		return (long long)copy_all();
	std::vector<__u64> one;
	union_.assign((s_.size / PAGE + 63) / 64, 0);
	for (auto &t : t_) {
		if (int ret = t->report(&one))
			return ret;
		for (size_t w = 0; w < union_.size() && w < one.size(); w++)
			union_[w] |= one[w];
	}
	long long n = 0;
	for (__u64 p = 0; p < s_.size / PAGE; p++) {
		if (!(union_[p / 64] >> (p % 64) & 1))
			continue;
		copy_page(static_cast<char *>(d_.host) + p * PAGE,
			  static_cast<const char *>(s_.host) + p * PAGE, PAGE);
		n++;
	}
	return n;
}

__u64 copy_cpu_written(const GuestMemory &s, const GuestMemory &d,
		       const std::vector<std::pair<__u64, __u64>> &ranges)
{
	__u64 pages = 0;
	for (auto [off, len] : ranges) {
		if (off >= s.size)
			continue;
		len = std::min(len, s.size - off);
		copy_page(static_cast<char *>(d.host) + off,
			  static_cast<const char *>(s.host) + off, len);
		pages += (len + PAGE - 1) / PAGE;
	}
	return pages;
}

namespace {

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

} // namespace detail

namespace {

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

	GuestTracker guest({&src.device()}, src_mem, dst_mem);
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
		r->final_guest_pages = __u64(n) +
			copy_cpu_written(src_mem, dst_mem, opt.cpu_written);
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
