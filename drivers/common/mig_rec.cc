// SPDX-License-Identifier: GPL-2.0-only
/* The record stream shared by the in-tree sim drivers; see mig_rec.h. */
#include <algorithm>
#include <cstdio>
#include <cstring>

#include <uvfio/linux/vfio_pci_core.h>

#include "mig_rec.h"

u64 mig_rec_hash(const mig_rec &r, const void *payload)
{
	u64 seed = XXH3_64bits(&r, offsetof(mig_rec, hash));
	return XXH3_64bits_withSeed(payload, r.length, seed);
}

void mig_rec_ident_init(struct mig_rec_ident *id,
			const struct vfio_pci_core_device *core)
{
	const struct pci_driver *drv = core->pdev ? core->pdev->driver : nullptr;

	*id = {};
	id->vendor = core->vendor_id;
	id->device = core->device_id;
	/* Truncated if longer: still NUL-padded, compared whole. */
	if (drv && drv->spec_name)
		std::strncpy(id->driver, drv->spec_name, sizeof(id->driver) - 1);
}

bool mig_rec_ident_match(const struct mig_rec_ident *theirs,
			 const struct mig_rec_ident *mine, char *msg,
			 size_t len)
{
	if (!std::memcmp(theirs, mine, sizeof(*mine)))
		return true;
	if (theirs->reserved) {
		std::snprintf(msg, len, "the stream's identity has reserved "
			      "bits set (%#x)", theirs->reserved);
		return false;
	}
	/* The stream's name may be anything: print it bounded and clean. */
	char name[sizeof(theirs->driver) + 1];
	size_t i;
	for (i = 0; i < sizeof(theirs->driver) && theirs->driver[i]; i++)
		name[i] = theirs->driver[i] >= 0x20 && theirs->driver[i] < 0x7f ?
				  theirs->driver[i] : '?';
	name[i] = 0;
	std::snprintf(msg, len, "the stream is from another device: %s "
		      "%04x:%04x, this device is %.*s %04x:%04x", name,
		      theirs->vendor, theirs->device,
		      int(sizeof(mine->driver)), mine->driver, mine->vendor,
		      mine->device);
	return false;
}

u8 *mig_rec_begin(mig_rec_writer *w, u16 type, u64 offset, u32 length)
{
	mig_rec r = {w->magic, w->version, type, offset, length, w->seq++, 0};
	w->out.resize(sizeof(r) + length);
	w->out_off = 0;
	w->ref = nullptr;
	w->ref_len = 0;
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

void mig_rec_emit_ref(mig_rec_writer *w, u16 type, u64 offset,
		      const void *payload, u32 length)
{
	mig_rec r = {w->magic, w->version, type, offset, length, w->seq++, 0};
	r.hash = mig_rec_hash(r, payload);
	w->out.resize(sizeof(r));
	std::memcpy(w->out.data(), &r, sizeof(r));
	w->out_off = 0;
	w->ref = static_cast<const u8 *>(payload);
	w->ref_len = length;
}

size_t mig_rec_unread(const mig_rec_writer *w)
{
	return w->out.size() + w->ref_len - w->out_off;
}

void mig_rec_release(mig_rec_writer *w)
{
	std::vector<u8>().swap(w->out);
	w->ref = nullptr;
	w->ref_len = 0;
	w->out_off = 0;
}

ssize_t mig_rec_read(mig_rec_writer *w, char __user *buf, size_t len,
		     bool (*produce)(void *arg), void *arg, bool final)
{
	size_t done = 0;

	while (done < len) {
		if (!mig_rec_unread(w) && !produce(arg))
			break;
		const u8 *src;
		size_t n;
		bool ref = w->out_off >= w->out.size();
		if (!ref) {
			src = w->out.data() + w->out_off;
			n = w->out.size() - w->out_off;
		} else {
			src = w->ref + (w->out_off - w->out.size());
			n = mig_rec_unread(w);
		}
		n = std::min(len - done, n);
		/* A ref payload holds still and is hashed: it may go by reference. */
		if (ref ? uvfio_copy_to_user_stable(buf + done, src, n)
			: copy_to_user(buf + done, src, n)) {
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
	u64 produced = w->bytes_read + mig_rec_unread(w);
	u64 past = std::max(w->bytes_read, initial_size);
	info->initial_bytes = initial_size > w->bytes_read ?
		initial_size - w->bytes_read : 0;
	info->dirty_bytes = (produced > past ? produced - past : 0) +
			    dirty_estimate;
}
