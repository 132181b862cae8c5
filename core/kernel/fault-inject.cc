// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fault injection (the kernel's lib/fault-inject.c): the registry of
 * declared fault points, the armed specs, should_fail()'s slow paths and
 * the C API of <uvfio/uvfio.h>
 * (uvfio_fault_set, uvfio_fault_clear, uvfio_fault_hits, uvfio_fault_list).
 *
 * One mutex protects everything here. It is a leaf: nothing is called
 * while it is held (the "injected" log line is written after it is
 * dropped), so points may sit under any driver or core lock.
 */
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <uvfio/linux/device.h>
#include <uvfio/linux/fault-inject.h>
#include <uvfio/linux/types.h>
#include <uvfio/uvfio.h>

std::atomic<unsigned int> uvfio_faults_armed{0};

namespace {

/* Errno values a point may fail with: what strerror knows, no more. */
constexpr int max_errno = 4095;

/* What the registry keeps of a declared point. */
struct point_info {
	int default_err;
	std::string doc;
};

struct fault_spec {
	unsigned int nth;	/* fail this hit (1 = the next one) */
	bool persist;		/* ... and every hit after it */
	int err;		/* 0: the default of the point hit */
	u64 hits = 0;		/* hits since armed, of the point or under it */
};

struct fault_registry {
	std::mutex m;
	std::map<std::string, point_info, std::less<>> points;
	std::map<std::string, fault_spec, std::less<>> armed;
	/*
	 * The points that failed a call, each once, in the order they first
	 * did: what a tool names in its error (uvfio_fault_fired()). The set
	 * owns the names (nodes never move), the vector keeps the order.
	 */
	std::set<std::string, std::less<>> fired_names;
	std::vector<const char *> fired;
};

/*
 * Never destroyed: constructors of other objects (drivers, plugins)
 * register into it, and threads may check points during exit.
 */
fault_registry &registry()
{
	static fault_registry *r = new fault_registry;
	return *r;
}

bool valid_name(std::string_view name)
{
	if (name.empty() || name.size() > 128 || name.front() == '.' ||
	    name.back() == '.' || name.find("..") != std::string_view::npos)
		return false;
	for (char c : name)
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-' || c == '>'))
			return false;
	return true;
}

/* A declared point, or a dotted prefix of one ("mig.arc", "dma"). Under m. */
bool known(fault_registry &r, std::string_view name)
{
	if (r.points.count(name))
		return true;
	std::string prefix(name);
	prefix += '.';
	auto it = r.points.lower_bound(prefix);
	return it != r.points.end() &&
	       std::string_view(it->first).substr(0, prefix.size()) == prefix;
}

} // namespace

int fault_point_register(const char *name, int default_err, const char *doc)
{
	if (!name || !valid_name(name) || default_err <= 0 ||
	    default_err > max_errno) {
		pr_err("fault point %s: bad name or errno", name ? name : "(null)");
		return -EINVAL;
	}
	fault_registry &r = registry();
	std::lock_guard<std::mutex> l(r.m);
	try {
		r.points.try_emplace(name, point_info{default_err,
						       doc ? doc : ""});
	} catch (...) {
		return -ENOMEM;
	}
	return 0;
}

namespace {

/* Remember that name failed a call; r.m held. */
void note_fired(fault_registry &r, const char *name)
{
	try {
		auto [it, added] = r.fired_names.emplace(name);
		if (added)
			r.fired.push_back(it->c_str());
	} catch (...) {
		/* Out of memory: the failure itself still happens. */
	}
}

/*
 * One hit of the point name: it and each dotted prefix of it count the
 * hit. default_err is the point's errno when the caller knows it (0: look
 * it up).
 */
int hit(const char *name, int default_err)
{
	fault_registry &r = registry();
	std::string armed_as;
	int ret = 0;

	{
		std::lock_guard<std::mutex> l(r.m);
		for (std::string_view n(name);;) {
			auto it = r.armed.find(n);
			if (it != r.armed.end()) {
				fault_spec &s = it->second;
				s.hits++;
				if (!ret && (s.hits == s.nth ||
					     (s.persist && s.hits > s.nth))) {
					int err = s.err;
					if (!err && !default_err) {
						auto p = r.points.find(
							std::string_view(name));
						default_err =
							p != r.points.end()
								? p->second.default_err
								: EIO;
					}
					ret = -(err ? err : default_err);
					armed_as = it->first;
					note_fired(r, name);
				}
			}
			size_t dot = n.rfind('.');
			if (dot == std::string_view::npos)
				break;
			n = n.substr(0, dot);
		}
	}
	if (ret)
		pr_info("fault injected at %s (armed as %s): %s", name,
			armed_as.c_str(), strerror(-ret));
	return ret;
}

} // namespace

int uvfio_should_fail_point_slow(const struct fault_point *point)
{
	/* A point whose registration failed was never armable. */
	if (point->default_err <= 0 || point->default_err > max_errno)
		return 0;
	return hit(point->name, point->default_err);
}

int uvfio_should_fail_slow(const char *name)
{
	return hit(name, 0);
}

int uvfio_should_failf_slow(const char *fmt, ...)
{
	char name[160];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	if (n < 0 || static_cast<size_t>(n) >= sizeof(name))
		return 0;	/* no declared point is that long */
	return uvfio_should_fail_slow(name);
}

/* -------- the C API (<uvfio/uvfio.h>): -1 and errno -------- */

extern "C" {

int uvfio_fault_set(const char *name, unsigned int nth, int err,
		    unsigned int flags)
{
	if (!name) {
		errno = EFAULT;
		return -1;
	}
	if (!nth || err < 0 || err > max_errno ||
	    (flags & ~UVFIO_FAULT_PERSIST)) {
		errno = EINVAL;
		return -1;
	}
	fault_registry &r = registry();
	std::lock_guard<std::mutex> l(r.m);
	if (!known(r, name)) {
		errno = ENOENT;
		return -1;
	}
	try {
		auto [it, added] = r.armed.insert_or_assign(
			name, fault_spec{nth, !!(flags & UVFIO_FAULT_PERSIST),
					 err});
		(void)it;
		if (added)
			uvfio_faults_armed.fetch_add(1, std::memory_order_relaxed);
	} catch (...) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

int uvfio_fault_clear(const char *name)
{
	fault_registry &r = registry();
	std::lock_guard<std::mutex> l(r.m);
	if (!name) {
		r.armed.clear();
		uvfio_faults_armed.store(0, std::memory_order_relaxed);
		return 0;
	}
	auto it = r.armed.find(std::string_view(name));
	if (it == r.armed.end()) {
		/* Not armed: nothing to do, unless there is no such point. */
		if (known(r, name))
			return 0;
		errno = ENOENT;
		return -1;
	}
	r.armed.erase(it);
	uvfio_faults_armed.fetch_sub(1, std::memory_order_relaxed);
	return 0;
}

long long uvfio_fault_hits(const char *name)
{
	if (!name) {
		errno = EFAULT;
		return -1;
	}
	fault_registry &r = registry();
	std::lock_guard<std::mutex> l(r.m);
	auto it = r.armed.find(std::string_view(name));
	if (it == r.armed.end()) {
		errno = ENOENT;
		return -1;
	}
	return static_cast<long long>(it->second.hits);
}

int uvfio_fault_fired(unsigned int idx, const char **name)
{
	fault_registry &r = registry();
	std::lock_guard<std::mutex> l(r.m);
	if (idx >= r.fired.size()) {
		errno = ENOENT;
		return -1;
	}
	if (name)
		*name = r.fired[idx];
	return 0;
}

int uvfio_fault_list(unsigned int idx, const char **name, int *default_err,
		     const char **description)
{
	fault_registry &r = registry();
	std::lock_guard<std::mutex> l(r.m);
	if (idx >= r.points.size()) {
		errno = ENOENT;
		return -1;
	}
	auto it = r.points.begin();
	std::advance(it, idx);
	/* Map nodes never move and points are never removed. */
	if (name)
		*name = it->first.c_str();
	if (default_err)
		*default_err = it->second.default_err;
	if (description)
		*description = it->second.doc.c_str();
	return 0;
}

} /* extern "C" */
