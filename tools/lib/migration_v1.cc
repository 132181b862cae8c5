// SPDX-License-Identifier: GPL-2.0-only
/*
 * The v1 migration client: the migration region found by its type
 * capability, device_state read-modify-write, and the KABI's saving and
 * resuming sequences as streams, through a Transport only.
 */
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <uvfio/tools/migration_v1.h>

#include "lib_priv.h"

namespace uvfio::tools {

using detail::errstr;

namespace {

/* Numbers into one-line messages. */
template <typename T> std::string str(T v)
{
	return std::to_string(v);
}

/*
 * GET_REGION_INFO for one index, the buffer grown to the argsz the answer
 * asks for (the capabilities do not fit otherwise). In 8-byte words, so
 * the capability structs in it are aligned as the uAPI lays them out.
 */
int region_info(Transport &t, int fd, __u32 index, std::vector<__u64> *buf)
{
	size_t size = sizeof(struct vfio_region_info);
	for (int tries = 0; tries < 4; tries++) {
		buf->assign((size + 7) / 8, 0);
		auto *ri = reinterpret_cast<struct vfio_region_info *>(buf->data());
		ri->argsz = __u32(buf->size() * 8);
		ri->index = index;
		int ret = t.ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, ri);
		if (ret)
			return ret;
		if (ri->argsz <= buf->size() * 8)
			return 0;
		size = ri->argsz;
	}
	return -EPROTO;	/* it asked for more every time */
}

} // namespace

/* -------- states -------- */

int v1_bits_of_state(__u32 state, bool ndma, __u32 *bits)
{
	switch (state) {
	case VFIO_DEVICE_STATE_STOP:
		*bits = V1_STOP;
		return 0;
	case VFIO_DEVICE_STATE_RUNNING:
		*bits = V1_RUNNING;
		return 0;
	case VFIO_DEVICE_STATE_STOP_COPY:
		*bits = V1_SAVING;
		return 0;
	case VFIO_DEVICE_STATE_PRE_COPY:
		*bits = V1_RUNNING | V1_SAVING;
		return 0;
	case VFIO_DEVICE_STATE_RESUMING:
		*bits = V1_RESUMING;
		return 0;
	case VFIO_DEVICE_STATE_RUNNING_P2P:
		*bits = V1_RUNNING | V1_NDMA;
		return ndma ? 0 : -EOPNOTSUPP;
	case VFIO_DEVICE_STATE_PRE_COPY_P2P:
		*bits = V1_RUNNING | V1_SAVING | V1_NDMA;
		return ndma ? 0 : -EOPNOTSUPP;
	default:	/* ERROR is the device's to enter, never written */
		return -EINVAL;
	}
}

bool v1_state_of_bits(__u32 bits, __u32 *state)
{
	const __u32 m = bits & V1_STATE_MASK;
	const bool ndma = bits & V1_NDMA;
	switch (m) {
	case V1_STOP:
		*state = VFIO_DEVICE_STATE_STOP;
		return true;
	case V1_RUNNING:
		*state = ndma ? VFIO_DEVICE_STATE_RUNNING_P2P
			      : VFIO_DEVICE_STATE_RUNNING;
		return true;
	case V1_SAVING:
		*state = VFIO_DEVICE_STATE_STOP_COPY;
		return true;
	case V1_RUNNING | V1_SAVING:
		*state = ndma ? VFIO_DEVICE_STATE_PRE_COPY_P2P
			      : VFIO_DEVICE_STATE_PRE_COPY;
		return true;
	case V1_RESUMING:
		*state = VFIO_DEVICE_STATE_RESUMING;
		return true;
	case V1_ERROR:
		*state = VFIO_DEVICE_STATE_ERROR;
		return true;
	default:	/* RESUMING with RUNNING: invalid */
		return false;
	}
}

std::string v1_bits_text(__u32 bits)
{
	std::string s;
	auto add = [&](const char *n) { s += s.empty() ? n : std::string("|") + n; };
	if (bits & V1_RUNNING)
		add("RUNNING");
	if (bits & V1_SAVING)
		add("SAVING");
	if (bits & V1_RESUMING)
		add("RESUMING");
	if (bits & V1_NDMA)
		add("NDMA");
	if (s.empty())
		s = "STOP";
	if (__u32 rest = bits & ~(V1_STATE_MASK | V1_NDMA)) {
		char hex[16];
		std::snprintf(hex, sizeof(hex), "|%#x", rest);
		s += hex;
	}
	return s;
}

/* -------- the region -------- */

int find_v1_region(Transport &t, int fd, V1Region *r, std::string *why)
{
	struct vfio_device_info info = {};
	info.argsz = sizeof(info);
	int ret = t.ioctl(fd, VFIO_DEVICE_GET_INFO, &info);
	if (ret) {
		*why = "VFIO_DEVICE_GET_INFO: " + errstr(ret);
		return ret;
	}
	std::vector<__u64> buf;
	for (__u32 i = 0; i < info.num_regions; i++) {
		if (region_info(t, fd, i, &buf))
			continue;	/* an index it does not answer */
		const char *base = reinterpret_cast<const char *>(buf.data());
		const size_t end = buf.size() * 8;
		struct vfio_region_info ri;
		std::memcpy(&ri, base, sizeof(ri));
		if (!(ri.flags & VFIO_REGION_INFO_FLAG_CAPS) || !ri.cap_offset)
			continue;
		V1Region cand;
		bool is_mig = false, sparse = false;
		unsigned hops = 0;
		for (__u32 off = ri.cap_offset; off; hops++) {
			struct vfio_info_cap_header h;
			if (hops > 64 || off < sizeof(ri) ||
			    off > end - sizeof(h)) {
				*why = "region " + str(i) + ": capability "
				       "chain broken at offset " + str(off) +
				       " (buffer " + str(end) + " bytes)";
				return -EPROTO;
			}
			std::memcpy(&h, base + off, sizeof(h));
			if (h.id == VFIO_REGION_INFO_CAP_TYPE &&
			    off + sizeof(struct vfio_region_info_cap_type) <= end) {
				struct vfio_region_info_cap_type ct;
				std::memcpy(&ct, base + off, sizeof(ct));
				is_mig = ct.type == V1_REGION_TYPE &&
					 ct.subtype == V1_REGION_SUBTYPE;
			} else if (h.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP &&
				   off + sizeof(struct vfio_region_info_cap_sparse_mmap) <= end) {
				struct vfio_region_info_cap_sparse_mmap sm;
				std::memcpy(&sm, base + off, sizeof(sm));
				size_t at = off + sizeof(sm);
				if (at + size_t(sm.nr_areas) *
						 sizeof(struct vfio_region_sparse_mmap_area) >
				    end) {
					*why = "region " + str(i) + ": " +
					       str(sm.nr_areas) + " sparse mmap "
					       "areas overrun the buffer";
					return -EPROTO;
				}
				sparse = true;
				for (__u32 a = 0; a < sm.nr_areas; a++) {
					struct vfio_region_sparse_mmap_area ar;
					std::memcpy(&ar, base + at + a * sizeof(ar),
						    sizeof(ar));
					if (ar.size)
						cand.mmap_areas.emplace_back(ar.offset,
									     ar.size);
				}
			} else if (h.id == V1_CAP_NDMA) {
				cand.ndma = true;
			}
			off = h.next;
		}
		if (!is_mig)
			continue;
		cand.index = i;
		cand.offset = ri.offset;
		cand.size = ri.size;
		cand.flags = ri.flags;
		/* mmap-able without a sparse capability: all of it. */
		if (!(ri.flags & VFIO_REGION_INFO_FLAG_MMAP))
			cand.mmap_areas.clear();
		else if (!sparse)
			cand.mmap_areas.emplace_back(0, ri.size);
		const __u32 rw = VFIO_REGION_INFO_FLAG_READ |
				 VFIO_REGION_INFO_FLAG_WRITE;
		if ((ri.flags & rw) != rw || ri.size <= V1Info::SIZE) {
			*why = "the migration region (index " + str(i) +
			       ") is " + str(ri.size) + " bytes" +
			       ((ri.flags & rw) != rw ? ", not read-write" : "") +
			       ": it needs both, and room after the " +
			       str(V1Info::SIZE) +
			       "-byte vfio_device_migration_info";
			return -EPROTO;
		}
		*r = cand;
		return 0;
	}
	*why = "no v1 migration region (no region of type " +
	       str(V1_REGION_TYPE) + ", subtype " + str(V1_REGION_SUBTYPE) +
	       " among its " + str(info.num_regions) + ")";
	return -ENODEV;
}

DeviceV1::~DeviceV1()
{
	for (const Map &m : maps_)
		::munmap(m.addr, m.size);
}

int DeviceV1::open(std::string *why, bool use_mmap)
{
	int ret = find_v1_region(t_, fd_, &r_, why);
	if (ret || !use_mmap)
		return ret;
	for (auto [off, size] : r_.mmap_areas) {
		if (off + size > r_.size || off + size < off)
			continue;	/* not in the region: not ours to map */
		void *p = nullptr;
		if (t_.mmap(fd_, off_t(r_.offset + off), size,
			    PROT_READ | PROT_WRITE, &p))
			continue;	/* pread/pwrite it is */
		maps_.push_back({off, size, static_cast<char *>(p)});
	}
	return 0;
}

__u64 DeviceV1::mapped_bytes() const
{
	__u64 n = 0;
	for (const Map &m : maps_)
		n += m.size;
	return n;
}

int DeviceV1::read_field(__u64 off, void *v, size_t width)
{
	ssize_t n = t_.pread(fd_, v, width, off_t(r_.offset + off));
	if (n < 0)
		return int(n);
	return size_t(n) == width ? 0 : -EIO;
}

int DeviceV1::write_field(__u64 off, const void *v, size_t width)
{
	ssize_t n = t_.pwrite(fd_, v, width, off_t(r_.offset + off));
	if (n < 0)
		return int(n);
	return size_t(n) == width ? 0 : -EIO;
}

int DeviceV1::read_state(__u32 *bits)
{
	return read_field(V1Info::DEVICE_STATE, bits, sizeof(*bits));
}

int DeviceV1::write_state(__u32 bits)
{
	const __u32 ours = V1_STATE_MASK | (r_.ndma ? V1_NDMA : 0);
	__u32 cur;
	int ret = read_state(&cur);
	if (ret)
		return ret;
	__u32 v = (cur & ~ours) | (bits & ours);
	return write_field(V1Info::DEVICE_STATE, &v, sizeof(v));
}

int DeviceV1::pending_bytes(__u64 *v)
{
	return read_field(V1Info::PENDING_BYTES, v, sizeof(*v));
}

int DeviceV1::data_offset(__u64 *v)
{
	return read_field(V1Info::DATA_OFFSET, v, sizeof(*v));
}

int DeviceV1::data_size(__u64 *v)
{
	return read_field(V1Info::DATA_SIZE, v, sizeof(*v));
}

int DeviceV1::set_data_size(__u64 v)
{
	return write_field(V1Info::DATA_SIZE, &v, sizeof(v));
}

char *DeviceV1::mapped(__u64 off, size_t n) const
{
	for (const Map &m : maps_)
		if (off >= m.off && off - m.off <= m.size &&
		    n <= m.size - (off - m.off))
			return m.addr + (off - m.off);
	return nullptr;
}

__u64 DeviceV1::window_at(__u64 off) const
{
	for (const Map &m : maps_)
		if (off >= m.off && off - m.off < m.size)
			return m.size - (off - m.off);
	return off < r_.size ? r_.size - off : 0;
}

int DeviceV1::read_data(__u64 off, void *buf, size_t n)
{
	if (char *p = mapped(off, n)) {
		std::memcpy(buf, p, n);
		return 0;
	}
	for (size_t done = 0; done < n;) {
		ssize_t r = t_.pread(fd_, static_cast<char *>(buf) + done,
				     n - done, off_t(r_.offset + off + done));
		if (r < 0)
			return int(r);
		if (r == 0)
			return -EIO;
		done += size_t(r);
	}
	return 0;
}

int DeviceV1::write_data(__u64 off, const void *buf, size_t n)
{
	if (char *p = mapped(off, n)) {
		std::memcpy(p, buf, n);
		return 0;
	}
	for (size_t done = 0; done < n;) {
		ssize_t w = t_.pwrite(fd_, static_cast<const char *>(buf) + done,
				      n - done, off_t(r_.offset + off + done));
		if (w < 0)
			return int(w);
		if (w == 0)
			return -EIO;
		done += size_t(w);
	}
	return 0;
}

/* -------- the migration -------- */

int MigrationV1::protocol_error(const std::string &what)
{
	error_ = "v1 region: " + what;
	return -EPROTO;
}

int MigrationV1::get_state(__u32 *state)
{
	__u32 bits;
	int ret = v1_.read_state(&bits);
	if (ret)
		return ret;
	return v1_state_of_bits(bits, state) ? 0 : -EPROTO;
}

int MigrationV1::set_state(__u32 state, Endpoint *stream)
{
	if (stream)
		*stream = {};
	__u32 bits, old;
	int ret = v1_bits_of_state(state, v1_.region().ndma, &bits);
	if (ret)
		return ret;
	if ((ret = v1_.read_state(&old)) || (ret = v1_.write_state(bits)))
		return ret;
	/*
	 * A stream begins where SAVING or RESUMING is set anew; pre-copy's
	 * goes on into stop-and-copy (SAVING kept), as a v2 data fd does.
	 */
	const bool was_saving = (old & V1_STATE_MASK) == V1_SAVING ||
				(old & V1_STATE_MASK) == (V1_SAVING | V1_RUNNING);
	if (bits & V1_SAVING) {
		if (!was_saving) {
			error_.clear();
			save_.start(bits & V1_RUNNING);
			if (stream)
				*stream = {nullptr, -1, &save_};
		} else {
			save_.set_precopy(bits & V1_RUNNING);
		}
	} else if (bits & V1_RESUMING) {
		if ((old & V1_STATE_MASK) != V1_RESUMING) {
			error_.clear();
			if (stream)
				*stream = {nullptr, -1, &resume_};
		}
	}
	return 0;
}

int MigrationV1::precopy_info(const Endpoint &, __u64 *initial, __u64 *dirty)
{
	*initial = 0;
	/* Mid-chunk, a read of pending_bytes would say the chunk is
	 * consumed: report what is left of it instead. */
	if (save_.left()) {
		*dirty = save_.left();
		return 0;
	}
	return v1_.pending_bytes(dirty);
}

int MigrationV1::reset()
{
	save_.start(false);
	return dev_.reset();
}

ssize_t MigrationV1::Saver::read(void *buf, size_t count)
{
	DeviceV1 &v = m_.v1_;
	int ret;
	if (!left_) {
		/* a: pending_bytes (and f: the last chunk is consumed). */
		__u64 pending, off, size;
		if ((ret = v.pending_bytes(&pending)))
			return ret;
		if (!pending)
			return precopy_ ? -ENOMSG : 0;
		/* b: data_offset queues a chunk; c: its size. */
		if ((ret = v.data_offset(&off)) || (ret = v.data_size(&size)))
			return ret;
		const __u64 rsize = v.region().size;
		if (off < V1Info::SIZE || off > rsize || size > rsize - off)
			return m_.protocol_error(
				"data_offset " + str(off) + " + data_size " +
				str(size) + " outside the data area (" +
				str(V1Info::SIZE) + " to " + str(rsize) + ")");
		if (!size) {
			/* Pre-copy: nothing now. Stop-and-copy: the KABI has
			 * data_offset return only once data is there. */
			if (precopy_)
				return -ENOMSG;
			return m_.protocol_error(
				"pending_bytes " + str(pending) +
				" but data_size 0 in stop-and-copy");
		}
		pos_ = off;
		left_ = size;
	}
	/* d: the chunk's bytes, as far as the caller takes them. */
	size_t n = size_t(std::min<__u64>(count, left_));
	if ((ret = v.read_data(pos_, buf, n)))
		return ret;
	pos_ += n;
	left_ -= n;
	return ssize_t(n);
}

ssize_t MigrationV1::Resumer::write(const void *buf, size_t count)
{
	DeviceV1 &v = m_.v1_;
	__u64 off;
	/* a: data_offset; b: the data there; c: data_size. */
	int ret = v.data_offset(&off);
	if (ret)
		return ret;
	const __u64 rsize = v.region().size;
	if (off < V1Info::SIZE || off >= rsize)
		return m_.protocol_error(
			"data_offset " + str(off) + " outside the data area (" +
			str(V1Info::SIZE) + " to " + str(rsize) + ")");
	size_t n = size_t(std::min<__u64>(count, v.window_at(off)));
	if ((ret = v.write_data(off, buf, n)) || (ret = v.set_data_size(n)))
		return ret;
	return ssize_t(n);
}

/* -------- either protocol -------- */

int open_migration(Device &dev, Protocol p, std::unique_ptr<Migration> *out,
		   std::string *why)
{
	if (p == Protocol::V2) {
		*out = std::make_unique<MigrationV2>(dev);
		return 0;
	}
	auto m = std::make_unique<MigrationV1>(dev);
	std::string w;
	int ret = m->open(&w);
	if (ret) {
		if (why)
			*why = w;
		return ret;
	}
	*out = std::move(m);
	return 0;
}

} // namespace uvfio::tools
