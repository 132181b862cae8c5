// SPDX-License-Identifier: GPL-2.0-only
/*
 * testdev's migration data: the BAR2 pages written since pre-copy began
 * (through region writes; an mmap is not seen), the saving file that
 * produces the stream record by record as userspace reads, and the
 * resuming file that buffers the stream, refusing it at the write that
 * completes a bad header, and the loader that checks all of it before
 * applying any (testdev.cc's top comment has the format).
 */
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <uvfio/linux/uaccess.h>

#include "testdev.h"

namespace {

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

} // namespace

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

namespace {

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

/* The device's own CONFIG: what a stream's header must say. */
td_config td_device_config(testdev_device *tdev)
{
	td_config c = {};
	mig_rec_ident_init(&c.ident, &tdev->core_device);
	c.mem_size = tdev->mem_size;
	c.state_size = tdev->state.size();
	c.bar0_size = tdev->core_device.bars[0].size;
	c.msix = tdev->msix;
	return c;
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
			td_config c = td_device_config(tdev);
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

/*
 * The stream header, record 0 (CONFIG), in the first n bytes of p: 1 when
 * it is whole and this device's, 0 when more bytes are needed, or
 * MIG_REC_BAD_STREAM with why.
 */
int td_check_header(testdev_device *tdev, const u8 *p, size_t n,
		    std::string *why)
{
	char msg[300];
	td_rec r;

	if (n < sizeof(r))
		return 0;
	std::memcpy(&r, p, sizeof(r));
	if (r.magic != TD_MAGIC)
		std::snprintf(msg, sizeof(msg), "bad magic 0x%08x at offset 0",
			      r.magic);
	else if (r.version != TD_VERSION)
		std::snprintf(msg, sizeof(msg), "unsupported stream version %u "
			      "(this driver reads %u%s)", r.version, TD_VERSION,
			      r.version < TD_VERSION ? "; older streams carry "
			      "no device identity" : "");
	else if (r.seq)
		std::snprintf(msg, sizeof(msg), "record %u found where record "
			      "0 belongs", r.seq);
	else if (r.type != TD_REC_CONFIG)
		std::snprintf(msg, sizeof(msg), "record 0: the configuration "
			      "record must come first, once");
	else if (r.length != sizeof(td_config))
		std::snprintf(msg, sizeof(msg), "configuration record of %u "
			      "bytes", r.length);
	else if (n < sizeof(r) + r.length)
		return 0;
	else if (mig_rec_hash(r, p + sizeof(r)) != r.hash)
		std::snprintf(msg, sizeof(msg), "record 0 (type %u) fails its "
			      "checksum", r.type);
	else {
		td_config c, mine = td_device_config(tdev);
		std::memcpy(&c, p + sizeof(r), sizeof(c));
		if (mig_rec_ident_match(&c.ident, &mine.ident, msg,
					sizeof(msg))) {
			if (!std::memcmp(&c, &mine, sizeof(c)))
				return 1;
			std::snprintf(msg, sizeof(msg), "device configuration "
				      "mismatch: the stream has mem=%llu "
				      "state=%llu bar0=%llu msix=%u, this "
				      "device mem=%llu state=%llu bar0=%llu "
				      "msix=%u",
				      (unsigned long long)c.mem_size,
				      (unsigned long long)c.state_size,
				      (unsigned long long)c.bar0_size, c.msix,
				      (unsigned long long)mine.mem_size,
				      (unsigned long long)mine.state_size,
				      (unsigned long long)mine.bar0_size,
				      mine.msix);
		}
	}
	*why = msg;
	return MIG_REC_BAD_STREAM;
}

ssize_t td_resume_write(struct file *filp, const char __user *buf, size_t len,
			loff_t *pos)
{
	auto *f = static_cast<td_migf *>(file_to_migf(filp));

	if (pos)
		return -ESPIPE;
	mutex_guard g(&f->lock);
	if (f->disabled) {
		dev_err(f->tdev->core_device.vdev.dev,
			"write on a disabled migration file");
		return -ENODEV;
	}
	if (f->error)
		return f->error;
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
	/*
	 * The header as soon as it is in: a foreign or damaged stream, or
	 * endless input, stops at the write that completes it and takes
	 * nothing more.
	 */
	if (!f->header_ok) {
		int ret = td_check_header(f->tdev, f->in->data(), f->in->size(),
					  &f->error_msg);
		if (ret < 0) {
			f->in->resize(old);
			f->error = ret;
			dev_err(f->tdev->core_device.vdev.dev,
				"resume: stream header refused: %s",
				f->error_msg.c_str());
			return ret;
		}
		f->header_ok = ret > 0;
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

	if (f->error)
		td_bad("stream header refused: %s", f->error_msg.c_str());
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
			/* Record 0, as checked above: the header. */
			std::string why;
			if (td_check_header(tdev, p, n, &why) <= 0)
				td_bad("%s", why.c_str());
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
				      td_records(tdev->mem_size) * sizeof(td_rec) +
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

} // namespace

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
