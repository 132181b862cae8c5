// SPDX-License-Identifier: GPL-2.0-only
/*
 * sramdev - an out-of-tree-style variant driver plugin with its own tiny
 * hardware model (not the simulated DMA function of sim/), written the way
 * a driver author outside the tree would: one file, the public driver API
 * (pci_core, the migration ops) and nothing else. The conformance suite
 * uses it as a driver that is not built on simdev, and its bug= variants
 * as negative controls for pre-copy data loss.
 *
 * The hardware: a function with
 *   BAR0 (4 KiB, registers; not mmap-able):
 *     0x00 ID          RO  0x4d415253 ("SRAM")
 *     0x04 REV         RO  1
 *     0x08 SRAM_PAGES  RO  BAR2 size / 4096
 *     0x0c WRITES      RO  region writes into BAR2 so far (wraps); part of
 *                          the migrated state
 *     0x10-0x1f SCRATCH RW four 32-bit scratch registers
 *     everything else reads 0, ignores writes; MSI-X table (1 vector) at
 *     0x800, PBA after it. FLR zeroes WRITES and SCRATCH; SRAM keeps its
 *     content.
 *   BAR2 (mem=, default 1 MiB; SRAM; 64-bit, prefetchable: reads have no
 *     side effects): NOT mmap-able; read and written only through region
 *     reads and writes (pread/pwrite on the device fd), which the model
 *     sees one by one (hw_ops->bar_rw).
 *   No DMA, so P2P arcs have nothing to quiesce.
 *
 * Migration: STOP_COPY | P2P | PRE_COPY. Opening a pre-copy file starts
 * dirty tracking of SRAM pages: every region write into BAR2 marks the
 * pages it touches in a bitmap (under the model's lock, with the write).
 * The saving file sends the whole SRAM once (the initial data), then, in
 * pre-copy, the dirty pages (take-and-clear under the same lock as the
 * copy, so a write after a page was sent marks it again and it is sent
 * again later); after STOP_COPY it sends what is still dirty, the
 * registers and an END record, then EOF.
 *
 * The stream: records of struct srd_rec (magic "SRDR", version, type,
 * sequence number, length, offset, XXH3 of header and payload): HEADER
 * first (SRAM size, page size, register block size: the destination must
 * match them), MEM runs of whole pages (at most 64 KiB), one REGS, END.
 * The resuming file checks each record as it arrives and stages SRAM in a
 * buffer; RESUMING -> STOP refuses (-EINVAL, one log line) a stream that
 * is corrupt (magic, version, sequence, checksum, bounds, configuration),
 * truncated (no END, a page never sent, no registers) or has trailing
 * bytes, before it changes the device; otherwise it loads SRAM and
 * registers.
 *
 * Spec: "sramdev,bdf=DDDD:BB:DD.F[,mem=SIZE][,seed=N][,bug=NAME]"
 *   mem   BAR2 SRAM size, a power of two from 4K to 256M, default 1M
 *   seed  fill SRAM with a reproducible pattern (default: zeroed)
 *   bug   known defects for the conformance suite's negative control
 *         ('|' or '+' separated); without it the driver is correct:
 *     nodirty   region writes during pre-copy are NOT marked dirty
 *     noresend  pages marked dirty are never re-sent (their dirty bits
 *               are cleared as if sent, and nothing is sent)
 *   Both still save and load; their data loss shows only when SRAM
 *   changes during pre-copy after the page was sent.
 *
 * A state digest (uvfio_set_state_digest) hashes registers and SRAM.
 *
 * Built by tests/conformance/meson.build as the plugin sramdev.so next to
 * brokennic.so (load it with UVFIO_DRIVER_PATH=build/tests/conformance).
 */
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <xxhash.h>

#include <uvfio/linux/spinlock.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio_pci_core.h>

namespace {

/* -------- the hardware model -------- */

constexpr u32 SRD_ID = 0x4d415253;	/* "SRAM" */
constexpr u32 SRD_REV = 1;
constexpr u64 SRD_BAR0_SIZE = 4096;
constexpr u32 SRD_MSIX_TABLE = 0x800;
constexpr u64 SRD_PAGE = 4096;

enum : u32 {
	SRD_REG_ID = 0x00,
	SRD_REG_REV = 0x04,
	SRD_REG_SRAM_PAGES = 0x08,
	SRD_REG_WRITES = 0x0c,
	SRD_REG_SCRATCH = 0x10,	/* four of them, to 0x1f */
	SRD_REG_END = 0x20,
};

/* What the registers hold that migration must carry. */
struct srd_regs {
	u32 writes;
	u32 scratch[4];
	u32 reserved;
};
static_assert(sizeof(srd_regs) == 24);

enum srd_bug : u32 {
	SRD_BUG_NODIRTY = 1 << 0,
	SRD_BUG_NORESEND = 1 << 1,
};

struct srd_hw {
	std::mutex lock;		/* everything below */
	u64 mem_size = 0;
	std::vector<u8> sram;
	srd_regs regs = {};
	bool tracking = false;		/* pre-copy: mark written pages */
	std::vector<u64> dirty;		/* one bit per SRAM page */
	u64 ndirty = 0;
	u32 bugs = 0;
};

u64 srd_pages(const srd_hw *hw)
{
	return hw->mem_size / SRD_PAGE;
}

/* hw->lock held. */
void srd_mark_dirty(srd_hw *hw, u64 off, u64 len)
{
	for (u64 p = off / SRD_PAGE; p <= (off + len - 1) / SRD_PAGE; p++) {
		u64 bit = 1ULL << (p % 64);
		if (!(hw->dirty[p / 64] & bit)) {
			hw->dirty[p / 64] |= bit;
			hw->ndirty++;
		}
	}
}

/* Take and clear a run of dirty pages, at most max bytes. hw->lock held. */
bool srd_take_dirty(srd_hw *hw, u64 max, u64 *off, u64 *len)
{
	if (!hw->ndirty)
		return false;
	u64 n = srd_pages(hw), p = 0;
	while (p < n && !(hw->dirty[p / 64] & (1ULL << (p % 64))))
		p++;
	if (p == n)
		return false;
	u64 first = p;
	while (p < n && (p - first) * SRD_PAGE < max &&
	       (hw->dirty[p / 64] & (1ULL << (p % 64)))) {
		hw->dirty[p / 64] &= ~(1ULL << (p % 64));
		hw->ndirty--;
		p++;
	}
	*off = first * SRD_PAGE;
	*len = (p - first) * SRD_PAGE;
	return true;
}

/* The register block as the BAR shows it. hw->lock held. */
void srd_reg_image(const srd_hw *hw, u8 img[SRD_REG_END])
{
	u32 w[SRD_REG_END / 4] = {SRD_ID, SRD_REV,
				  static_cast<u32>(srd_pages(hw)),
				  hw->regs.writes, hw->regs.scratch[0],
				  hw->regs.scratch[1], hw->regs.scratch[2],
				  hw->regs.scratch[3]};
	std::memcpy(img, w, SRD_REG_END);
}

struct srd_device;
srd_hw *to_hw(struct vfio_pci_core_device *core);

void srd_bar_rw(struct vfio_pci_core_device *core, int bar, u64 off,
		void *buf, size_t count, bool iswrite)
{
	srd_hw *hw = to_hw(core);
	std::lock_guard<std::mutex> l(hw->lock);
	u8 *b = static_cast<u8 *>(buf);

	if (bar == 2) {
		if (!iswrite) {
			std::memcpy(b, hw->sram.data() + off, count);
			return;
		}
		std::memcpy(hw->sram.data() + off, b, count);
		hw->regs.writes++;
		if (hw->tracking && count && !(hw->bugs & SRD_BUG_NODIRTY))
			srd_mark_dirty(hw, off, count);
		return;
	}
	if (bar != 0)
		return;
	u8 img[SRD_REG_END];
	srd_reg_image(hw, img);
	for (size_t i = 0; i < count; i++) {
		u64 o = off + i;
		if (!iswrite) {
			b[i] = o < SRD_REG_END ? img[o] : 0;
			continue;
		}
		if (o >= SRD_REG_SCRATCH && o < SRD_REG_END)
			reinterpret_cast<u8 *>(hw->regs.scratch)
				[o - SRD_REG_SCRATCH] = b[i];
	}
}

void srd_set_bus_master(struct vfio_pci_core_device *, bool)
{
	/* No DMA engine: nothing to start or stop. */
}

void srd_flr(struct vfio_pci_core_device *core)
{
	srd_hw *hw = to_hw(core);
	std::lock_guard<std::mutex> l(hw->lock);
	hw->regs = {};	/* SRAM keeps its content */
}

const struct vfio_pci_hw_ops srd_hw_ops = {
	.bar_rw = srd_bar_rw,
	.set_bus_master = srd_set_bus_master,
	.flr = srd_flr,
};

/* -------- the stream -------- */

constexpr u32 SRD_MAGIC = 0x52445253;	/* "SRDR" */
constexpr u16 SRD_VERSION = 1;
constexpr u32 SRD_CHUNK = 64 << 10;	/* largest MEM record payload */

enum srd_rec_type : u16 {
	SRD_REC_HEADER = 1,
	SRD_REC_MEM = 2,
	SRD_REC_REGS = 3,
	SRD_REC_END = 4,
};

struct srd_rec {
	u32 magic;
	u16 version;
	u16 type;
	u32 seq;
	u32 length;	/* payload bytes */
	u64 offset;	/* MEM: SRAM offset */
	u64 hash;	/* XXH3 of this header (hash 0) and the payload */
};
static_assert(sizeof(srd_rec) == 32);

struct srd_config {
	u64 mem_size;
	u32 page_size;
	u32 regs_len;
};
static_assert(sizeof(srd_config) == 16);

u64 rec_hash(srd_rec r, const u8 *payload)
{
	r.hash = 0;
	return XXH3_64bits_withSeed(payload, r.length,
				    XXH3_64bits(&r, sizeof(r)));
}

struct srd_migf {
	srd_device *srd = nullptr;
	struct file *filp = nullptr;
	struct mutex lock;
	bool disabled = false;

	/* Saving. */
	bool precopy = false;
	bool final = false;	/* stopped: finish the stream */
	enum { HEADER, INITIAL, DIRTY, REGS, END, DONE } phase = HEADER;
	u64 mem_pos = 0;	/* initial pass */
	u32 seq = 0;
	std::vector<u8> out;	/* the record being read */
	size_t out_pos = 0;
	u64 bytes_read = 0;
	u64 initial_size = 0;

	/* Resuming. */
	std::vector<u8> in;
	u32 expect_seq = 0;
	bool have_config = false, have_regs = false, ended = false;
	std::vector<u8> staged;	/* SRAM as the stream has it */
	std::vector<bool> seen;	/* pages the stream carried */
	srd_regs regs = {};
	u64 bytes_in = 0;
	int error = 0;
	std::string error_msg;
};

struct srd_device {
	struct vfio_pci_core_device core_device;	/* first */
	srd_hw hw;
	struct mutex state_mutex;
	enum vfio_device_mig_state mig_state = VFIO_DEVICE_STATE_RUNNING;
	spinlock_t reset_lock;
	bool deferred_reset = false;
	srd_migf *saving_migf = nullptr;
	srd_migf *resuming_migf = nullptr;
};

void srd_state_mutex_unlock(srd_device *srd);

srd_device *to_srd(struct vfio_device *vdev)
{
	return container_of(vdev, srd_device, core_device.vdev);
}

srd_hw *to_hw(struct vfio_pci_core_device *core)
{
	return &container_of(core, srd_device, core_device)->hw;
}

srd_config device_config(const srd_hw *hw)
{
	return {hw->mem_size, static_cast<u32>(SRD_PAGE), sizeof(srd_regs)};
}

u64 mem_records(u64 bytes)
{
	return (bytes + SRD_CHUNK - 1) / SRD_CHUNK;
}

/* HEADER and the whole SRAM. */
u64 initial_size(const srd_hw *hw)
{
	return sizeof(srd_rec) + sizeof(srd_config) +
	       mem_records(hw->mem_size) * sizeof(srd_rec) + hw->mem_size;
}

/* REGS and END. */
u64 tail_size()
{
	return 2 * sizeof(srd_rec) + sizeof(srd_regs);
}

/* Dirty pages as records, an upper bound (one record per page). */
u64 dirty_estimate(srd_hw *hw)
{
	std::lock_guard<std::mutex> l(hw->lock);
	return hw->ndirty * (SRD_PAGE + sizeof(srd_rec));
}

/* Start a record of len payload bytes in f->out; returns the payload. */
u8 *rec_begin(srd_migf *f, u16 type, u64 offset, u32 len)
{
	f->out.assign(sizeof(srd_rec) + len, 0);
	f->out_pos = 0;
	srd_rec r = {SRD_MAGIC, SRD_VERSION, type, f->seq++, len, offset, 0};
	std::memcpy(f->out.data(), &r, sizeof(r));
	return f->out.data() + sizeof(r);
}

void rec_seal(srd_migf *f)
{
	srd_rec r;
	std::memcpy(&r, f->out.data(), sizeof(r));
	r.hash = rec_hash(r, f->out.data() + sizeof(r));
	std::memcpy(f->out.data(), &r, sizeof(r));
}

/* Produce the next record into f->out; false when nothing is due now. */
bool produce(srd_migf *f)
{
	srd_hw *hw = &f->srd->hw;
	u64 off, len;

	switch (f->phase) {
	case srd_migf::HEADER: {
		srd_config c = device_config(hw);
		std::memcpy(rec_begin(f, SRD_REC_HEADER, 0, sizeof(c)), &c,
			    sizeof(c));
		f->phase = srd_migf::INITIAL;
		break;
	}
	case srd_migf::INITIAL: {
		len = std::min<u64>(SRD_CHUNK, hw->mem_size - f->mem_pos);
		u8 *p = rec_begin(f, SRD_REC_MEM, f->mem_pos, u32(len));
		{
			std::lock_guard<std::mutex> l(hw->lock);
			std::memcpy(p, hw->sram.data() + f->mem_pos, len);
		}
		f->mem_pos += len;
		if (f->mem_pos == hw->mem_size)
			f->phase = srd_migf::DIRTY;
		break;
	}
	case srd_migf::DIRTY:
		if (f->precopy) {
			std::lock_guard<std::mutex> l(hw->lock);
			/* Take-and-clear and copy under one lock: a write
			 * after this marks the page again. */
			if (hw->bugs & SRD_BUG_NORESEND) {
				/* The defect: cleared as if sent, not sent. */
				while (srd_take_dirty(hw, SRD_CHUNK, &off, &len))
					;
			} else if (srd_take_dirty(hw, SRD_CHUNK, &off, &len)) {
				u8 *p = rec_begin(f, SRD_REC_MEM, off, u32(len));
				std::memcpy(p, hw->sram.data() + off, len);
				rec_seal(f);
				return true;
			}
		}
		if (!f->final)
			return false;
		f->phase = srd_migf::REGS;
		[[fallthrough]];
	case srd_migf::REGS: {
		u8 *p = rec_begin(f, SRD_REC_REGS, 0, sizeof(srd_regs));
		{
			std::lock_guard<std::mutex> l(hw->lock);
			std::memcpy(p, &hw->regs, sizeof(srd_regs));
		}
		f->phase = srd_migf::END;
		break;
	}
	case srd_migf::END:
		rec_begin(f, SRD_REC_END, 0, 0);
		f->phase = srd_migf::DONE;
		break;
	case srd_migf::DONE:
		return false;
	}
	rec_seal(f);
	return true;
}

ssize_t srd_save_read(struct file *filp, char __user *buf, size_t len,
		      loff_t *pos)
{
	auto *f = static_cast<srd_migf *>(filp->private_data);
	size_t done = 0;

	if (pos)
		return -ESPIPE;
	mutex_guard g(&f->lock);
	if (f->disabled)
		return -ENODEV;
	while (done < len) {
		if (f->out_pos == f->out.size() && !produce(f))
			break;
		size_t n = std::min(len - done, f->out.size() - f->out_pos);
		if (copy_to_user(buf + done, f->out.data() + f->out_pos, n))
			return done ? ssize_t(done) : -EFAULT;
		f->out_pos += n;
		f->bytes_read += n;
		done += n;
	}
	if (!done && !f->final)
		return -ENOMSG;	/* pre-copy: nothing for now */
	return ssize_t(done);	/* 0 at the end of STOP_COPY */
}

u64 unread(const srd_migf *f)
{
	return f->out.size() - f->out_pos;
}

long srd_save_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	auto *f = static_cast<srd_migf *>(filp->private_data);
	srd_device *srd = f->srd;
	size_t minsz = offsetofend(struct vfio_precopy_info, dirty_bytes);
	struct vfio_precopy_info info = {};
	void __user *uarg = reinterpret_cast<void __user *>(arg);
	long ret = 0;

	if (cmd != VFIO_MIG_GET_PRECOPY_INFO)
		return -ENOTTY;
	if (copy_from_user(&info, uarg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;

	mutex_lock(&srd->state_mutex);
	if (srd->mig_state != VFIO_DEVICE_STATE_PRE_COPY &&
	    srd->mig_state != VFIO_DEVICE_STATE_PRE_COPY_P2P) {
		ret = -EINVAL;
	} else {
		mutex_guard g(&f->lock);
		if (f->disabled) {
			ret = -ENODEV;
		} else {
			u64 produced = f->bytes_read + unread(f);
			u64 past = std::max(f->bytes_read, f->initial_size);
			info.initial_bytes = f->initial_size > f->bytes_read ?
				f->initial_size - f->bytes_read : 0;
			info.dirty_bytes = (produced > past ? produced - past : 0) +
					   dirty_estimate(&srd->hw);
		}
	}
	srd_state_mutex_unlock(srd);
	if (!ret && copy_to_user(uarg, &info, minsz))
		ret = -EFAULT;
	return ret;
}

int srd_migf_release(struct inode *, struct file *filp)
{
	delete static_cast<srd_migf *>(filp->private_data);
	return 0;
}

const struct file_operations srd_save_fops = {
	.owner = THIS_MODULE,
	.read = srd_save_read,
	.unlocked_ioctl = srd_save_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.release = srd_migf_release,
};

/* -------- resuming -------- */

void resume_fail(srd_migf *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void resume_fail(srd_migf *f, const char *fmt, ...)
{
	if (f->error)
		return;	/* keep the first problem */
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	std::vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	f->error = -EINVAL;
	f->error_msg = msg;
}

/* The payload length the header announces, or -1 (and the error noted). */
long check_header(srd_migf *f, const srd_rec &r)
{
	if (r.magic != SRD_MAGIC) {
		resume_fail(f, "bad magic %#x in record %u", r.magic,
			    f->expect_seq);
		return -1;
	}
	if (r.version != SRD_VERSION) {
		resume_fail(f, "unsupported stream version %u (this driver "
			    "reads %u)", r.version, SRD_VERSION);
		return -1;
	}
	if (r.seq != f->expect_seq) {
		resume_fail(f, "record %u out of sequence (expected %u)", r.seq,
			    f->expect_seq);
		return -1;
	}
	u32 want = 0;
	switch (r.type) {
	case SRD_REC_HEADER:
		want = sizeof(srd_config);
		break;
	case SRD_REC_REGS:
		want = sizeof(srd_regs);
		break;
	case SRD_REC_END:
		want = 0;
		break;
	case SRD_REC_MEM:
		if (r.length && r.length <= SRD_CHUNK && !(r.length % SRD_PAGE))
			return r.length;
		want = ~0u;
		break;
	default:
		want = ~0u;
		break;
	}
	if (r.length != want) {
		resume_fail(f, "record %u: bad type %u or length %u", r.seq,
			    r.type, r.length);
		return -1;
	}
	return want;
}

void apply_record(srd_migf *f, const srd_rec &r, const u8 *payload)
{
	srd_hw *hw = &f->srd->hw;

	if ((r.seq == 0) != (r.type == SRD_REC_HEADER)) {
		resume_fail(f, "record %u: the header record must come first, "
			    "once", r.seq);
		return;
	}
	switch (r.type) {
	case SRD_REC_HEADER: {
		srd_config c, mine = device_config(hw);
		std::memcpy(&c, payload, sizeof(c));
		if (std::memcmp(&c, &mine, sizeof(c))) {
			resume_fail(f, "device configuration mismatch: stream "
				    "sram %llu page %u regs %u, this device "
				    "sram %llu page %u regs %u",
				    (unsigned long long)c.mem_size, c.page_size,
				    c.regs_len, (unsigned long long)mine.mem_size,
				    mine.page_size, mine.regs_len);
			return;
		}
		try {
			f->staged.assign(hw->mem_size, 0);
			f->seen.assign(srd_pages(hw), false);
		} catch (...) {
			resume_fail(f, "out of memory staging %llu bytes",
				    (unsigned long long)hw->mem_size);
			return;
		}
		f->have_config = true;
		break;
	}
	case SRD_REC_MEM:
		if (r.offset % SRD_PAGE || r.offset > hw->mem_size ||
		    r.length > hw->mem_size - r.offset) {
			resume_fail(f, "record %u: SRAM range %#llx+%u out of "
				    "bounds", r.seq, (unsigned long long)r.offset,
				    r.length);
			return;
		}
		std::memcpy(f->staged.data() + r.offset, payload, r.length);
		for (u64 p = r.offset / SRD_PAGE;
		     p < (r.offset + r.length) / SRD_PAGE; p++)
			f->seen[p] = true;
		break;
	case SRD_REC_REGS:
		if (f->have_regs) {
			resume_fail(f, "record %u: a second register block",
				    r.seq);
			return;
		}
		std::memcpy(&f->regs, payload, sizeof(f->regs));
		f->have_regs = true;
		break;
	case SRD_REC_END:
		f->ended = true;
		break;
	}
}

/* Consume the whole records in f->in. */
void parse(srd_migf *f)
{
	size_t off = 0;

	while (!f->error && f->in.size() - off >= sizeof(srd_rec)) {
		if (f->ended) {
			resume_fail(f, "trailing bytes after the end record");
			break;
		}
		srd_rec r;
		std::memcpy(&r, f->in.data() + off, sizeof(r));
		long plen = check_header(f, r);
		if (plen < 0)
			break;
		if (f->in.size() - off - sizeof(r) < size_t(plen))
			break;	/* the payload is still coming */
		const u8 *payload = f->in.data() + off + sizeof(r);
		if (rec_hash(r, payload) != r.hash) {
			resume_fail(f, "checksum mismatch in record %u", r.seq);
			break;
		}
		apply_record(f, r, payload);
		f->expect_seq++;
		off += sizeof(r) + size_t(plen);
	}
	if (f->ended && !f->error && f->in.size() > off)
		resume_fail(f, "trailing bytes after the end record");
	if (f->error)
		f->in.clear();
	else
		f->in.erase(f->in.begin(), f->in.begin() + off);
}

ssize_t srd_resume_write(struct file *filp, const char __user *buf,
			 size_t len, loff_t *pos)
{
	auto *f = static_cast<srd_migf *>(filp->private_data);
	size_t done = 0;

	if (pos)
		return -ESPIPE;
	mutex_guard g(&f->lock);
	if (f->disabled)
		return -ENODEV;
	while (done < len) {
		size_t n = std::min<size_t>(len - done, SRD_CHUNK);
		if (!f->error) {
			size_t old = f->in.size();
			try {
				f->in.resize(old + n);
			} catch (...) {
				return done ? ssize_t(done) : -ENOMEM;
			}
			if (copy_from_user(f->in.data() + old, buf + done, n)) {
				f->in.resize(old);
				return done ? ssize_t(done) : -EFAULT;
			}
			parse(f);
		}
		done += n;
		f->bytes_in += n;
	}
	return ssize_t(done);
}

const struct file_operations srd_resume_fops = {
	.owner = THIS_MODULE,
	.write = srd_resume_write,
	.release = srd_migf_release,
};

srd_migf *migf_alloc(srd_device *srd, bool saving)
{
	auto *f = new (std::nothrow) srd_migf;
	if (!f)
		return nullptr;
	f->srd = srd;
	mutex_init(&f->lock);
	struct file *filp = anon_inode_getfile(
		"sramdev_mig", saving ? &srd_save_fops : &srd_resume_fops, f,
		saving ? O_RDONLY : O_WRONLY);
	if (IS_ERR(filp)) {
		delete f;
		return nullptr;
	}
	stream_open(nullptr, filp);
	f->filp = filp;
	return f;
}

void track_stop(srd_hw *hw)
{
	std::lock_guard<std::mutex> l(hw->lock);
	hw->tracking = false;
	std::fill(hw->dirty.begin(), hw->dirty.end(), 0);
	hw->ndirty = 0;
}

struct file *srd_open_save(srd_device *srd, bool precopy)
{
	srd_migf *f = migf_alloc(srd, true);
	if (!f)
		return ERR_PTR(-ENOMEM);
	f->precopy = precopy;
	f->final = !precopy;
	f->initial_size = initial_size(&srd->hw);
	if (precopy) {
		/* Before the first page is read: a write after it is seen. */
		std::lock_guard<std::mutex> l(srd->hw.lock);
		std::fill(srd->hw.dirty.begin(), srd->hw.dirty.end(), 0);
		srd->hw.ndirty = 0;
		srd->hw.tracking = true;
	}
	srd->saving_migf = f;
	return get_file(f->filp);
}

struct file *srd_open_resume(srd_device *srd)
{
	srd_migf *f = migf_alloc(srd, false);
	if (!f)
		return ERR_PTR(-ENOMEM);
	srd->resuming_migf = f;
	return get_file(f->filp);
}

/* PRE_COPY(_P2P) -> STOP_COPY: the same file goes on and now ends. */
void srd_save_finalize(srd_device *srd)
{
	srd_migf *f = srd->saving_migf;
	if (!f)
		return;
	mutex_guard g(&f->lock);
	f->final = true;
}

/* RESUMING -> STOP: all checked, then load; never half a state. */
int srd_resume_finish(srd_device *srd)
{
	srd_migf *f = srd->resuming_migf;
	struct device *dev = srd->core_device.vdev.dev;
	srd_hw *hw = &srd->hw;

	if (!f)
		return 0;
	mutex_guard g(&f->lock);
	if (!f->error && !f->have_config)
		resume_fail(f, "stream truncated after %llu bytes (no header "
			    "record)", (unsigned long long)f->bytes_in);
	if (!f->error && !f->ended)
		resume_fail(f, "stream truncated after %llu bytes (no end "
			    "record)", (unsigned long long)f->bytes_in);
	if (!f->error && !f->have_regs)
		resume_fail(f, "no register block in the stream");
	if (!f->error) {
		auto it = std::find(f->seen.begin(), f->seen.end(), false);
		if (it != f->seen.end())
			resume_fail(f, "stream incomplete: SRAM page %zu never "
				    "sent", size_t(it - f->seen.begin()));
	}
	if (f->error) {
		dev_err(dev, "resume: %s", f->error_msg.c_str());
		return f->error;
	}
	std::lock_guard<std::mutex> l(hw->lock);
	std::memcpy(hw->sram.data(), f->staged.data(), hw->mem_size);
	hw->regs = f->regs;
	return 0;
}

void srd_disable_fds(srd_device *srd)
{
	for (srd_migf **pf : {&srd->saving_migf, &srd->resuming_migf}) {
		srd_migf *f = *pf;
		if (!f)
			continue;
		mutex_lock(&f->lock);
		f->disabled = true;
		std::vector<u8>().swap(f->out);
		f->out_pos = 0;
		std::vector<u8>().swap(f->in);
		std::vector<u8>().swap(f->staged);
		mutex_unlock(&f->lock);
		*pf = nullptr;
		fput(f->filp);
	}
	track_stop(&srd->hw);
}

/* -------- the FSM -------- */

/* One arc, mig_state -> next, under state_mutex (mlx5's step). */
struct file *srd_step_state(srd_device *srd, enum vfio_device_mig_state next)
{
	const int cur = srd->mig_state, nxt = next;
	using namespace uvfio::mig_state;

	if (cur == STOP && nxt == STOP_COPY)
		return srd_open_save(srd, false);
	if ((cur == RUNNING && nxt == PRE_COPY) ||
	    (cur == RUNNING_P2P && nxt == PRE_COPY_P2P))
		return srd_open_save(srd, true);
	if ((cur == PRE_COPY_P2P || cur == PRE_COPY) && nxt == STOP_COPY) {
		srd_save_finalize(srd);
		return nullptr;
	}
	if ((cur == STOP_COPY && nxt == STOP) ||
	    (cur == PRE_COPY && nxt == RUNNING) ||
	    (cur == PRE_COPY_P2P && nxt == RUNNING_P2P)) {
		srd_disable_fds(srd);
		return nullptr;
	}
	if (cur == STOP && nxt == RESUMING)
		return srd_open_resume(srd);
	if (cur == RESUMING && nxt == STOP) {
		int ret = srd_resume_finish(srd);
		if (ret)
			return ERR_PTR(ret);
		srd_disable_fds(srd);
		return nullptr;
	}
	/* No DMA: moving between running, P2P and stopped changes nothing
	 * in this device. */
	if ((cur == RUNNING && nxt == RUNNING_P2P) ||
	    (cur == RUNNING_P2P && nxt == RUNNING) ||
	    (cur == RUNNING && nxt == STOP) ||
	    (cur == STOP && nxt == RUNNING) ||
	    (cur == RUNNING_P2P && nxt == STOP) ||
	    (cur == STOP && nxt == RUNNING_P2P) ||
	    (cur == PRE_COPY && nxt == PRE_COPY_P2P) ||
	    (cur == PRE_COPY_P2P && nxt == PRE_COPY))
		return nullptr;
	WARN_ON(true);
	return ERR_PTR(-EINVAL);
}

/* The deferred-reset pattern: the state_mutex holder runs a pending reset. */
void srd_state_mutex_unlock(srd_device *srd)
{
again:
	spin_lock(&srd->reset_lock);
	if (srd->deferred_reset) {
		srd->deferred_reset = false;
		spin_unlock(&srd->reset_lock);
		srd->mig_state = VFIO_DEVICE_STATE_RUNNING;
		srd_disable_fds(srd);
		goto again;
	}
	mutex_unlock(&srd->state_mutex);
	spin_unlock(&srd->reset_lock);
}

struct file *srd_set_state(struct vfio_device *vdev,
			   enum vfio_device_mig_state new_state)
{
	srd_device *srd = to_srd(vdev);
	enum vfio_device_mig_state next_state;
	struct file *res = NULL;
	int ret;

	/* Called once per SET with the final state: walk to it. */
	mutex_lock(&srd->state_mutex);
	while (new_state != srd->mig_state) {
		ret = vfio_mig_get_next_state(vdev, srd->mig_state, new_state,
					      &next_state);
		if (ret) {
			res = ERR_PTR(ret);
			break;
		}
		res = srd_step_state(srd, next_state);
		if (IS_ERR(res))
			break;
		srd->mig_state = next_state;
		if (WARN_ON(res && new_state != srd->mig_state)) {
			fput(res);
			res = ERR_PTR(-EINVAL);
			break;
		}
	}
	srd_state_mutex_unlock(srd);
	return res;
}

int srd_get_state(struct vfio_device *vdev, enum vfio_device_mig_state *st)
{
	srd_device *srd = to_srd(vdev);
	mutex_lock(&srd->state_mutex);
	*st = srd->mig_state;
	srd_state_mutex_unlock(srd);
	return 0;
}

/* An upper bound of what STOP_COPY would send from the present state. */
int srd_get_data_size(struct vfio_device *vdev, unsigned long *len)
{
	srd_device *srd = to_srd(vdev);
	mutex_lock(&srd->state_mutex);
	srd_migf *f = srd->saving_migf;
	u64 n;
	if (!f) {
		n = initial_size(&srd->hw) + tail_size();
	} else {
		mutex_guard g(&f->lock);
		u64 produced = f->bytes_read + unread(f);
		u64 initial_left = f->initial_size > produced ?
			f->initial_size - produced : 0;
		n = unread(f) + initial_left + dirty_estimate(&srd->hw) +
		    tail_size();
	}
	srd_state_mutex_unlock(srd);
	*len = static_cast<unsigned long>(n);
	return 0;
}

/* Registers and SRAM: what the stream carries (called stopped). */
int srd_state_digest(struct vfio_device *vdev, u64 *out)
{
	srd_hw *hw = &to_srd(vdev)->hw;
	std::lock_guard<std::mutex> l(hw->lock);
	*out = XXH3_64bits_withSeed(hw->sram.data(), hw->mem_size,
				    XXH3_64bits(&hw->regs, sizeof(hw->regs)));
	return 0;
}

const struct vfio_migration_ops srd_mig_ops = {
	.migration_set_state = srd_set_state,
	.migration_get_state = srd_get_state,
	.migration_get_data_size = srd_get_data_size,
};

void srd_pci_aer_reset_done(struct pci_dev *pdev)
{
	struct vfio_pci_core_device *core =
		static_cast<struct vfio_pci_core_device *>(
			dev_get_drvdata(&pdev->dev));
	srd_device *srd = container_of(core, srd_device, core_device);

	spin_lock(&srd->reset_lock);
	srd->deferred_reset = true;
	if (!mutex_trylock(&srd->state_mutex)) {
		spin_unlock(&srd->reset_lock);
		return;	/* the holder does it on unlock */
	}
	spin_unlock(&srd->reset_lock);
	srd_state_mutex_unlock(srd);
}

const struct pci_error_handlers srd_err_handlers = {
	.reset_done = srd_pci_aer_reset_done,
	.error_detected = vfio_pci_core_aer_err_detected,
};

/* -------- device ops -------- */

int srd_init_dev(struct vfio_device *vdev)
{
	int ret = vfio_pci_core_init_dev(vdev);
	if (!ret)
		mutex_init(&to_srd(vdev)->state_mutex);
	return ret;
}

int srd_open_device(struct vfio_device *vdev)
{
	srd_device *srd = to_srd(vdev);
	int ret = vfio_pci_core_enable(&srd->core_device);
	if (ret)
		return ret;
	mutex_lock(&srd->state_mutex);
	srd->mig_state = VFIO_DEVICE_STATE_RUNNING;
	srd_state_mutex_unlock(srd);
	vfio_pci_core_finish_enable(&srd->core_device);
	return 0;
}

void srd_close_device(struct vfio_device *vdev)
{
	srd_device *srd = to_srd(vdev);
	mutex_lock(&srd->state_mutex);
	srd_disable_fds(srd);
	srd_state_mutex_unlock(srd);
	vfio_pci_core_close_device(vdev);
}

const struct vfio_device_ops srd_ops = {
	.name = "sramdev-vfio-pci",
	.init = srd_init_dev,
	.release = vfio_pci_core_release_dev,
	.open_device = srd_open_device,
	.close_device = srd_close_device,
	.read = vfio_pci_core_read,
	.write = vfio_pci_core_write,
	.ioctl = vfio_pci_core_ioctl,
	.mmap = vfio_pci_core_mmap,
	.request = vfio_pci_core_request,
	.match = nullptr,
	.dma_unmap = nullptr,
	.device_feature = vfio_pci_core_ioctl_feature,
	.get_region_info_caps = vfio_pci_core_get_region_info_caps,
};

/* -------- probe / remove -------- */

const char *const srd_keys[] = {"mem", "seed", "bug", nullptr};
const char *const srd_bug_names[] = {"nodirty", "noresend", nullptr};
const u32 srd_bug_values[] = {SRD_BUG_NODIRTY, SRD_BUG_NORESEND};

u64 splitmix64(u64 *x)
{
	u64 z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int srd_probe(struct pci_dev *pdev, const struct uvfio_spec *spec)
{
	u64 mem, seed;
	u32 bugs = 0;
	int ret;

	if ((ret = uvfio_spec_get_size(spec, "mem", 1 << 20, SRD_PAGE,
				       256ULL << 20, &mem)) ||
	    (ret = uvfio_spec_get_u64(spec, "seed", 0, 0, ~0ULL, &seed)) ||
	    (ret = uvfio_spec_get_flags(spec, "bug", srd_bug_names,
					srd_bug_values, 0, &bugs)))
		return ret;
	if (mem & (mem - 1)) {
		dev_err(&pdev->dev, "mem=%llu is not a power of two",
			(unsigned long long)mem);
		return -EINVAL;
	}
	srd_device *srd = vfio_alloc_device(srd_device, core_device.vdev,
					    &pdev->dev, &srd_ops);
	if (IS_ERR(srd))
		return int(PTR_ERR(srd));
	srd_hw *hw = &srd->hw;
	try {
		hw->sram.assign(mem, 0);
		hw->dirty.assign((mem / SRD_PAGE + 63) / 64, 0);
	} catch (...) {
		vfio_put_device(&srd->core_device.vdev);
		return -ENOMEM;
	}
	hw->mem_size = mem;
	hw->bugs = bugs;
	if (uvfio_spec_get(spec, "seed")) {
		u64 x = seed;
		for (u64 i = 0; i < mem; i += 8) {
			u64 w = splitmix64(&x);
			std::memcpy(hw->sram.data() + i, &w, 8);
		}
	}

	struct vfio_pci_core_device *core = &srd->core_device;
	core->device_id = 0x5352;
	core->msix_count = 1;
	core->msix_bar = 0;
	core->msix_table_offset = SRD_MSIX_TABLE;
	core->bars[0].size = SRD_BAR0_SIZE;
	core->bars[0].regs = true;	/* registers, not mmap-able */
	core->bars[2].size = mem;
	core->bars[2].regs = true;	/* SRAM: region access only */
	core->bars[2].mmap = false;
	/* Memory: reads have no side effects, so prefetchable (and what
	 * the conformance suite may write blindly). */
	core->bars[2].prefetch = true;
	core->bars[2].is_64 = true;
	core->hw_ops = &srd_hw_ops;
	core->hw_data = hw;
	core->vdev.mig_ops = &srd_mig_ops;
	core->vdev.migration_flags = VFIO_MIGRATION_STOP_COPY |
				     VFIO_MIGRATION_P2P |
				     VFIO_MIGRATION_PRE_COPY;
	/* uvfio only, for the conformance suite's round trip. */
	uvfio_set_state_digest(&core->vdev, srd_state_digest);

	dev_set_drvdata(&pdev->dev, core);	/* as the kernel requires */
	ret = vfio_pci_core_register_device(core);
	if (ret) {
		vfio_put_device(&core->vdev);
		return ret;
	}
	return 0;
}

void srd_remove(struct pci_dev *pdev)
{
	auto *srd = static_cast<srd_device *>(pci_get_drvdata(pdev));
	vfio_pci_core_unregister_device(&srd->core_device);
	vfio_put_device(&srd->core_device.vdev);
}

const struct pci_driver srd_driver = {
	.name = "sramdev-vfio-pci",
	.spec_name = "sramdev",
	.spec_keys = srd_keys,
	.description = "SRAM device without simdev (STOP_COPY, P2P, PRE_COPY; "
		       "region-write dirty tracking; bug=nodirty|noresend)",
	.probe = srd_probe,
	.remove = srd_remove,
	.err_handler = &srd_err_handlers,
	.driver_managed_dma = true,
};

} // namespace

module_pci_driver(srd_driver)
