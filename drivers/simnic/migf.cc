// SPDX-License-Identifier: GPL-2.0-only
/*
 * simnic's migration files: the saving side produces records on demand as
 * userspace reads, the resuming side checks each record as it arrives and
 * applies device memory at once (the device is stopped in RESUMING), but
 * loads the device state only at RESUMING -> STOP, after the whole stream
 * proved good. A bad stream header (record 0, CONFIG: the identity and
 * configuration) fails the write that completes it; a problem further on
 * is kept and fails RESUMING -> STOP. The files' lifecycle around this
 * content (opening, reading, PRECOPY_INFO, disabling) is
 * drivers/common/migf.cc's.
 */
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include <uvfio/linux/uaccess.h>

#include "simnic.h"

namespace {

u64 records(u64 bytes)
{
	return (bytes + SN_MEM_REC_MAX - 1) / SN_MEM_REC_MAX;
}

/* CONFIG and a full image of device memory. */
u64 initial_size(const simnic_device *snic)
{
	return sizeof(mig_rec) + sizeof(sn_config) +
	       records(snic->sd.mem_size) * sizeof(mig_rec) +
	       snic->sd.mem_size;
}

/* STATE and END. */
u64 tail_size()
{
	return 2 * sizeof(mig_rec) + sizeof(struct simdev_state);
}

sn_config device_config(const simnic_device *snic)
{
	sn_config c = {};
	mig_rec_ident_init(&c.ident, &snic->core_device);
	c.mem_size = snic->sd.mem_size;
	c.msix = snic->sd.msix_count;
	c.page_size = SIMDEV_MEM_PAGE;
	c.state_len = sizeof(struct simdev_state);
	return c;
}

/*
 * A MEM record. Once the device is stopped (final) its memory holds still,
 * so the reader gets the payload straight from device memory: one copy
 * fewer on the stop-copy path, where time is downtime.
 */
void emit_mem(simnic_migf *f, u64 off, u64 len)
{
	struct simdev *sd = &f->snic->sd;
	if (f->final) {
		mig_rec_emit_ref(&f->w, SN_REC_MEM, off, sd->mem + off,
				 static_cast<u32>(len));
		return;
	}
	simdev_mem_read(sd, off,
			mig_rec_begin(&f->w, SN_REC_MEM, off,
				      static_cast<u32>(len)),
			len);
	mig_rec_seal(&f->w);
}

} // namespace

/* Produce the next record; false when there is nothing to send now. */
bool simnic_produce(struct migf *mf)
{
	auto *f = static_cast<simnic_migf *>(mf);
	simnic_device *snic = f->snic;
	struct simdev *sd = &snic->sd;
	u64 off, len;

	switch (f->phase) {
	case simnic_migf::CONFIG: {
		sn_config c = device_config(snic);
		std::memcpy(mig_rec_begin(&f->w, SN_REC_CONFIG, 0, sizeof(c)), &c,
			    sizeof(c));
		f->phase = simnic_migf::MEM_FULL;
		break;
	}
	case simnic_migf::MEM_FULL:
		len = std::min<u64>(SN_MEM_REC_MAX, sd->mem_size - f->mem_pos);
		emit_mem(f, f->mem_pos, len);
		f->mem_pos += len;
		if (f->mem_pos == sd->mem_size)
			f->phase = simnic_migf::DIRTY;
		return true;
	case simnic_migf::DIRTY:
		/*
		 * Take the pages first, read them after: a write that lands
		 * in between marks them again and they are sent again.
		 */
		if (f->precopy &&
		    simdev_mem_take_dirty(sd, SN_MEM_REC_MAX, &off, &len)) {
			emit_mem(f, off, len);
			return true;
		}
		if (!f->final)
			return false;
		f->phase = simnic_migf::STATE;
		[[fallthrough]];
	case simnic_migf::STATE: {
		struct simdev_state st;
		simdev_save_state(sd, &st);
		std::memcpy(mig_rec_begin(&f->w, SN_REC_STATE, 0, sizeof(st)), &st,
			    sizeof(st));
		f->phase = simnic_migf::END;
		break;
	}
	case simnic_migf::END:
		mig_rec_begin(&f->w, SN_REC_END, 0, 0);
		f->phase = simnic_migf::DONE;
		break;
	case simnic_migf::DONE:
		return false;
	}
	mig_rec_seal(&f->w);
	return true;
}

namespace {

/* Bytes the dirty pages would take, record headers included (bound). */
u64 dirty_estimate(struct simdev *sd)
{
	u64 bytes = simdev_mem_dirty_bytes(sd);
	return bytes + bytes / SIMDEV_MEM_PAGE * sizeof(mig_rec);
}

/* -------- resuming -------- */

/*
 * Keep the first problem. One in the stream header (before record 0 was
 * taken) refuses the file's writes from now on, and says why at once; any
 * other is reported at RESUMING -> STOP and the rest of the stream is
 * swallowed until then.
 */
void resume_fail(simnic_migf *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void resume_fail(simnic_migf *f, const char *fmt, ...)
{
	if (f->error)
		return;
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	std::vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	f->error = MIG_REC_BAD_STREAM;
	f->error_msg = msg;
	if (f->expect_seq == 0) {
		f->refused = true;
		dev_err(f->snic->core_device.vdev.dev,
			"resume: stream header refused: %s", msg);
	}
}

/* Check a record header; its payload length or -1. */
long check_header(simnic_migf *f, const mig_rec &r)
{
	if (r.magic != SN_MAGIC) {
		resume_fail(f, "bad magic %#x in record %u", r.magic,
			    f->expect_seq);
		return -1;
	}
	if (r.version != SN_VERSION) {
		resume_fail(f, "unsupported stream version %u (this driver "
			    "reads %u%s)", r.version, SN_VERSION,
			    r.version < SN_VERSION ? "; older streams carry no "
			    "device identity" : "");
		return -1;
	}
	if (r.seq != f->expect_seq) {
		resume_fail(f, "record %u out of sequence (expected %u)",
			    r.seq, f->expect_seq);
		return -1;
	}
	u32 want;
	switch (r.type) {
	case SN_REC_CONFIG:
		want = sizeof(sn_config);
		break;
	case SN_REC_STATE:
		want = sizeof(struct simdev_state);
		break;
	case SN_REC_END:
		want = 0;
		break;
	case SN_REC_MEM:
		if (r.length && r.length <= SN_MEM_REC_MAX)
			return r.length;
		[[fallthrough]];
	default:
		resume_fail(f, "record %u: bad type %u or length %u", r.seq,
			    r.type, r.length);
		return -1;
	}
	if (r.length != want) {
		resume_fail(f, "record %u: bad type %u or length %u", r.seq,
			    r.type, r.length);
		return -1;
	}
	return want;
}

/*
 * A record whose payload arrived and hashed right: apply it. A MEM
 * payload is in device memory already (the device is stopped in RESUMING;
 * a bad one leaves part of a stream there, which a reset clears).
 */
void apply_record(simnic_migf *f, const mig_rec &r, const u8 *payload)
{
	simnic_device *snic = f->snic;

	switch (r.type) {
	case SN_REC_CONFIG: {
		sn_config c, mine = device_config(snic);
		char why[200];
		std::memcpy(&c, payload, sizeof(c));
		if (!mig_rec_ident_match(&c.ident, &mine.ident, why,
					 sizeof(why)))
			resume_fail(f, "%s", why);
		else if (std::memcmp(&c, &mine, sizeof(c)))
			resume_fail(f, "device configuration mismatch: stream "
				    "mem %llu msix %u page %u state %u, this "
				    "device mem %llu msix %u page %u state %u",
				    (unsigned long long)c.mem_size, c.msix,
				    c.page_size, c.state_len,
				    (unsigned long long)mine.mem_size,
				    mine.msix, mine.page_size, mine.state_len);
		break;
	}
	case SN_REC_STATE:
		if (f->have_state) {
			resume_fail(f, "record %u: a second device state",
				    r.seq);
			break;
		}
		std::memcpy(&f->state, payload, sizeof(f->state));
		f->have_state = true;
		break;
	case SN_REC_END:
		f->ended = true;
		break;
	}
}

/* hdr is whole: check it and start its payload. false on a bad one. */
bool start_record(simnic_migf *f)
{
	const mig_rec &r = f->hdr;
	struct simdev *sd = &f->snic->sd;

	if (check_header(f, r) < 0)
		return false;
	if ((r.seq == 0) != (r.type == SN_REC_CONFIG)) {
		resume_fail(f, "record %u: the configuration record must come "
			    "first, once", r.seq);
		return false;
	}
	if (r.type == SN_REC_MEM &&
	    (r.offset % SIMDEV_MEM_PAGE || r.offset > sd->mem_size ||
	     r.length > sd->mem_size - r.offset)) {
		resume_fail(f, "record %u: device memory range %#llx+%u out "
			    "of bounds", r.seq, (unsigned long long)r.offset,
			    r.length);
		return false;
	}
	XXH3_64bits_reset_withSeed(f->hash,
				   XXH3_64bits(&r, offsetof(mig_rec, hash)));
	f->in_payload = true;
	f->pay_have = 0;
	return true;
}

/* The payload is whole: check its hash, apply, expect the next. */
void finish_record(simnic_migf *f)
{
	const mig_rec &r = f->hdr;

	f->in_payload = false;
	f->hdr_have = 0;
	if (XXH3_64bits_digest(f->hash) != r.hash) {
		resume_fail(f, "checksum mismatch in record %u", r.seq);
		return;
	}
	apply_record(f, r, f->small);
	f->expect_seq++;
}

/*
 * Where the next n payload bytes go: device memory for MEM (checked in
 * bounds by start_record), small for the rest (check_header bounds them).
 */
u8 *payload_dst(simnic_migf *f)
{
	if (f->hdr.type == SN_REC_MEM)
		return f->snic->sd.mem + f->hdr.offset + f->pay_have;
	return f->small + f->pay_have;
}

ssize_t simnic_resume_write(struct file *filp, const char __user *buf,
			    size_t len, loff_t *pos)
{
	auto *f = static_cast<simnic_migf *>(file_to_migf(filp));
	size_t done = 0;

	if (pos)
		return -ESPIPE;
	mutex_guard g(&f->lock);
	if (f->disabled)
		return -ENODEV;
	if (f->refused)
		return f->error;
	while (done < len && !f->error) {
		size_t n;
		if (!f->in_payload) {
			if (f->ended) {
				resume_fail(f, "trailing bytes after the end "
					    "record");
				break;
			}
			n = std::min(len - done, sizeof(mig_rec) - f->hdr_have);
			u8 *h = reinterpret_cast<u8 *>(&f->hdr);
			if (copy_from_user(h + f->hdr_have, buf + done, n))
				return done ? static_cast<ssize_t>(done) : -EFAULT;
			f->hdr_have += n;
			done += n;
			if (f->hdr_have == sizeof(mig_rec) && start_record(f) &&
			    !f->hdr.length)
				finish_record(f);
			continue;
		}
		n = std::min<size_t>(len - done, f->hdr.length - f->pay_have);
		u8 *dst = payload_dst(f);
		unsigned long left;
		if (f->hdr.type == SN_REC_MEM) {
			/* Against region writes to the same memory. */
			std::lock_guard<std::mutex> l(f->snic->sd.mem_lock);
			left = copy_from_user(dst, buf + done, n);
		} else {
			left = copy_from_user(dst, buf + done, n);
		}
		if (left)
			return done ? static_cast<ssize_t>(done) : -EFAULT;
		XXH3_64bits_update(f->hash, dst, n);
		f->pay_have += static_cast<u32>(n);
		done += n;
		if (f->pay_have == f->hdr.length)
			finish_record(f);
	}
	/* A bad header takes nothing: endless input stops here. */
	if (f->refused)
		return f->error;
	/* After another problem the rest of the stream is swallowed. */
	f->bytes_in += len;
	return static_cast<ssize_t>(len);
}

const struct file_operations simnic_resume_fops = {
	.read = nullptr,
	.write = simnic_resume_write,
	.unlocked_ioctl = nullptr,
	.mmap = nullptr,
	.release = migf_release,
};

} // namespace

int simnic_track_start(struct migf_dev *md)
{
	return simdev_mem_track_start(&mig_to_simnic(md)->sd);
}

/* Writes through an mmap were not tracked: send all of it again. */
void simnic_track_flush(struct migf_dev *md)
{
	struct simdev *sd = &mig_to_simnic(md)->sd;
	if (simdev_mem_was_mapped(sd))
		simdev_mem_mark_all(sd);
}

void simnic_files_disabled(struct migf_dev *md)
{
	simdev_mem_track_stop(&mig_to_simnic(md)->sd);
}

/* After a reset or at open: the function goes on. */
void simnic_mig_reset(struct migf_dev *md)
{
	simdev_unquiesce(&mig_to_simnic(md)->sd);
}

const struct migf_dev_ops simnic_migf_ops = {
	.magic = SN_MAGIC,
	.version = SN_VERSION,
	.save_fops = &migf_save_fops,
	.step = simnic_step,
	.open_save = simnic_open_save,
	.open_resume = simnic_open_resume,
	.load = simnic_load,
	.produce = simnic_produce,
	.precopy_info = simnic_precopy_info,
	.track_start = simnic_track_start,
	.track_flush = simnic_track_flush,
	.disabled = simnic_files_disabled,
	.reset = simnic_mig_reset,
};

void simnic_precopy_info(struct migf *f, struct vfio_precopy_info *info)
{
	mig_rec_precopy_info(&f->w, f->initial_size,
			     dirty_estimate(&mig_to_simnic(f->md)->sd), info);
}

struct file *simnic_open_save(struct migf_dev *md, bool precopy)
{
	simnic_device *snic = mig_to_simnic(md);
	auto *f = migf_alloc<simnic_migf>(&snic->mig, "simnic_mig",
					  snic->mig.ops->save_fops, true);
	if (!f)
		return static_cast<struct file *>(ERR_PTR(-ENOMEM));
	f->snic = snic;
	return migf_open_save(f, precopy, initial_size(snic));
}

struct file *simnic_open_resume(struct migf_dev *md)
{
	simnic_device *snic = mig_to_simnic(md);
	auto *f = migf_alloc<simnic_migf>(&snic->mig, "simnic_mig",
					  &simnic_resume_fops, false);
	if (!f)
		return static_cast<struct file *>(ERR_PTR(-ENOMEM));
	f->snic = snic;
	if (!(f->hash = XXH3_createState())) {
		fput(f->filp);
		return static_cast<struct file *>(ERR_PTR(-ENOMEM));
	}
	return migf_open_resume(f);
}

int simnic_load(struct migf *mf)
{
	auto *f = static_cast<simnic_migf *>(mf);
	simnic_device *snic = f->snic;
	struct device *dev = snic->core_device.vdev.dev;

	if (!f->error && !f->ended)
		resume_fail(f, "stream truncated after %llu bytes (no end "
			    "record)", (unsigned long long)f->bytes_in);
	if (!f->error && !f->have_state)
		resume_fail(f, "no device state in the stream");
	if (f->error) {
		dev_err(dev, "resume: %s", f->error_msg.c_str());
		return f->error;
	}
	int ret = simdev_load_state(&snic->sd, &f->state);
	if (ret)
		dev_err(dev, "resume: the device refused the state (%s)",
			strerror(-ret));
	return ret;
}

u64 simnic_stop_copy_size(simnic_device *snic)
{
	struct migf *f = snic->mig.saving_migf;
	if (!f)
		return initial_size(snic) + tail_size();
	mutex_guard g(&f->lock);
	/*
	 * An upper bound of what is left to read: what is produced and
	 * unread, the initial data not produced yet, the dirty pages (all of
	 * memory if it was mapped), the state and END.
	 */
	u64 unread = mig_rec_unread(&f->w);
	u64 produced = f->w.bytes_read + unread;
	u64 initial_left = f->initial_size > produced ?
		f->initial_size - produced : 0;
	u64 dirty = simdev_mem_was_mapped(&snic->sd) ?
		records(snic->sd.mem_size) * sizeof(mig_rec) + snic->sd.mem_size :
		dirty_estimate(&snic->sd);
	return unread + initial_left + dirty + tail_size();
}
