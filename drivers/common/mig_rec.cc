// SPDX-License-Identifier: GPL-2.0-only
/* The record stream shared by the in-tree sim drivers; see mig_rec.h. */
#include <algorithm>
#include <cstring>

#include <xxhash.h>

#include "mig_rec.h"

u64 mig_rec_hash(const mig_rec &r, const void *payload)
{
	u64 seed = XXH3_64bits(&r, offsetof(mig_rec, hash));
	return XXH3_64bits_withSeed(payload, r.length, seed);
}

u8 *mig_rec_begin(mig_rec_writer *w, u16 type, u64 offset, u32 length)
{
	mig_rec r = {w->magic, w->version, type, offset, length, w->seq++, 0};
	w->out.resize(sizeof(r) + length);
	w->out_off = 0;
	std::memcpy(w->out.data(), &r, sizeof(r));
	return w->out.data() + sizeof(r);
}

void mig_rec_seal(mig_rec_writer *w)
{
	mig_rec r;
	std::memcpy(&r, w->out.data(), sizeof(r));
	r.hash = mig_rec_hash(r, w->out.data() + sizeof(r));
	std::memcpy(w->out.data(), &r, sizeof(r));
}

void mig_rec_emit(mig_rec_writer *w, u16 type, u64 offset,
		  const void *payload, u32 length)
{
	std::memcpy(mig_rec_begin(w, type, offset, length), payload, length);
	mig_rec_seal(w);
}

ssize_t mig_rec_read(mig_rec_writer *w, char __user *buf, size_t len,
		     bool (*produce)(void *arg), void *arg, bool final)
{
	size_t done = 0;

	while (done < len) {
		if (w->out_off == w->out.size() && !produce(arg))
			break;
		size_t n = std::min(len - done, w->out.size() - w->out_off);
		if (copy_to_user(buf + done, w->out.data() + w->out_off, n)) {
			if (!done)
				return -EFAULT;
			break;
		}
		w->out_off += n;
		done += n;
	}
	w->bytes_read += done;
	if (done)
		return static_cast<ssize_t>(done);
	return final ? 0 : -ENOMSG;
}

void mig_rec_precopy_info(const mig_rec_writer *w, u64 initial_size,
			  u64 dirty_estimate, struct vfio_precopy_info *info)
{
	u64 produced = w->bytes_read + (w->out.size() - w->out_off);
	u64 past = std::max(w->bytes_read, initial_size);
	info->initial_bytes = initial_size > w->bytes_read ?
		initial_size - w->bytes_read : 0;
	info->dirty_bytes = (produced > past ? produced - past : 0) +
			    dirty_estimate;
}
