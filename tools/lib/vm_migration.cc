// SPDX-License-Identifier: GPL-2.0-only
/*
 * Several devices, one VM: the devices' streams and the shared guest
 * memory migrate together, in QEMU's order, so that no device is saved
 * while a peer can still write into it (the P2P states). See migrate_vm()
 * in <uvfio/tools/migration.h>; the pieces it shares with migrate() are
 * in lib_priv.h.
 */
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include <uvfio/tools/migration.h>
#include <uvfio/uapi/vfio.h>

#include "lib_priv.h"

namespace uvfio::tools {

using namespace detail;

namespace {

constexpr __u64 PAGE = DirtyTracker::PAGE;

double ms_between(clock_type::time_point a, clock_type::time_point b)
{
	return std::chrono::duration<double, std::milli>(b - a).count();
}

} // namespace

int migrate_vm(const std::vector<VmDevice> &devs, GuestMemory src_mem,
	       GuestMemory dst_mem, const VmMigrateOptions &opt,
	       const std::function<void()> &on_stop, VmMigrateReport *r,
	       std::string *why, const Progress &progress)
{
	const size_t n = devs.size();
	const MigrateOptions &base = opt.base;
	auto t_start = clock_type::now();
	int ret;
	*r = {};

	if (!n) {
		say(why, "no device to migrate");
		return -EINVAL;
	}
	if (src_mem.size != dst_mem.size) {
		say(why, "guest memory sizes differ");
		return -EINVAL;
	}
	bool all_p2p = true, all_precopy = true;
	for (const VmDevice &d : devs) {
		if (!d.src || !d.dst) {
			say(why, d.name + ": no source or destination");
			return -EINVAL;
		}
		/* v1 has no P2P states, and QEMU never moved a VM of them. */
		if (d.src->protocol() != Protocol::V2 ||
		    d.dst->protocol() != Protocol::V2) {
			say(why, d.name + ": a VM migration speaks v2 only");
			return -EOPNOTSUPP;
		}
		DeviceCaps sc, dc;
		if ((ret = d.src->device().probe(&sc)) ||
		    (ret = d.dst->device().probe(&dc))) {
			say(why, d.name + ": cannot probe the devices: " +
					 errstr(ret));
			return ret;
		}
		if (!sc.migration || !dc.migration) {
			say(why, d.name + ": " +
					 (sc.migration ? "destination" : "source") +
					 " does not support migration");
			return -EOPNOTSUPP;
		}
		const bool p2p = (sc.migration_flags & VFIO_MIGRATION_P2P) &&
				 (dc.migration_flags & VFIO_MIGRATION_P2P);
		/*
		 * Without P2P states a device cannot be held from writing
		 * into a peer already saved: QEMU refuses such a VM.
		 */
		if (!p2p && n > 1 && !opt.unsafe_no_p2p) {
			say(why, d.name + ": its " +
					 (sc.migration_flags & VFIO_MIGRATION_P2P
						  ? "destination" : "source") +
					 " lacks VFIO_MIGRATION_P2P, which "
					 "every device of a VM with several "
					 "needs (the unsafe order would "
					 "lose peer writes)");
			return -EOPNOTSUPP;
		}
		all_p2p = all_p2p && p2p;
		all_precopy = all_precopy &&
			      (sc.migration_flags & VFIO_MIGRATION_PRE_COPY);
	}
	r->precopy = base.precopy && all_precopy;
	r->p2p = all_p2p && !opt.unsafe_no_p2p;
	r->devices.resize(n);
	for (size_t i = 0; i < n; i++)
		r->devices[i].name = devs[i].name;

	std::vector<Device *> srcdevs;
	for (const VmDevice &d : devs)
		srcdevs.push_back(&d.src->device());
	GuestTracker guest(srcdevs, src_mem, dst_mem);
	if (src_mem.size && (ret = guest.start(true, &r->dirty_tracking))) {
		say(why, "cannot start dirty tracking: " + errstr(ret));
		return ret;
	}
	if (!src_mem.size)
		r->dirty_tracking = "none";

	std::vector<Endpoint> from(n), to(n);
	auto fail = [&](int err, const std::string &what) {
		say(why, what + ": " + errstr(err));
		guest.stop();
		for (size_t i = 0; i < n; i++) {
			devs[i].src->close_stream(&from[i]);
			devs[i].dst->close_stream(&to[i]);
		}
		for (const VmDevice &d : devs)
			recover(*d.src, VFIO_DEVICE_STATE_RUNNING);
		for (const VmDevice &d : devs)
			d.dst->reset();
		return err;
	};
	auto stream_fail = [&](size_t i, int err, const std::string &what) {
		std::string detail = devs[i].src->stream_error();
		if (detail.empty())
			detail = devs[i].dst->stream_error();
		return fail(err, devs[i].name + ": " +
				 (detail.empty() ? what : what + " (" + detail + ")"));
	};

	for (size_t i = 0; i < n; i++) {
		Migration &dst = *devs[i].dst;
		if ((ret = dst.set_state(VFIO_DEVICE_STATE_STOP)) ||
		    (ret = dst.set_state(VFIO_DEVICE_STATE_RESUMING, &to[i])))
			return fail(ret, devs[i].name +
					 ": destination cannot enter RESUMING");
		if (!to[i].valid())
			return fail(-EPROTO, devs[i].name +
					     ": destination gave no stream");
	}

	PassReport first;
	auto tp = clock_type::now();
	if (src_mem.size)
		first.guest_pages = guest.copy_all();

	__u64 moved = 0;
	auto prog = [&](__u64 b) {
		if (progress)
			progress(moved + b);
	};
	if (r->precopy) {
		for (size_t i = 0; i < n; i++)
			if ((ret = devs[i].src->set_state(VFIO_DEVICE_STATE_PRE_COPY,
							  &from[i])) ||
			    !from[i].valid())
				return fail(ret ? ret : -EPROTO, devs[i].name +
						": source cannot enter PRE_COPY");
		for (unsigned pass = 0; pass < base.max_passes; pass++) {
			PassReport p = pass ? PassReport{} : first;
			if (pass)
				tp = clock_type::now();
			/* Round-robin: each stream up to its pause. */
			for (size_t i = 0; i < n; i++) {
				StreamStats s;
				if ((ret = plain_copy(from[i], to[i], true, &s, prog)))
					return stream_fail(i, ret,
							   "pre-copy stream failed");
				r->devices[i].pass_bytes.push_back(s.bytes);
				p.device_bytes += s.bytes;
				moved += s.bytes;
			}
			if (pass && src_mem.size) {
				long long g = guest.copy_dirty();
				if (g < 0)
					return fail(int(g), "dirty tracking failed");
				p.guest_pages = __u64(g);
			}
			p.seconds = seconds_since(tp);
			r->passes.push_back(p);

			/* Converge on what all of them have left. */
			__u64 initial = 0, dirty = 0;
			for (size_t i = 0; i < n; i++) {
				__u64 in = 0, di = 0;
				if ((ret = devs[i].src->precopy_info(from[i], &in, &di)))
					return fail(ret, devs[i].name +
							": PRECOPY_INFO failed");
				initial += in;
				dirty += di;
			}
			if (pass && converged(p, initial, dirty,
					      base.downtime_budget_ms))
				break;
			std::this_thread::sleep_for(
				std::chrono::milliseconds(base.min_pass_ms));
		}
	} else {
		first.seconds = seconds_since(tp);
		r->passes.push_back(first);
	}

	/* The switch-over: the vCPUs first, then the devices. */
	if (on_stop)
		on_stop();
	auto td0 = clock_type::now();
	if (r->p2p) {
		/*
		 * Every device out of reach of its peers' DMA, and done
		 * with its own, before any is saved.
		 */
		const __u32 p2p_state = r->precopy ? VFIO_DEVICE_STATE_PRE_COPY_P2P
						   : VFIO_DEVICE_STATE_RUNNING_P2P;
		for (size_t i = 0; i < n; i++) {
			if (opt.on_device_stop)
				opt.on_device_stop(i);
			if ((ret = devs[i].src->set_state(p2p_state)))
				return fail(ret, devs[i].name + ": source cannot "
						 "enter " + state_name(p2p_state));
		}
	}
	/*
	 * Each device to STOP_COPY and its stream into its destination.
	 * Unsafe order: the others still run meanwhile.
	 */
	for (size_t i = 0; i < n; i++) {
		Migration &src = *devs[i].src, &dst = *devs[i].dst;
		if (!r->p2p && opt.on_device_stop)
			opt.on_device_stop(i);
		Endpoint again;
		if ((ret = src.set_state(VFIO_DEVICE_STATE_STOP_COPY, &again)))
			return fail(ret, devs[i].name +
					 ": source cannot enter STOP_COPY");
		if (!r->precopy)
			from[i] = again;
		else
			src.close_stream(&again);	/* the stream goes on */
		if (!from[i].valid())
			return fail(-EPROTO, devs[i].name + ": source gave no stream");
		StreamStats s;
		if ((ret = copy_to_eof(from[i], to[i], base.stream, &s, prog)))
			return stream_fail(i, ret, "stop-copy stream failed");
		moved += s.bytes;
		r->devices[i].stop_copy_bytes = s.bytes;
		r->stop_copy_bytes += s.bytes;
		src.close_stream(&from[i]);
		dst.close_stream(&to[i]);
		if ((ret = dst.set_state(VFIO_DEVICE_STATE_STOP)))
			return fail(ret, devs[i].name +
					 ": the destination refused the state");
		if (opt.on_device_saved)
			opt.on_device_saved(i);
	}
	/* Guest memory last: nothing writes it once every device stopped. */
	if (src_mem.size) {
		long long g = guest.copy_dirty();
		if (g < 0)
			return fail(int(g), "dirty tracking failed");
		r->final_guest_pages = __u64(g) +
			copy_cpu_written(src_mem, dst_mem, base.cpu_written);
	}
	auto td1 = clock_type::now();
	r->total_seconds = seconds_since(t_start);
	guest.stop();
	for (size_t i = 0; i < n; i++)
		if ((ret = devs[i].src->set_state(VFIO_DEVICE_STATE_STOP)))
			return fail(ret, devs[i].name +
					 ": source cannot leave STOP_COPY");

	/*
	 * Verification, outside the downtime: the sources saved again now
	 * that every one stopped, so what reached one after its save shows.
	 */
	bool all_equal = true;
	std::string differ;
	for (size_t i = 0; i < n; i++) {
		VmDeviceReport &dr = r->devices[i];
		std::vector<char> a, b;
		std::string w;
		if (snapshot(*devs[i].src, &a, &w) || snapshot(*devs[i].dst, &b, &w))
			dr.verify_detail = "could not re-save: " + w;
		else if (a != b)
			dr.verify_detail = "device state differs";
		else
			dr.verified = true;
		if (dr.verified) {
			dr.verify_detail = "device state equal";
			continue;
		}
		all_equal = false;
		differ += (differ.empty() ? "" : "; ") + dr.name + ": " +
			  dr.verify_detail;
	}
	if (!all_equal)
		r->verify_detail = differ;
	else if (src_mem.size && std::memcmp(src_mem.host, dst_mem.host, src_mem.size))
		r->verify_detail = "guest memory differs";
	else {
		r->verified = true;
		r->verify_detail = "device states and guest memory equal";
	}

	/* Every destination reachable by its peers before any runs. */
	auto tr0 = clock_type::now();
	if (r->p2p)
		for (size_t i = 0; i < n; i++)
			if ((ret = devs[i].dst->set_state(VFIO_DEVICE_STATE_RUNNING_P2P)))
				return fail(ret, devs[i].name + ": the destination "
						 "cannot enter RUNNING_P2P");
	for (size_t i = 0; i < n; i++)
		if ((ret = devs[i].dst->set_state(VFIO_DEVICE_STATE_RUNNING)))
			return fail(ret, devs[i].name +
					 ": the destination cannot run");
	auto tr1 = clock_type::now();
	r->downtime_ms = ms_between(td0, td1) + ms_between(tr0, tr1);
	r->total_bytes = r->stop_copy_bytes + r->final_guest_pages * PAGE;
	for (auto &p : r->passes)
		r->total_bytes += p.device_bytes + p.guest_pages * PAGE;
	return 0;
}

} // namespace uvfio::tools
