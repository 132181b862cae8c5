// SPDX-License-Identifier: GPL-2.0-only
/*
 * CPU stores through the user's writable mappings of device memory, seen
 * by the function as a device sees PCIe writes to its BAR: while memory
 * tracking is on the mappings are write-protected with userfaultfd; a
 * store faults, the handler thread marks the page and lifts the protection
 * of that page (which lets the store go on). Before the tracker hands a
 * page out, the page is protected again, so a later store faults again.
 *
 * One userfaultfd for the process: UFFDIO_WRITEPROTECT does not check that
 * a range belongs to the fd it is called on, so per-device fds could touch
 * each other's mappings once the user unmaps and remaps. One table, one
 * owner per address.
 *
 * Locks: wp_lock (here) guards the table, the devices' store bitmaps and
 * every protection change, so the handler's "mark, unprotect" and a fold's
 * "protect, clear" never interleave. A faulting thread never holds it
 * (nobody stores to a user mapping under it), and the handler takes no
 * other lock, so a thread blocked in a fault while holding mem_lock (a
 * region read into a mapped BAR) is still served. Order: mem_lock, then
 * wp_lock.
 */
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <uvfio/sim/simdev.h>

#include "sim_types.h"
#include "simdev_wp.h"

struct simdev_wp_dev {
	struct simdev *sd;
	bool on = false;		/* tracking: mappings protected */
	bool any = false;		/* a bit is set in stored */
	std::vector<u64> stored;	/* pages stored to since the last fold */
};

namespace {

constexpr u64 PAGE = SIMDEV_MEM_PAGE;

/* A user mapping: [start, start + len) shows device memory at off. */
struct wp_map {
	u64 start;
	u64 len;
	u64 off;
	struct simdev_wp_dev *dev;
};

struct wp_global {
	std::mutex lock;
	int avail = 0;		/* 0 not tried, 1 usable, -errno not */
	int uffd = -1;
	int efd = -1;
	int users = 0;		/* devices with a simdev_wp_dev */
	std::thread handler;
	std::vector<wp_map> maps;
};

/* Never destroyed: a handler still running at exit must not terminate. */
wp_global &g = *new wp_global;

int wp_ioctl(int fd, unsigned long req, void *arg)
{
	for (;;) {
		if (!ioctl(fd, req, arg))
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
}

int wp_range(int fd, u64 va, u64 len, bool wp)
{
	struct uffdio_writeprotect w = {};
	w.range.start = va;
	w.range.len = len;
	w.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
	return wp_ioctl(fd, UFFDIO_WRITEPROTECT, &w);
}

/*
 * Protect or unprotect the part of dev's mappings showing device memory
 * [off, off + len). A range the user unmapped (ENOENT/EINVAL) is retried
 * page by page and only the pages still there are kept. Under g.lock.
 */
void wp_apply(struct simdev_wp_dev *dev, u64 off, u64 len, bool wp)
{
	std::vector<wp_map> pieces;
	bool gone = false;
	for (wp_map &m : g.maps) {
		u64 a = std::max(off, m.off), b = std::min(off + len, m.off + m.len);
		if (m.dev != dev || a >= b)
			continue;
		u64 va = m.start + (a - m.off);
		int err = wp_range(g.uffd, va, b - a, wp);
		if (err != -ENOENT && err != -EINVAL)
			continue;
		/* Gone in whole or part: keep the pieces that answer. */
		u64 piece = m.start;
		for (u64 p = va; p < va + (b - a); p += PAGE) {
			if (!wp_range(g.uffd, p, PAGE, wp))
				continue;
			if (p > piece)
				pieces.push_back({piece, p - piece,
						  m.off + (piece - m.start), dev});
			piece = p + PAGE;
		}
		if (m.start + m.len > piece)
			pieces.push_back({piece, m.start + m.len - piece,
					  m.off + (piece - m.start), dev});
		m.len = 0;	/* replaced by its pieces */
		gone = true;
	}
	if (!gone)
		return;
	std::erase_if(g.maps, [](const wp_map &m) { return !m.len; });
	g.maps.insert(g.maps.end(), pieces.begin(), pieces.end());
}

/* A store faulted at va: mark its page, let it (and any other) go on. */
void wp_resolve(int fd, u64 va)
{
	std::lock_guard<std::mutex> l(g.lock);
	for (const wp_map &m : g.maps) {
		if (va < m.start || va - m.start >= m.len)
			continue;
		if (m.dev->on) {
			u64 p = (m.off + (va - m.start)) / PAGE;
			m.dev->stored[p / 64] |= 1ULL << (p % 64);
			m.dev->any = true;
		}
		break;
	}
	/* Unknown (being torn down): unprotect anyway, at least wake. */
	if (wp_range(fd, va, PAGE, false)) {
		struct uffdio_range r = {va, PAGE};
		wp_ioctl(fd, UFFDIO_WAKE, &r);
	}
}

void wp_handler(int fd, int efd)
{
	struct pollfd p[2] = {{fd, POLLIN, 0}, {efd, POLLIN, 0}};
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (p[1].revents)
			return;
		if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			return;
		struct uffd_msg msg[16];
		ssize_t n = read(fd, msg, sizeof(msg));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return;
		}
		for (size_t i = 0; i < size_t(n) / sizeof(msg[0]); i++)
			if (msg[i].event == UFFD_EVENT_PAGEFAULT)
				wp_resolve(fd, msg[i].arg.pagefault.address &
						       ~(PAGE - 1));
	}
}

/* Open the process's userfaultfd and check it can write-protect shmem. */
int wp_open(void)
{
	int fd = int(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
	if (fd < 0)
		return -errno;
	struct uffdio_api api = {};
	api.api = UFFD_API;
	api.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP |
		       UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	if (ioctl(fd, UFFDIO_API, &api)) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (!(api.ioctls & (1ULL << _UFFDIO_REGISTER)) ||
	    !(api.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)) {
		close(fd);
		return -EOPNOTSUPP;
	}
	int efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	try {
		g.handler = std::thread(wp_handler, fd, efd);
	} catch (...) {
		close(efd);
		close(fd);
		return -EAGAIN;
	}
	g.uffd = fd;
	g.efd = efd;
	return 0;
}

void log_mode(struct simdev *sd, int err)
{
	static std::once_flag once;
	std::call_once(once, [&] {
		if (!sd->bus.log)
			return;
		char msg[160];
		if (!err)
			snprintf(msg, sizeof(msg), "writable BAR mmaps: stores "
				 "tracked by userfaultfd write-protect");
		else
			snprintf(msg, sizeof(msg), "writable BAR mmaps: "
				 "userfaultfd write-protect unavailable (%s); "
				 "stop-copy resends all device memory",
				 strerror(-err));
		sd->bus.log(sd->bus.opaque, SIMDEV_LOG_DEBUG, msg);
	});
}

/* Take the handler down with the last device (join after unlocking). */
struct wp_stopped {
	std::thread handler;
	int fd = -1, efd = -1;
};

void wp_stop_locked(wp_stopped *s)
{
	s->handler = std::move(g.handler);
	s->fd = g.uffd;
	s->efd = g.efd;
	g.uffd = g.efd = -1;
}

void wp_stop_finish(wp_stopped *s)
{
	if (s->fd < 0)
		return;
	u64 one = 1;
	if (write(s->efd, &one, sizeof(one)) != sizeof(one))
		perror("simdev_wp: eventfd");
	s->handler.join();
	close(s->efd);
	close(s->fd);
}

/* Register [va, va + len) for sd; 0 or -errno (untrackable). Under
 * sd->mem_lock. */
int wp_add(struct simdev *sd, u64 va, u64 off, u64 len, wp_stopped *stop)
{
	std::lock_guard<std::mutex> l(g.lock);
	if (g.avail < 0)
		return g.avail;
	if (g.uffd < 0) {
		int err = wp_open();
		if (err) {
			g.avail = err;	/* decided once: no retry per mmap */
			return err;
		}
		g.avail = 1;
	}
	/* mmap(2) just returned this range: what we knew there is gone. */
	std::erase_if(g.maps, [&](const wp_map &m) {
		return m.start < va + len && va < m.start + m.len;
	});
	struct uffdio_register reg = {};
	reg.range.start = va;
	reg.range.len = len;
	reg.mode = UFFDIO_REGISTER_MODE_WP;
	int err = wp_ioctl(g.uffd, UFFDIO_REGISTER, &reg);
	if (!err && !(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		struct uffdio_range r = {va, len};
		wp_ioctl(g.uffd, UFFDIO_UNREGISTER, &r);
		err = -EOPNOTSUPP;
	}
	if (err) {
		if (!g.users)
			wp_stop_locked(stop);
		return err;
	}
	struct simdev_wp_dev *dev = sd->wp;
	if (!dev) {
		dev = new simdev_wp_dev;
		dev->sd = sd;
		dev->on = sd->mem_tracking;
		dev->stored.assign((sd->mem_size / PAGE + 63) / 64, 0);
		sd->wp = dev;
		g.users++;
	}
	g.maps.push_back({va, len, off, dev});
	/* Nothing was stored through it yet: protecting now loses nothing. */
	if (dev->on)
		wp_apply(dev, off, len, true);
	return 0;
}

} // namespace

void simdev_mem_user_mapped(struct simdev *sd, void *addr, uint64_t off,
			    uint64_t len)
{
	len = (len + PAGE - 1) & ~(PAGE - 1);
	if (off >= sd->mem_size)
		return;
	len = std::min(len, ((sd->mem_size - off) + PAGE - 1) & ~(PAGE - 1));
	wp_stopped stop;
	int err;
	{
		/* mem_lock first (the order), for whether tracking is on. */
		std::lock_guard<std::mutex> l(sd->mem_lock);
		try {
			err = wp_add(sd, reinterpret_cast<u64>(addr), off, len,
				     &stop);
		} catch (...) {
			err = -ENOMEM;	/* a range may stay registered: unused */
		}
	}
	wp_stop_finish(&stop);
	log_mode(sd, err);
	if (err)
		simdev_mem_note_mapped(sd);
}

/* Forget dev (its mappings already are); the last one takes the handler. */
static void wp_release_locked(struct simdev *sd, wp_stopped *stop)
{
	delete sd->wp;
	sd->wp = nullptr;
	if (!--g.users)
		wp_stop_locked(stop);
}

void simdev_wp_track(struct simdev *sd, bool on)
{
	wp_stopped stop;
	{
		std::lock_guard<std::mutex> l(g.lock);
		struct simdev_wp_dev *dev = sd->wp;
		if (!dev)
			return;
		dev->on = on;
		wp_apply(dev, 0, sd->mem_size, on);
		std::fill(dev->stored.begin(), dev->stored.end(), 0);
		dev->any = false;
		/* All unmapped (seen just now): no fd left behind for them. */
		if (!on && std::none_of(g.maps.begin(), g.maps.end(),
					[&](const wp_map &m) { return m.dev == dev; }))
			wp_release_locked(sd, &stop);
	}
	/* The handler takes no mem_lock: joining it under one is safe. */
	wp_stop_finish(&stop);
}

void simdev_wp_fold(struct simdev *sd)
{
	std::lock_guard<std::mutex> l(g.lock);
	struct simdev_wp_dev *dev = sd->wp;
	if (!dev || !dev->any || !sd->mem_tracking)
		return;
	const u64 pages = sd->mem_size / PAGE;
	for (u64 p = 0; p < pages;) {
		if (!(p % 64) && !dev->stored[p / 64]) {
			p += 64;
			continue;
		}
		if (!(dev->stored[p / 64] & (1ULL << (p % 64)))) {
			p++;
			continue;
		}
		u64 q = p;
		while (q < pages && (dev->stored[q / 64] & (1ULL << (q % 64))))
			q++;
		/* Protect first: a store from here on faults and marks anew. */
		wp_apply(dev, p * PAGE, (q - p) * PAGE, true);
		for (u64 i = p; i < q; i++) {
			dev->stored[i / 64] &= ~(1ULL << (i % 64));
			u64 bit = 1ULL << (i % 64);
			if (!(sd->mem_dirty[i / 64] & bit)) {
				sd->mem_dirty[i / 64] |= bit;
				sd->mem_dirty_count++;
			}
		}
		p = q;
	}
	dev->any = false;
}

void simdev_wp_exit(struct simdev *sd)
{
	wp_stopped stop;
	{
		std::lock_guard<std::mutex> l(g.lock);
		struct simdev_wp_dev *dev = sd->wp;
		if (!dev)
			return;
		/* Unregistering wakes any store blocked on these ranges. */
		std::erase_if(g.maps, [&](const wp_map &m) {
			if (m.dev != dev)
				return false;
			wp_range(g.uffd, m.start, m.len, false);
			struct uffdio_range r = {m.start, m.len};
			wp_ioctl(g.uffd, UFFDIO_UNREGISTER, &r);
			return true;
		});
		wp_release_locked(sd, &stop);
	}
	wp_stop_finish(&stop);
}
