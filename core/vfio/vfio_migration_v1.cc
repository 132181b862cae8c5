// SPDX-License-Identifier: GPL-2.0-only
/*
 * The v1 migration region over v2 drivers.
 *
 * Linux 5.8 to 5.17 had a migration protocol whose whole interface was one
 * device region: struct vfio_device_migration_info at its offset 0 (the
 * device_state bits RUNNING, SAVING and RESUMING; pending_bytes,
 * data_offset and data_size) and a data window after it. VMMs that speak
 * only that protocol are still deployed (Debian 12's QEMU 7.2), so uvfio
 * offers the region on every device with mig_ops, plus the NDMA bit of an
 * RFC that was never merged. Documentation/migration-v1.md is the contract;
 * what follows is how it is kept.
 *
 * There is no second state machine: a write of device_state becomes one
 * __vfio_mig_set_state() walk, the very path of MIG_DEVICE_STATE SET, with
 * the same arcs, fault points, stream handling and errnos. The data stream
 * the walk opens is the one a v2 user would get, except that its user end
 * never enters the fd table: the region holds the stream's struct file and
 * calls its read, write and PRECOPY_INFO ioctl, so the data window sees the
 * same bytes, ends and errors as a v2 reader. Nothing of the region is
 * visible to userspace as an fd.
 *
 * Saving: a read of pending_bytes first retires the window if data_offset
 * was read since the last pending_bytes (the KABI's "the data was
 * consumed"), then refills an empty window from the stream (read-ahead:
 * until it is full, the end of the stream, or pre-copy has nothing now).
 * The refill is what lets pending_bytes read exactly 0 at the end of the
 * stream. data_offset hands the window out; data_size is its length.
 * Resuming: a write of data_size sends that much of the window into the
 * stream. The window is memory (a memfd), the same for pread/pwrite and
 * mmap.
 *
 * Everything but the window's bytes is under the device's mig_lock, as
 * MIG_DEVICE_STATE SET, VFIO_DEVICE_RESET and the last close are: those
 * drop the region's session (vfio_mig_v1_abandon) while they hold it.
 */
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/unique_fd.h>
#include <uvfio/linux/vfio.h>

#include "vfio.h"
#include "vfio_mig_stream.h"
#include "vfio_migration.h"

namespace {

constexpr u64 window_off = UVFIO_MIG_V1_DATA_OFFSET;
constexpr u64 window_size = UVFIO_MIG_V1_DATA_SIZE;
static_assert(window_off % PAGE_SIZE == 0 && window_size % PAGE_SIZE == 0,
	      "the data window is whole pages, so it can be mmap()ed");
static_assert(window_off >= sizeof(struct vfio_device_migration_info),
	      "the window follows the trapped fields");

constexpr u32 V1_RUNNING = VFIO_DEVICE_STATE_V1_RUNNING;
constexpr u32 V1_SAVING = VFIO_DEVICE_STATE_V1_SAVING;
constexpr u32 V1_RESUMING = VFIO_DEVICE_STATE_V1_RESUMING;
constexpr u32 V1_NDMA = VFIO_DEVICE_STATE_V1_NDMA;
constexpr u32 V1_MASK = VFIO_DEVICE_STATE_MASK;

/* States the walk can come back to without reopening a data stream. */
bool streamless_state(int state)
{
	return state == VFIO_DEVICE_STATE_STOP ||
	       state == VFIO_DEVICE_STATE_RUNNING ||
	       state == VFIO_DEVICE_STATE_RUNNING_P2P;
}

} // namespace

struct vfio_mig_v1 {
	UniqueFD memfd;		/* the data window, also what mmap() maps */
	u8 *window = nullptr;	/* the core's own mapping of it */

	/* The session; everything below under the device's mig_lock. */
	struct file *filp = nullptr;	/* the stream, held by the core only */
	bool saving = false;	/* filp reads (else it writes) */
	/*
	 * RUNNING|SAVING on a device without VFIO_MIGRATION_PRE_COPY: v2
	 * RUNNING (or RUNNING_P2P), no stream yet, pending_bytes 0.
	 */
	bool armed = false;
	u64 win_len = 0;	/* saving: stream bytes in the window */
	bool handed = false;	/* saving: data_offset read since pending_bytes */
	bool eof = false;	/* saving: the stream has ended */
	u64 resume_size = 0;	/* resuming: the last data_size written */

	vfio_mig_v1() = default;
	vfio_mig_v1(const vfio_mig_v1 &) = delete;
	vfio_mig_v1 &operator=(const vfio_mig_v1 &) = delete;
	~vfio_mig_v1()
	{
		if (filp)
			fput(filp);
		if (window)
			munmap(window, window_size);
	}
};

namespace {

void drop_session(vfio_mig_v1 &m)
{
	struct file *filp = std::exchange(m.filp, nullptr);

	m.saving = false;
	m.win_len = 0;
	m.handed = false;
	m.eof = false;
	m.resume_size = 0;
	/* The last reference: ends the stream if the walk has not. */
	if (filp)
		fput(filp);
}

/* After a walk: a session whose stream the walk ended goes with it. */
void sync_session(struct vfio_device *device, vfio_mig_v1 &m)
{
	const std::shared_ptr<vfio_mig_stream> &s = device->priv->mig_stream;

	if (m.filp && (!s || vfio_mig_stream_ended(*s)))
		drop_session(m);
}

/* The v1 device_state that stands for the v2 state the device is in. */
u32 v1_state_of(int state, bool armed)
{
	u32 saving = armed ? V1_SAVING : 0;

	switch (state) {
	case VFIO_DEVICE_STATE_STOP:
		return VFIO_DEVICE_STATE_V1_STOP;
	case VFIO_DEVICE_STATE_RUNNING:
		return V1_RUNNING | saving;
	case VFIO_DEVICE_STATE_RUNNING_P2P:
		return V1_RUNNING | V1_NDMA | saving;
	case VFIO_DEVICE_STATE_STOP_COPY:
		return V1_SAVING;
	case VFIO_DEVICE_STATE_RESUMING:
		return V1_RESUMING;
	case VFIO_DEVICE_STATE_PRE_COPY:
		return V1_RUNNING | V1_SAVING;
	case VFIO_DEVICE_STATE_PRE_COPY_P2P:
		return V1_RUNNING | V1_SAVING | V1_NDMA;
	default:
		/* ERROR, and anything a driver should never report. */
		return VFIO_DEVICE_STATE_SET_ERROR(0u);
	}
}

int get_state(struct vfio_device *device, int *state)
{
	enum vfio_device_mig_state st;
	int ret = vfio_mig_device_state(device, &st);

	if (!ret)
		*state = st;
	return ret;
}

/*
 * The v2 target of a written device_state, or -EINVAL for a value the
 * device cannot take: a reserved bit, NDMA without VFIO_MIGRATION_P2P,
 * RESUMING with anything but (superfluous) NDMA, which covers the invalid
 * 101b and 111b and the error state 110b, never writable.
 */
int v1_target(struct vfio_device *device, u32 val, int *target, bool *armed)
{
	u32 flags = device->migration_flags;
	u32 bits = val & V1_MASK;
	bool ndma = val & V1_NDMA;

	*armed = false;
	if (val & ~(V1_MASK | V1_NDMA))
		return -EINVAL;
	if (ndma && !(flags & VFIO_MIGRATION_P2P))
		return -EINVAL;
	if ((bits & V1_RESUMING) && bits != V1_RESUMING)
		return -EINVAL;

	/* NDMA without RUNNING is a subset of stopped: superfluous. */
	if (bits == V1_RESUMING)
		*target = VFIO_DEVICE_STATE_RESUMING;
	else if (bits == VFIO_DEVICE_STATE_V1_STOP)
		*target = VFIO_DEVICE_STATE_STOP;
	else if (bits == V1_SAVING)
		*target = VFIO_DEVICE_STATE_STOP_COPY;
	else if (bits == V1_RUNNING)
		*target = ndma ? VFIO_DEVICE_STATE_RUNNING_P2P
			       : VFIO_DEVICE_STATE_RUNNING;
	else if (flags & VFIO_MIGRATION_PRE_COPY)
		*target = ndma ? VFIO_DEVICE_STATE_PRE_COPY_P2P
			       : VFIO_DEVICE_STATE_PRE_COPY;
	else {
		/*
		 * Pre-copy without driver support: the device keeps running
		 * and has nothing to send before stop-and-copy, which the
		 * KABI allows.
		 */
		*target = ndma ? VFIO_DEVICE_STATE_RUNNING_P2P
			       : VFIO_DEVICE_STATE_RUNNING;
		*armed = true;
	}
	return 0;
}

int v1_write_state(struct vfio_device *device, vfio_mig_v1 &m, u32 val)
{
	struct file *filp = nullptr;
	int target, prev, ret;
	bool armed;

	ret = v1_target(device, val, &target, &armed);
	if (ret)
		return ret;
	ret = get_state(device, &prev);
	if (ret)
		return ret;

	ret = __vfio_mig_set_state(
		device, static_cast<enum vfio_device_mig_state>(target), &filp);
	if (ret) {
		int now;

		/*
		 * The KABI wants the previous state, or ERROR, after a failed
		 * write. A later arc of a multi-arc walk can fail with the
		 * device in between (e.g. STOP on the way RUNNING -> SAVING);
		 * walk back when that costs no data stream. Otherwise
		 * device_state reports where the device is.
		 */
		if (!get_state(device, &now) && now != prev &&
		    now != VFIO_DEVICE_STATE_ERROR && streamless_state(prev)) {
			struct file *back = nullptr;

			if (!__vfio_mig_set_state(
				    device,
				    static_cast<enum vfio_device_mig_state>(prev),
				    &back) &&
			    WARN_ON(back))
				fput(back);
		}
		sync_session(device, m);
		if (get_state(device, &now) || now != prev)
			m.armed = false;
		return ret;
	}

	if (filp) {
		drop_session(m);
		m.filp = filp;
		m.saving = target != VFIO_DEVICE_STATE_RESUMING;
	} else {
		sync_session(device, m);
	}
	m.armed = armed;
	return 0;
}

/*
 * Read the saving stream into the window: until it is full, the stream
 * ends, or pre-copy has nothing more now. The window must be retired.
 */
int v1_fill(vfio_mig_v1 &m)
{
	while (m.win_len < window_size && !m.eof) {
		char *to = reinterpret_cast<char *>(m.window) + m.win_len;
		size_t room = window_size - m.win_len;
		ssize_t n;
		{
			uaccess_kernel_buffer kbuf(to, room);
			n = m.filp->f_op->read(m.filp, to, room, nullptr);
		}
		if (n == -ENOMSG)
			break;
		if (n < 0) {
			/* The stream is broken: what was read is worthless. */
			m.win_len = 0;
			return static_cast<int>(n);
		}
		if (!n)
			m.eof = true;
		m.win_len += static_cast<u64>(n);
	}
	return 0;
}

int v1_read_pending(struct vfio_device *device, vfio_mig_v1 &m, u64 *out)
{
	int state, ret;

	*out = 0;
	if (!m.filp || !m.saving)
		return 0;	/* not saving, or pre-copy without support */
	/* After data_offset, this read says the window was consumed. */
	if (m.handed) {
		m.win_len = 0;
		m.handed = false;
	}
	if (!m.win_len) {
		ret = v1_fill(m);
		if (ret)
			return ret;
	}
	ret = get_state(device, &state);
	if (ret)
		return ret;

	if (vfio_mig_state_precopy(state)) {
		/* What the stream's reader would be told, plus the window. */
		struct vfio_precopy_info info = {};
		long err;

		info.argsz = sizeof(info);
		{
			uaccess_kernel_buffer kbuf(&info, sizeof(info));
			err = m.filp->f_op->unlocked_ioctl(
				m.filp, VFIO_MIG_GET_PRECOPY_INFO,
				reinterpret_cast<unsigned long>(&info));
		}
		if (err)
			return static_cast<int>(err);
		*out = m.win_len + info.initial_bytes + info.dirty_bytes;
		return 0;
	}

	/*
	 * Stop-and-copy: exactly the window once the stream has ended (0
	 * when that is read too: the end). Before, the window is full and
	 * the rest is bounded by what the core holds and what the driver
	 * says it will still produce.
	 */
	if (m.eof) {
		*out = m.win_len;
		return 0;
	}
	unsigned long left = 0;
	if (device->mig_ops->migration_get_data_size(device, &left))
		left = 0;
	*out = m.win_len + vfio_mig_stream_file_unread(m.filp) + left;
	return 0;
}

int v1_read_data_offset(vfio_mig_v1 &m)
{
	if (!m.filp || !m.saving || m.handed)
		return 0;
	/* data_offset first, without pending_bytes: make data available. */
	if (!m.win_len) {
		int ret = v1_fill(m);
		if (ret)
			return ret;
	}
	m.handed = true;
	return 0;
}

u64 v1_read_data_size(const vfio_mig_v1 &m)
{
	if (!m.filp)
		return 0;
	if (!m.saving)
		return m.resume_size;
	return m.handed ? m.win_len : 0;
}

/* RESUMING: the first n bytes of the window go into the stream. */
int v1_write_data_size(vfio_mig_v1 &m, u64 n)
{
	if (!m.filp || m.saving || n > window_size)
		return -EINVAL;
	for (u64 done = 0; done < n;) {
		const char *from = reinterpret_cast<char *>(m.window) + done;
		ssize_t w;
		{
			uaccess_kernel_buffer kbuf(from, n - done);
			w = m.filp->f_op->write(m.filp, from, n - done,
						nullptr);
		}
		if (w < 0)
			return static_cast<int>(w);
		if (!w)
			return -EIO;
		done += static_cast<u64>(w);
	}
	m.resume_size = n;
	return 0;
}

/* A trapped field: exactly its width at its offset, else -EINVAL. */
ssize_t v1_field_rw(struct vfio_device *device, vfio_mig_v1 &m,
		    char __user *buf, size_t count, u64 off, bool iswrite)
{
	size_t width;
	u64 val = 0;
	int ret = 0;

	switch (off) {
	case offsetof(struct vfio_device_migration_info, device_state):
	case offsetof(struct vfio_device_migration_info, reserved):
		width = sizeof(u32);
		break;
	case offsetof(struct vfio_device_migration_info, pending_bytes):
	case offsetof(struct vfio_device_migration_info, data_offset):
	case offsetof(struct vfio_device_migration_info, data_size):
		width = sizeof(u64);
		break;
	default:
		return -EINVAL;
	}
	if (count != width)
		return -EINVAL;
	if (iswrite && copy_from_user(&val, buf, width))
		return -EFAULT;

	switch (off) {
	case offsetof(struct vfio_device_migration_info, reserved):
		/* Reads 0, writes are ignored. */
		break;
	case offsetof(struct vfio_device_migration_info, device_state): {
		std::lock_guard<std::mutex> mig_guard(device->priv->mig_lock);
		int state;

		if (iswrite) {
			ret = v1_write_state(device, m, static_cast<u32>(val));
			break;
		}
		ret = get_state(device, &state);
		if (!ret)
			val = v1_state_of(state, m.armed);
		break;
	}
	case offsetof(struct vfio_device_migration_info, pending_bytes): {
		std::lock_guard<std::mutex> mig_guard(device->priv->mig_lock);

		if (iswrite)
			ret = -EINVAL;	/* read-only */
		else
			ret = v1_read_pending(device, m, &val);
		break;
	}
	case offsetof(struct vfio_device_migration_info, data_offset): {
		std::lock_guard<std::mutex> mig_guard(device->priv->mig_lock);

		if (iswrite) {
			ret = -EINVAL;	/* read-only */
			break;
		}
		ret = v1_read_data_offset(m);
		val = window_off;
		break;
	}
	case offsetof(struct vfio_device_migration_info, data_size): {
		std::lock_guard<std::mutex> mig_guard(device->priv->mig_lock);

		if (iswrite)
			ret = v1_write_data_size(m, val);
		else
			val = v1_read_data_size(m);
		break;
	}
	}
	if (ret)
		return ret;
	if (!iswrite && copy_to_user(buf, &val, width))
		return -EFAULT;
	return static_cast<ssize_t>(width);
}

} // namespace

int vfio_mig_v1_init(struct vfio_device *device)
{
	if (!device->mig_ops || WARN_ON(!device->priv) ||
	    device->priv->registered)
		return -EINVAL;

	std::shared_ptr<vfio_mig_v1> m;
	try {
		m = std::make_shared<vfio_mig_v1>();
	} catch (...) {
		return -ENOMEM;
	}
	std::string name = std::string(dev_name(device->dev)) + "-mig-v1";
	m->memfd.reset(memfd_create(name.c_str(), MFD_CLOEXEC));
	if (!m->memfd.is_valid() || ftruncate(m->memfd.get(), window_size))
		return -errno;
	void *map = mmap(nullptr, window_size, PROT_READ | PROT_WRITE,
			 MAP_SHARED, m->memfd.get(), 0);
	if (map == MAP_FAILED)
		return -errno;
	m->window = static_cast<u8 *>(map);
	device->priv->mig_v1 = std::move(m);
	return 0;
}

void vfio_mig_v1_abandon(struct vfio_device *device)
{
	vfio_mig_v1 *m = device->priv->mig_v1.get();

	if (!m)
		return;
	drop_session(*m);
	m->armed = false;
}

ssize_t vfio_mig_v1_rw(struct vfio_device *device, char __user *buf,
		       size_t count, u64 off, bool iswrite)
{
	vfio_mig_v1 *m = device->priv->mig_v1.get();

	if (!m)
		return -EINVAL;
	if (off < window_off) {
		if (off >= sizeof(struct vfio_device_migration_info))
			return -EINVAL;	/* between the fields and the window */
		return v1_field_rw(device, *m, buf, count, off, iswrite);
	}

	/*
	 * The window is memory at any width, whatever the state, as it is
	 * through an mmap; the KABI gives it meaning only in a session.
	 */
	if (off >= window_off + window_size)
		return -EINVAL;
	count = std::min<u64>(count, window_off + window_size - off);
	u8 *p = m->window + (off - window_off);
	if (iswrite ? copy_from_user(p, buf, count) : copy_to_user(buf, p, count))
		return -EFAULT;
	return static_cast<ssize_t>(count);
}

int vfio_mig_v1_mmap(struct vfio_device *device, struct vm_area_struct *vma,
		     u64 off)
{
	vfio_mig_v1 *m = device->priv->mig_v1.get();
	u64 len = vma->vm_end - vma->vm_start;

	if (!m || !(vma->vm_flags & VM_SHARED) || !len)
		return -EINVAL;
	/* Only the data window: the fields are trapped. */
	if (off < window_off || (off & ~PAGE_MASK) ||
	    off - window_off > window_size ||
	    len > window_size - (off - window_off))
		return -EINVAL;
	vfio_vma_set_backing(vma, m->memfd.get(),
			     static_cast<off_t>(off - window_off));
	return 0;
}

int vfio_mig_v1_add_capability(struct vfio_device *device,
			       struct vfio_info_cap *caps)
{
	struct vfio_info_cap_header *hdr;
	size_t size = sizeof(struct vfio_region_info_cap_sparse_mmap) +
		      sizeof(struct vfio_region_sparse_mmap_area);

	if (!device->priv->mig_v1)
		return -EINVAL;
	hdr = vfio_info_cap_add(caps, size, VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1);
	if (IS_ERR(hdr))
		return static_cast<int>(PTR_ERR(hdr));
	auto *sparse = container_of(hdr, struct vfio_region_info_cap_sparse_mmap,
				    header);
	sparse->nr_areas = 1;
	sparse->areas[0].offset = window_off;
	sparse->areas[0].size = window_size;

	if (device->migration_flags & VFIO_MIGRATION_P2P) {
		hdr = vfio_info_cap_add(caps, sizeof(*hdr),
					VFIO_REGION_INFO_CAP_MIG_NDMA, 1);
		if (IS_ERR(hdr))
			return static_cast<int>(PTR_ERR(hdr));
	}
	return 0;
}
