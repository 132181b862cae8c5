// SPDX-License-Identifier: GPL-2.0-only
/*
 * testdev - a variant driver for exercising the core, in the spirit of the
 * kernel's samples/vfio-mdev. It embeds pci_core and can advertise migration
 * (any legal combination of flags) and DMA logging, so that every core path
 * has a user before the real drivers exist.
 *
 * Spec: "testdev,bdf=DDDD:BB:DD.F[,mem=SIZE][,msix=N][,mig=FLAGS][,log=0|1]
 *        [,state=SIZE][,seed=N]"
 *   mem    BAR2 (device memory) size, power of two, default 1M
 *   msix   MSI-X vectors, default 4
 *   mig    migration flags: none, or stop_copy joined by | with p2p and/or
 *          pre_copy; default none (no mig_ops)
 *   log    1 to offer vfio_log_ops, default 0
 *   state  bytes of device-internal state (in no BAR) that migrate, default
 *          64K; any size, so tests can pick awkward ones
 *   seed   seeds the internal state's content; default derived from the BDF
 *
 * Migration state is BAR0 (registers), BAR2 (device memory) and the internal
 * state. The stream is a sequence of records, each a 32-byte header and a
 * payload (see struct td_rec): CONFIG first (the device configuration the
 * destination must match), then MEM records for BAR2, BAR0, STATE records and
 * END. Every record (the in-tree drivers' struct mig_rec) carries a
 * sequence number and an XXH3 hash over its header and payload. The resume
 * side buffers the stream and checks all of it at RESUMING -> STOP before
 * it changes any device state: wrong magic or version, a configuration
 * mismatch, a gap, a bad hash, truncation or trailing bytes fail the arc
 * with EINVAL and a log line naming the problem.
 *
 * PRE_COPY: the initial data is CONFIG and a full BAR2 image; pages of BAR2
 * written through the region write path after that are tracked and sent
 * again as dirty data. Writes through an mmap of BAR2 are not seen, so once
 * BAR2 has been mapped writable, STOP_COPY sends all of it again (as
 * simnic does). When nothing is left, read returns -ENOMSG until more pages
 * are dirtied or the device enters STOP_COPY, which sends what is still
 * dirty, BAR0, the internal state and END.
 *
 * Locking as in the kernel's mlx5 driver: state_mutex (the FSM) is taken
 * before a migration file's lock; reset_done defers to the state_mutex
 * holder when it cannot take the lock (the deferred-reset pattern).
 */
#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>


#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio_pci_core.h>

#include "mig_rec.h"
#include "migf.h"

namespace {

constexpr u32 TD_MAGIC = 0x44545655;	/* "UVTD" */
constexpr u16 TD_VERSION = 1;
constexpr u64 TD_CHUNK = 1 << 20;	/* payload per full-image record */
constexpr u64 TD_PAGE = 4096;		/* dirty-tracking granule */

enum td_rec_type : u16 {
	TD_REC_CONFIG = 1,
	TD_REC_MEM = 2,
	TD_REC_BAR0 = 3,
	TD_REC_STATE = 4,
	TD_REC_END = 5,
};

/* Records are the in-tree drivers' shared format (mig_rec.h). */
using td_rec = mig_rec;

struct td_config {
	u64 mem_size;
	u64 state_size;
	u64 bar0_size;
};

struct testdev_device;

/*
 * Appending to the resume buffer must not zero what it is about to
 * overwrite: an allocator whose value-initialization is a no-op.
 */
template <typename T> struct uninit_allocator : std::allocator<T> {
	template <typename U> struct rebind {
		using other = uninit_allocator<U>;
	};
	uninit_allocator() = default;
	template <typename U> uninit_allocator(const uninit_allocator<U> &) {}
	template <typename U> void construct(U *) noexcept {}
	template <typename U, typename... A> void construct(U *p, A &&...a)
	{
		::new (static_cast<void *>(p)) U(std::forward<A>(a)...);
	}
};
using staging_buffer = std::vector<u8, uninit_allocator<u8>>;

/* One migration file: saving (read) or resuming (write). */
struct td_migf : migf {
	testdev_device *tdev = nullptr;

	/* Saving; initial_size is CONFIG and the full image. */
	enum { CONFIG, MEM_FULL, DIRTY, BAR0, STATE, END, DONE } phase = CONFIG;
	u64 mem_pos = 0;
	u64 state_pos = 0;

	/* Resuming: the stream so far, in the device's staging buffer. */
	staging_buffer *in = nullptr;
	u64 in_limit = 0;
};

struct testdev_device {
	struct vfio_pci_core_device core_device;
	struct migf_dev mig;	/* FSM state, files, deferred reset */
	/*
	 * Where an incoming stream waits for RESUMING -> STOP, as a device
	 * buffers it in its own memory. Kept while the device is open so a
	 * second migration does not allocate it again.
	 */
	staging_buffer staging;

	u64 mem_size = 0;
	u16 errstat = 0;	/* status error bits latched at each open */
	u32 msix = 0;
	std::vector<u8> state;	/* device-internal state */

	/* BAR2 pages written since pre-copy started. */
	std::mutex dirty_lock;
	bool logging = false;	/* a DMA logging session is open */
	bool tracking = false;
	/* BAR2 was mapped writable: writes the tracker cannot see. */
	bool mapped = false;
	/*
	 * BAR2's region writes against the save path's copies of it: a page
	 * is copied whole, before or after a write, never torn by one.
	 */
	std::mutex mem_lock;
	std::vector<u64> dirty;
	u64 dirty_count = 0;
	u64 dirty_cursor = 0;
};

testdev_device *to_testdev(struct vfio_device *vdev)
{
	return container_of(vdev, struct testdev_device, core_device.vdev);
}

testdev_device *mig_to_testdev(struct migf_dev *md)
{
	return container_of(md, struct testdev_device, mig);
}

u64 records(u64 bytes)
{
	return (bytes + TD_CHUNK - 1) / TD_CHUNK;
}

/* Bytes of a complete stream from STOP -> STOP_COPY: MIG_DATA_SIZE. */
u64 td_stream_size(const testdev_device *tdev)
{
	u64 hdr = sizeof(td_rec);
	return hdr + sizeof(td_config) + records(tdev->mem_size) * hdr +
	       tdev->mem_size + hdr + tdev->core_device.bars[0].size +
	       records(tdev->state.size()) * hdr + tdev->state.size() + hdr +
	       sizeof(u64);
}

/* -------- dirty tracking of BAR2 writes -------- */

int td_track_start(struct migf_dev *md)
{
	testdev_device *tdev = mig_to_testdev(md);
	std::lock_guard<std::mutex> l(tdev->dirty_lock);
	std::fill(tdev->dirty.begin(), tdev->dirty.end(), 0);
	tdev->dirty_count = 0;
	tdev->dirty_cursor = 0;
	tdev->tracking = true;
	return 0;
}

void td_track_stop(testdev_device *tdev)
{
	std::lock_guard<std::mutex> l(tdev->dirty_lock);
	tdev->tracking = false;
}

void td_mark_dirty(testdev_device *tdev, u64 off, u64 len)
{
	std::lock_guard<std::mutex> l(tdev->dirty_lock);
	if (!tdev->tracking || !len)
		return;
	for (u64 pg = off / TD_PAGE; pg <= (off + len - 1) / TD_PAGE; pg++) {
		u64 &w = tdev->dirty[pg / 64];
		u64 bit = 1ULL << (pg % 64);
		if (!(w & bit)) {
			w |= bit;
			tdev->dirty_count++;
		}
	}
}

bool td_was_mapped(testdev_device *tdev)
{
	std::lock_guard<std::mutex> l(tdev->dirty_lock);
	return tdev->mapped;
}

/* Take a run of up to TD_CHUNK dirty bytes; false when none is dirty. */
bool td_take_dirty(testdev_device *tdev, u64 *off, u64 *len)
{
	std::lock_guard<std::mutex> l(tdev->dirty_lock);
	u64 pages = tdev->mem_size / TD_PAGE;
	if (!tdev->dirty_count)
		return false;
	for (u64 i = 0; i < pages; i++) {
		u64 pg = (tdev->dirty_cursor + i) % pages;
		if (!(tdev->dirty[pg / 64] & (1ULL << (pg % 64))))
			continue;
		u64 n = 0;
		while (pg + n < pages && n < TD_CHUNK / TD_PAGE &&
		       (tdev->dirty[(pg + n) / 64] & (1ULL << ((pg + n) % 64)))) {
			tdev->dirty[(pg + n) / 64] &= ~(1ULL << ((pg + n) % 64));
			n++;
		}
		tdev->dirty_count -= n;
		tdev->dirty_cursor = pg + n;
		*off = pg * TD_PAGE;
		*len = n * TD_PAGE;
		return true;
	}
	return false;
}

u64 td_dirty_count(testdev_device *tdev)
{
	std::lock_guard<std::mutex> l(tdev->dirty_lock);
	return tdev->dirty_count;
}

/* -------- the saving file -------- */

void td_emit(td_migf *f, u16 type, u64 offset, const void *payload, u32 len)
{
	mig_rec_emit(&f->w, type, offset, payload, len);
}

/*
 * A MEM record. Once the device is stopped (final) its memory holds
 * still, so the reader gets the payload straight from BAR2: one copy
 * fewer on the stop-copy path, where time is downtime.
 */
void td_emit_mem(td_migf *f, u64 off, u64 len)
{
	const u8 *p = f->tdev->core_device.bars[2].map + off;
	if (f->final) {
		mig_rec_emit_ref(&f->w, TD_REC_MEM, off, p, static_cast<u32>(len));
		return;
	}
	std::lock_guard<std::mutex> l(f->tdev->mem_lock);
	td_emit(f, TD_REC_MEM, off, p, static_cast<u32>(len));
}

/* Put the next record in f->w; false when there is none now. */
bool td_produce(struct migf *mf)
{
	auto *f = static_cast<td_migf *>(mf);
	testdev_device *tdev = f->tdev;
	struct vfio_pci_core_device *core = &tdev->core_device;
	u64 off, len;

	for (;;) {
		switch (f->phase) {
		case td_migf::CONFIG: {
			td_config c = {tdev->mem_size, tdev->state.size(),
				       core->bars[0].size};
			td_emit(f, TD_REC_CONFIG, 0, &c, sizeof(c));
			f->phase = td_migf::MEM_FULL;
			return true;
		}
		case td_migf::MEM_FULL:
			if (f->mem_pos < tdev->mem_size) {
				len = std::min(TD_CHUNK, tdev->mem_size - f->mem_pos);
				td_emit_mem(f, f->mem_pos, len);
				f->mem_pos += len;
				return true;
			}
			f->phase = td_migf::DIRTY;
			continue;
		case td_migf::DIRTY:
			if (td_take_dirty(tdev, &off, &len)) {
				td_emit_mem(f, off, len);
				return true;
			}
			if (!f->final)
				return false;
			f->phase = td_migf::BAR0;
			continue;
		case td_migf::BAR0:
			td_emit(f, TD_REC_BAR0, 0, core->bars[0].map,
				static_cast<u32>(core->bars[0].size));
			f->phase = td_migf::STATE;
			return true;
		case td_migf::STATE:
			if (f->state_pos < tdev->state.size()) {
				len = std::min<u64>(TD_CHUNK,
						    tdev->state.size() - f->state_pos);
				td_emit(f, TD_REC_STATE, f->state_pos,
					tdev->state.data() + f->state_pos,
					static_cast<u32>(len));
				f->state_pos += len;
				return true;
			}
			f->phase = td_migf::END;
			continue;
		case td_migf::END: {
			u64 nrec = f->w.seq;
			td_emit(f, TD_REC_END, 0, &nrec, sizeof(nrec));
			f->phase = td_migf::DONE;
			return true;
		}
		case td_migf::DONE:
			return false;
		}
	}
}

/* Pages not taken yet: one record header per page at most. */
void td_precopy_info(struct migf *f, struct vfio_precopy_info *info)
{
	testdev_device *tdev = mig_to_testdev(f->md);
	mig_rec_precopy_info(&f->w, f->initial_size,
			     td_dirty_count(tdev) * (TD_PAGE + sizeof(td_rec)),
			     info);
}

/* -------- the resuming file -------- */

ssize_t td_resume_write(struct file *filp, const char __user *buf, size_t len,
			loff_t *pos)
{
	auto *f = static_cast<td_migf *>(filp->private_data);

	if (pos)
		return -ESPIPE;
	mutex_guard g(&f->lock);
	if (f->disabled) {
		dev_err(f->tdev->core_device.vdev.dev,
			"write on a disabled migration file");
		return -ENODEV;
	}
	if (len > f->in_limit - f->in->size())
		return -EFBIG;
	size_t old = f->in->size();
	try {
		f->in->resize(old + len);
	} catch (...) {
		return -ENOMEM;
	}
	if (copy_from_user(f->in->data() + old, buf, len)) {
		f->in->resize(old);
		return -EFAULT;
	}
	return static_cast<ssize_t>(len);
}

const struct file_operations td_resume_fops = {
	.read = nullptr,
	.write = td_resume_write,
	.unlocked_ioctl = nullptr,
	.mmap = nullptr,
	.release = migf_release,
};

/*
 * Check the whole buffered stream, then apply it: the device never holds a
 * half-loaded state. 0 or -EINVAL with one log line saying why.
 */
int td_load(struct migf *mf)
{
	auto *f = static_cast<td_migf *>(mf);
	testdev_device *tdev = f->tdev;
	struct vfio_pci_core_device *core = &tdev->core_device;
	struct device *dev = core->vdev.dev;
	const u8 *p = f->in->data();
	size_t n = f->in->size(), off = 0;
	u32 seq = 0;
	bool end = false, bar0 = false;
	u64 state_bytes = 0;
	std::vector<bool> covered(tdev->mem_size / TD_PAGE);
	u64 pages_covered = 0;

#define td_bad(fmt, ...)                                                   	do {                                                               		dev_err(dev, "resume: " fmt, ##__VA_ARGS__);               		return -EINVAL;                                            	} while (0)

	if (!n)
		td_bad("the stream is empty");
	while (off < n) {
		td_rec r;
		if (end)
			td_bad("%zu trailing bytes after the end record",
			       n - off);
		if (n - off < sizeof(r))
			td_bad("truncated: %zu bytes of a record header at "
			       "offset %zu", n - off, off);
		std::memcpy(&r, p + off, sizeof(r));
		if (r.magic != TD_MAGIC)
			td_bad("bad magic 0x%08x at offset %zu", r.magic, off);
		if (r.version != TD_VERSION)
			td_bad("unsupported stream version %u (this driver "
			       "reads %u)", r.version, TD_VERSION);
		if (r.seq != seq)
			td_bad("record %u found where record %u belongs",
			       r.seq, seq);
		if (r.length > n - off - sizeof(r))
			td_bad("truncated: record %u needs %u payload bytes, "
			       "%zu are left", seq, r.length,
			       n - off - sizeof(r));
		const u8 *payload = p + off + sizeof(r);
		if (mig_rec_hash(r, payload) != r.hash)
			td_bad("record %u (type %u) fails its checksum", seq,
			       r.type);
		if ((seq == 0) != (r.type == TD_REC_CONFIG))
			td_bad("record %u: the configuration record must come "
			       "first, once", seq);

		switch (r.type) {
		case TD_REC_CONFIG: {
			td_config c;
			if (r.length != sizeof(c))
				td_bad("configuration record of %u bytes",
				       r.length);
			std::memcpy(&c, payload, sizeof(c));
			if (c.mem_size != tdev->mem_size ||
			    c.state_size != tdev->state.size() ||
			    c.bar0_size != core->bars[0].size)
				td_bad("device configuration mismatch: the "
				       "stream has mem=%llu state=%llu, this "
				       "device mem=%llu state=%llu",
				       (unsigned long long)c.mem_size,
				       (unsigned long long)c.state_size,
				       (unsigned long long)tdev->mem_size,
				       (unsigned long long)tdev->state.size());
			break;
		}
		case TD_REC_MEM:
			if (r.offset % TD_PAGE || r.length % TD_PAGE ||
			    r.offset > tdev->mem_size ||
			    r.length > tdev->mem_size - r.offset)
				td_bad("record %u: memory range 0x%llx+0x%x "
				       "outside device memory", seq,
				       (unsigned long long)r.offset, r.length);
			for (u64 pg = r.offset / TD_PAGE;
			     pg < (r.offset + r.length) / TD_PAGE; pg++)
				if (!covered[pg]) {
					covered[pg] = true;
					pages_covered++;
				}
			break;
		case TD_REC_BAR0:
			if (r.offset || r.length != core->bars[0].size)
				td_bad("record %u: BAR0 record of %u bytes",
				       seq, r.length);
			bar0 = true;
			break;
		case TD_REC_STATE:
			if (r.offset != state_bytes ||
			    r.length > tdev->state.size() - state_bytes)
				td_bad("record %u: internal state out of order",
				       seq);
			state_bytes += r.length;
			break;
		case TD_REC_END: {
			u64 nrec;
			if (r.length != sizeof(nrec))
				td_bad("end record of %u bytes", r.length);
			std::memcpy(&nrec, payload, sizeof(nrec));
			if (nrec != seq)
				td_bad("end record counts %llu records, the "
				       "stream has %u",
				       (unsigned long long)nrec, seq);
			end = true;
			break;
		}
		default:
			td_bad("record %u has unknown type %u", seq, r.type);
		}
		off += sizeof(r) + r.length;
		seq++;
	}
	if (!end)
		td_bad("truncated: no end record after %zu bytes", n);
	if (pages_covered != covered.size() || !bar0 ||
	    state_bytes != tdev->state.size())
		td_bad("incomplete: %llu of %zu memory pages, BAR0 %s, "
		       "%llu of %zu state bytes",
		       (unsigned long long)pages_covered, covered.size(),
		       bar0 ? "present" : "missing",
		       (unsigned long long)state_bytes, tdev->state.size());
#undef td_bad

	/* Valid: apply in order, later records over earlier ones. */
	for (off = 0; off < n;) {
		td_rec r;
		std::memcpy(&r, p + off, sizeof(r));
		const u8 *payload = p + off + sizeof(r);
		switch (r.type) {
		case TD_REC_MEM:
			std::memcpy(core->bars[2].map + r.offset, payload,
				    r.length);
			break;
		case TD_REC_BAR0:
			std::memcpy(core->bars[0].map, payload, r.length);
			break;
		case TD_REC_STATE:
			std::memcpy(tdev->state.data() + r.offset, payload,
				    r.length);
			break;
		default:
			break;
		}
		off += sizeof(r) + r.length;
	}
	return 0;
}

/* -------- the FSM -------- */

struct file *td_open_save(struct migf_dev *md, bool precopy)
{
	testdev_device *tdev = mig_to_testdev(md);
	auto *f = migf_alloc<td_migf>(&tdev->mig, "testdev_mig",
				      &migf_save_fops, true);
	if (!f)
		return static_cast<struct file *>(ERR_PTR(-ENOMEM));
	f->tdev = tdev;
	return migf_open_save(f, precopy,
			      sizeof(td_rec) + sizeof(td_config) +
				      records(tdev->mem_size) * sizeof(td_rec) +
				      tdev->mem_size);
}

struct file *td_open_resume(struct migf_dev *md)
{
	testdev_device *tdev = mig_to_testdev(md);
	auto *f = migf_alloc<td_migf>(&tdev->mig, "testdev_mig",
				      &td_resume_fops, false);
	if (!f)
		return static_cast<struct file *>(ERR_PTR(-ENOMEM));
	f->tdev = tdev;
	/* Room for pre-copy's resent pages, bounded all the same. */
	u64 size = td_stream_size(tdev);
	f->in_limit = 8 * size + (64 << 20);
	f->in = &tdev->staging;
	try {
		tdev->staging.clear();
		tdev->staging.reserve(size);
	} catch (...) {
		fput(f->filp);
		return static_cast<struct file *>(ERR_PTR(-ENOMEM));
	}
	return migf_open_resume(f);
}

struct file *td_step(struct migf_dev *md, enum vfio_device_mig_state next)
{
	const int cur = md->mig_state, nxt = next;
	constexpr int STOP = VFIO_DEVICE_STATE_STOP;
	constexpr int RUNNING = VFIO_DEVICE_STATE_RUNNING;
	constexpr int RUNNING_P2P = VFIO_DEVICE_STATE_RUNNING_P2P;
	constexpr int PRE_COPY = VFIO_DEVICE_STATE_PRE_COPY;
	constexpr int PRE_COPY_P2P = VFIO_DEVICE_STATE_PRE_COPY_P2P;
	struct file *res;

	if (migf_step_data(md, next, &res))
		return res;
	/* Stopping and starting: testdev starts no DMA, nothing to quiesce. */
	if ((cur == RUNNING && (nxt == RUNNING_P2P || nxt == STOP)) ||
	    (cur == STOP && nxt == RUNNING) ||
	    (cur == RUNNING_P2P && (nxt == RUNNING || nxt == STOP)) ||
	    (cur == STOP && nxt == RUNNING_P2P) ||
	    (cur == PRE_COPY && nxt == PRE_COPY_P2P) ||
	    (cur == PRE_COPY_P2P && nxt == PRE_COPY))
		return nullptr;
	WARN_ON(true);
	return static_cast<struct file *>(ERR_PTR(-EINVAL));
}

/* Writes through an mmap were not tracked: send all of BAR2 again. */
void td_track_flush(struct migf_dev *md)
{
	testdev_device *tdev = mig_to_testdev(md);
	if (td_was_mapped(tdev))
		td_mark_dirty(tdev, 0, tdev->mem_size);
}

/* The files are gone: so is tracking, and a stream being resumed. */
void td_files_disabled(struct migf_dev *md)
{
	testdev_device *tdev = mig_to_testdev(md);
	td_track_stop(tdev);
	tdev->staging.clear();
}

const struct migf_dev_ops td_migf_ops = {
	.magic = TD_MAGIC,
	.version = TD_VERSION,
	.save_fops = &migf_save_fops,
	.step = td_step,
	.open_save = td_open_save,
	.open_resume = td_open_resume,
	.load = td_load,
	.produce = td_produce,
	.precopy_info = td_precopy_info,
	.track_start = td_track_start,
	.track_flush = td_track_flush,
	.disabled = td_files_disabled,
	.reset = nullptr,
};

struct file *testdev_set_state(struct vfio_device *vdev,
			       enum vfio_device_mig_state new_state)
{
	return migf_set_state(&to_testdev(vdev)->mig, new_state);
}

int testdev_get_state(struct vfio_device *vdev,
		      enum vfio_device_mig_state *curr_state)
{
	return migf_get_state(&to_testdev(vdev)->mig, curr_state);
}

int testdev_get_data_size(struct vfio_device *vdev,
			  unsigned long *stop_copy_length)
{
	*stop_copy_length = td_stream_size(to_testdev(vdev));
	return 0;
}

/* Round-trip hook (uvfio_set_state_digest): what the stream carries. */
int testdev_state_digest(struct vfio_device *vdev, u64 *out)
{
	testdev_device *tdev = to_testdev(vdev);
	struct vfio_pci_core_device *core = &tdev->core_device;

	u64 h = XXH3_64bits(tdev->state.data(), tdev->state.size());
	h = XXH3_64bits_withSeed(core->bars[0].map, core->bars[0].size, h);
	*out = XXH3_64bits_withSeed(core->bars[2].map, tdev->mem_size, h);
	return 0;
}

const struct vfio_migration_ops testdev_mig_ops = {
	.migration_set_state = testdev_set_state,
	.migration_get_state = testdev_get_state,
	.migration_get_data_size = testdev_get_data_size,
};

/*
 * DMA logging: testdev performs no DMA, so there is never a dirty page to
 * report; what it keeps is the session rule the real drivers have (one
 * START at a time, REPORT only inside a session).
 */
int testdev_log_start(struct vfio_device *vdev, struct rb_root_cached *,
		      u32, u64 *)
{
	testdev_device *tdev = to_testdev(vdev);
	std::lock_guard<std::mutex> l(tdev->dirty_lock);
	if (tdev->logging)
		return -EINVAL;
	tdev->logging = true;
	return 0;
}

int testdev_log_stop(struct vfio_device *vdev)
{
	testdev_device *tdev = to_testdev(vdev);
	std::lock_guard<std::mutex> l(tdev->dirty_lock);
	tdev->logging = false;
	return 0;
}

int testdev_log_read_and_clear(struct vfio_device *vdev, unsigned long,
			       unsigned long, struct iova_bitmap *)
{
	testdev_device *tdev = to_testdev(vdev);
	std::lock_guard<std::mutex> l(tdev->dirty_lock);
	return tdev->logging ? 0 : -EINVAL;
}

const struct vfio_log_ops testdev_log_ops = {
	.log_start = testdev_log_start,
	.log_stop = testdev_log_stop,
	.log_read_and_clear = testdev_log_read_and_clear,
};

/* -------- device ops -------- */

int testdev_init_dev(struct vfio_device *vdev)
{
	testdev_device *tdev = to_testdev(vdev);
	int ret = vfio_pci_core_init_dev(vdev);
	if (ret)
		return ret;
	migf_dev_init(&tdev->mig, vdev, &td_migf_ops);
	return 0;
}

int testdev_open_device(struct vfio_device *vdev)
{
	testdev_device *tdev = to_testdev(vdev);
	int ret = vfio_pci_core_enable(&tdev->core_device);
	if (ret)
		return ret;
	/*
	 * errstat: Status error bits the function latches before the user
	 * sees it, after the reset at enable (an FLR clears them again).
	 */
	{
		mutex_guard g(&tdev->core_device.igate);
		sim_pci_config_set_status_errors(&tdev->core_device.config,
						 tdev->errstat);
	}
	mutex_lock(&tdev->mig.state_mutex);
	migf_reset(&tdev->mig);
	migf_state_mutex_unlock(&tdev->mig);
	vfio_pci_core_finish_enable(&tdev->core_device);
	return 0;
}

void testdev_close_device(struct vfio_device *vdev)
{
	testdev_device *tdev = to_testdev(vdev);

	mutex_lock(&tdev->mig.state_mutex);
	migf_disable_fds(&tdev->mig);
	staging_buffer().swap(tdev->staging);
	migf_state_mutex_unlock(&tdev->mig);
	testdev_log_stop(vdev);
	vfio_pci_core_close_device(vdev);
}

/* Region writes to BAR2 dirty pages while pre-copy tracks them. */
ssize_t testdev_write(struct vfio_device *vdev, const char __user *buf,
		      size_t count, loff_t *ppos)
{
	testdev_device *tdev = to_testdev(vdev);
	u64 pos = static_cast<u64>(*ppos);

	if (VFIO_PCI_OFFSET_TO_INDEX(pos) != VFIO_PCI_BAR2_REGION_INDEX)
		return vfio_pci_core_write(vdev, buf, count, ppos);
	std::lock_guard<std::mutex> l(tdev->mem_lock);
	ssize_t ret = vfio_pci_core_write(vdev, buf, count, ppos);
	/* After the write: a page sent before it lands is sent again. */
	if (ret > 0)
		td_mark_dirty(tdev, pos & VFIO_PCI_OFFSET_MASK,
			      static_cast<u64>(ret));
	return ret;
}

/*
 * A function reset returns the FSM to RUNNING and disables the migration
 * files. If state_mutex is busy, its holder does it on unlock.
 */
void testdev_pci_aer_reset_done(struct pci_dev *pdev)
{
	testdev_device *tdev =
		static_cast<testdev_device *>(pci_get_drvdata(pdev));
	migf_reset_done(&tdev->mig);
}

const struct pci_error_handlers testdev_err_handlers = {
	.reset_done = testdev_pci_aer_reset_done,
	.error_detected = vfio_pci_core_aer_err_detected,
};

/* BAR2 mapped writable: from now on its writes escape the tracker. */
int testdev_mmap(struct vfio_device *vdev, struct vm_area_struct *vma)
{
	int ret = vfio_pci_core_mmap(vdev, vma);
	if (!ret && (vma->vm_pgoff >> (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT)) ==
			    VFIO_PCI_BAR2_REGION_INDEX &&
	    (vma->vm_flags & VM_WRITE)) {
		testdev_device *tdev = to_testdev(vdev);
		std::lock_guard<std::mutex> l(tdev->dirty_lock);
		tdev->mapped = true;
	}
	return ret;
}

const struct vfio_device_ops testdev_ops = {
	.name = "testdev-vfio-pci",
	.init = testdev_init_dev,
	.release = vfio_pci_core_release_dev,
	.open_device = testdev_open_device,
	.close_device = testdev_close_device,
	.read = vfio_pci_core_read,
	.write = testdev_write,
	.ioctl = vfio_pci_core_ioctl,
	.mmap = testdev_mmap,
	.request = vfio_pci_core_request,
	.match = nullptr,
	.dma_unmap = nullptr,
	.device_feature = vfio_pci_core_ioctl_feature,
	.get_region_info_caps = vfio_pci_core_get_region_info_caps,
};

/* -------- probe / remove -------- */

const char *const testdev_keys[] = {"mem",   "msix", "mig",     "log",
				    "state", "seed", "errstat", nullptr};
const char *const mig_names[] = {"none", "stop_copy", "p2p", "pre_copy",
				 nullptr};
const u32 mig_values[] = {0, VFIO_MIGRATION_STOP_COPY, VFIO_MIGRATION_P2P,
			  VFIO_MIGRATION_PRE_COPY};

int testdev_probe(struct pci_dev *pdev, const struct uvfio_spec *spec)
{
	u64 mem, msix, log, state, seed, errstat;
	u32 mig;
	int ret;
	const char *bdf = pdev->dev.name.c_str();

	if ((ret = uvfio_spec_get_size(spec, "mem", 1 << 20, PAGE_SIZE,
				       1ULL << 36, &mem)) ||
	    (ret = uvfio_spec_get_u64(spec, "msix", 4, 0, 2048, &msix)) ||
	    (ret = uvfio_spec_get_u64(spec, "log", 0, 0, 1, &log)) ||
	    (ret = uvfio_spec_get_size(spec, "state", 64 << 10, 0, 1ULL << 30,
				       &state)) ||
	    (ret = uvfio_spec_get_u64(spec, "seed",
				      XXH3_64bits(bdf, strlen(bdf)), 0,
				      ~0ULL, &seed)) ||
	    (ret = uvfio_spec_get_u64(spec, "errstat", 0, 0, 0xffff,
				      &errstat)) ||
	    (ret = uvfio_spec_get_flags(spec, "mig", mig_names, mig_values, 0,
					&mig)))
		return ret;
	if (mem & (mem - 1)) {
		dev_err(&pdev->dev, "mem=%llu is not a power of two",
			(unsigned long long)mem);
		return -EINVAL;
	}
	if (mig && !(mig & VFIO_MIGRATION_STOP_COPY)) {
		dev_err(&pdev->dev, "mig= needs stop_copy");
		return -EINVAL;
	}

	testdev_device *tdev = vfio_alloc_device(testdev_device,
						 core_device.vdev, &pdev->dev,
						 &testdev_ops);
	if (IS_ERR(tdev))
		return static_cast<int>(PTR_ERR(tdev));

	struct vfio_pci_core_device *core = &tdev->core_device;
	tdev->mem_size = mem;
	tdev->errstat = static_cast<u16>(errstat);
	tdev->msix = static_cast<u32>(msix);
	try {
		tdev->state.resize(state);
		tdev->dirty.resize((mem / TD_PAGE + 63) / 64);
	} catch (...) {
		vfio_put_device(&tdev->core_device.vdev);
		return -ENOMEM;
	}
	/* splitmix64: distinct content per device, reproducible per seed. */
	for (u64 i = 0; i < state; i += 8) {
		u64 z = (seed += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		std::memcpy(tdev->state.data() + i, &z, std::min<u64>(8, state - i));
	}
	core->msix_count = static_cast<u32>(msix);
	core->bars[0].size = 4096;
	core->bars[2].size = mem;
	core->bars[2].mmap = true;
	core->bars[2].is_64 = true;	/* device memory: 64-bit, prefetchable */
	core->bars[2].prefetch = true;
	if (mig) {
		core->vdev.mig_ops = &testdev_mig_ops;
		core->vdev.migration_flags = mig;
		uvfio_set_state_digest(&core->vdev, testdev_state_digest);
	}
	if (log)
		core->vdev.log_ops = &testdev_log_ops;

	/* Before registration: reset_done may run from then on. */
	pci_set_drvdata(pdev, tdev);
	ret = vfio_pci_core_register_device(core);
	if (ret) {
		pci_set_drvdata(pdev, NULL);
		vfio_put_device(&core->vdev);
		return ret;
	}
	return 0;
}

void testdev_remove(struct pci_dev *pdev)
{
	auto *tdev = static_cast<testdev_device *>(pci_get_drvdata(pdev));

	vfio_pci_core_unregister_device(&tdev->core_device);
	vfio_put_device(&tdev->core_device.vdev);
}

const struct pci_driver testdev_driver = {
	.name = "testdev-vfio-pci",
	.spec_name = "testdev",
	.spec_keys = testdev_keys,
	.description = "test variant driver (configurable migration/logging)",
	.probe = testdev_probe,
	.remove = testdev_remove,
	.err_handler = &testdev_err_handlers,
};

} // namespace

module_pci_driver(testdev_driver)
