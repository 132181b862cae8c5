// SPDX-License-Identifier: GPL-2.0-only
/*
 * Conformance: what a vCPU writes to device memory during pre-copy
 * reaches the destination.
 */
#include <linux/pci_regs.h>

#include "fixture.h"

namespace uvfio::conformance {
namespace {

/* -------- device changes during pre-copy -------- */

/*
 * A BAR the suite may write blindly: a memory BAR its config space marks
 * prefetchable (PCI: reads have no side effects and writes may be merged,
 * that is, memory and not registers), whose region reads and writes
 * (VFIO_REGION_INFO_FLAG_READ|WRITE). Anything else (I/O BARs, register
 * BARs, doorbells) is never written: a driver opts a BAR out by not
 * marking it prefetchable, which PCI requires of a BAR with side effects
 * anyway (driver-guide.md, "What the conformance suite writes").
 */
struct BlindBar {
	__u32 index;
	__u64 offset;	/* of the region in the device fd */
	__u64 size;
	bool mmap;	/* VFIO_REGION_INFO_FLAG_MMAP */
};

/* Write and compare at most this much of a BAR (device memory may be big). */
constexpr __u64 kBlindSpan = 16 << 20;
constexpr size_t kBlindWrite = 64;	/* bytes per write */
constexpr unsigned kBlindWritesPerRound = 16;

std::vector<BlindBar> blind_bars(Transport &t, int fd)
{
	std::vector<BlindBar> v;
	struct vfio_region_info cfg = {};
	cfg.argsz = sizeof(cfg);
	cfg.index = VFIO_PCI_CONFIG_REGION_INDEX;
	if (t.ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &cfg))
		return v;
	for (__u32 i = VFIO_PCI_BAR0_REGION_INDEX; i <= VFIO_PCI_BAR5_REGION_INDEX;
	     i++) {
		struct vfio_region_info ri = {};
		ri.argsz = sizeof(ri);
		ri.index = i;
		if (t.ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri) || !ri.size)
			continue;
		const __u32 rw = VFIO_REGION_INFO_FLAG_READ |
				 VFIO_REGION_INFO_FLAG_WRITE;
		if ((ri.flags & rw) != rw)
			continue;
		__u32 bar = 0;
		if (t.pread(fd, &bar, 4,
			    static_cast<off_t>(cfg.offset + PCI_BASE_ADDRESS_0 + 4 * i)) != 4)
			continue;
		if ((bar & PCI_BASE_ADDRESS_SPACE_IO) || !(bar & PCI_BASE_ADDRESS_MEM_PREFETCH))
			continue;
		v.push_back({i, ri.offset, std::min<__u64>(ri.size, kBlindSpan),
			     (ri.flags & VFIO_REGION_INFO_FLAG_MMAP) != 0});
	}
	return v;
}

/*
 * Changes a device's blind-writable BARs in rounds, through pwrite on the
 * region and through an mmap of it where it has one, and remembers what
 * it wrote last at every offset.
 */
class BarWriter
{
public:
	/* via_mmap: every write through an mmap of the BAR, else by pwrite. */
	BarWriter(Transport &t, int fd, std::vector<BlindBar> bars, bool via_mmap)
		: t_(t), fd_(fd), bars_(std::move(bars))
	{
		for (const BlindBar &b : bars_) {
			void *p = nullptr;
			if (via_mmap && b.mmap &&
			    !t_.mmap(fd_, static_cast<off_t>(b.offset), b.size,
				     PROT_READ | PROT_WRITE, &p))
				maps_.push_back(static_cast<unsigned char *>(p));
			else
				maps_.push_back(nullptr);
		}
	}
	~BarWriter()
	{
		for (size_t i = 0; i < bars_.size(); i++)
			if (maps_[i])
				munmap(maps_[i], bars_[i].size);
	}
	bool mapped() const
	{
		return std::any_of(maps_.begin(), maps_.end(),
				   [](unsigned char *p) { return p; });
	}

	/*
	 * One round: kBlindWritesPerRound writes of kBlindWrite bytes per
	 * BAR, spread over its pages (a new page set each round, and pages
	 * of earlier rounds again), through the mmap where the writer has
	 * one. Failures are the test's.
	 */
	void round()
	{
		n_++;
		for (size_t b = 0; b < bars_.size(); b++) {
			const BlindBar &bar = bars_[b];
			const __u64 slots = bar.size / kBlindWrite;
			if (!slots)
				continue;
			for (unsigned k = 0; k < kBlindWritesPerRound; k++) {
				/* Pages spread by a prime stride; some revisited. */
				__u64 page = (n_ * 7919 + k * 104729) %
					     std::max<__u64>(bar.size / kPage, 1);
				__u64 off = (page * kPage + (k + n_) % 64 *
					     kBlindWrite) % (slots * kBlindWrite);
				unsigned char buf[kBlindWrite];
				for (size_t i = 0; i < sizeof(buf); i++)
					buf[i] = static_cast<unsigned char>(
						(0x5a ^ (n_ * 37 + k * 11 + i)) | 1);
				bool via_mmap = maps_[b] != nullptr;
				if (via_mmap) {
					std::memcpy(maps_[b] + off, buf, sizeof(buf));
				} else {
					ASSERT_EQ(t_.pwrite(fd_, buf, sizeof(buf),
							    static_cast<off_t>(
								    bar.offset + off)),
						  ssize_t(sizeof(buf)))
						<< "BAR" << bar.index << " pwrite at 0x"
						<< std::hex << off;
				}
				written_[{b, off}] = bytes(buf, buf + sizeof(buf));
				(via_mmap ? mmap_writes_ : pwrite_writes_)++;
			}
		}
	}

	const std::vector<BlindBar> &bars() const { return bars_; }
	const std::map<std::pair<size_t, __u64>, bytes> &written() const
	{
		return written_;
	}
	unsigned pwrites() const { return pwrite_writes_; }
	unsigned mmap_writes() const { return mmap_writes_; }

private:
	Transport &t_;
	int fd_;
	std::vector<BlindBar> bars_;
	std::vector<unsigned char *> maps_;
	std::map<std::pair<size_t, __u64>, bytes> written_;
	unsigned n_ = 0;
	unsigned pwrite_writes_ = 0, mmap_writes_ = 0;
};

/* Read a region span by pread; false on a short read. */
bool read_span(Transport &t, int fd, __u64 off, __u64 len, bytes *out)
{
	out->assign(len, 0);
	for (__u64 done = 0; done < len;) {
		size_t n = static_cast<size_t>(std::min<__u64>(len - done, 1 << 20));
		ssize_t r = t.pread(fd, out->data() + done, n,
				    static_cast<off_t>(off + done));
		if (r <= 0)
			return false;
		done += static_cast<__u64>(r);
	}
	return true;
}

// Contract: a device changed while it is in PRE_COPY (and PRE_COPY_P2P
// where offered), between the pre-copy reads and after them, arrives
// whole: the stream read through PRE_COPY and then STOP_COPY, loaded into
// a second device, gives the state the first one stopped with. The
// changes are region writes (pwrite on the device fd) to the BARs the
// suite may write blindly (prefetchable memory BARs; see blind_bars): the
// driver sees each, and must mark what it changes dirty and send it again
// in a later pre-copy read or at STOP_COPY. Compared: every offset written
// holds the last value written, on the source and on the destination; the
// written BARs read the same on both (by pread: they are prefetchable,
// reads have no side effects); and the driver's state digest where it has
// one. On a real device (no digest) the destination is the peer, or the
// device itself without one, and the source's stream saved again before
// the load must equal the loaded device's (as in RoundTripRestoresTheState);
// a device with no BAR to write is still migrated through pre-copy and
// compared so.
TEST_P(Conformance, PreCopyKeepsRegionWrites)
{
	ASSERT_NO_FATAL_FAILURE(precopy_writes(false));
}

// Contract: as PreCopyKeepsRegionWrites, with the writes made through an
// mmap of each mmap-able blind-writable BAR, as a vCPU makes them. The
// driver does not see these: it must send such memory again at STOP_COPY
// (all of it once it has been mapped, as simnic does, or what a tracker
// of its own found changed). A device with no such BAR is still migrated
// through pre-copy and compared, as in PreCopyKeepsRegionWrites.
TEST_P(Conformance, PreCopyKeepsMmapWrites)
{
	ASSERT_NO_FATAL_FAILURE(precopy_writes(true));
}

} // namespace

void Conformance::precopy_writes(bool via_mmap)
{
	if (!has(VFIO_MIGRATION_PRE_COPY))
		GTEST_SKIP() << "no PRE_COPY";
	Device &s = *src_dev_;
	std::vector<BlindBar> bars = blind_bars(*t_, src_fd());
	if (via_mmap) {
		bars.erase(std::remove_if(bars.begin(), bars.end(),
					  [](const BlindBar &b) { return !b.mmap; }),
			   bars.end());
	}
	std::string which;
	for (const BlindBar &b : bars)
		which += (which.empty() ? "BAR" : " BAR") + std::to_string(b.index) +
			 (b.mmap ? "(mmap)" : "");
	RecordProperty("bars_written", which.empty() ? "none: no prefetchable "
				       "read/write memory BAR" : which);

	BarWriter w(*t_, src_fd(), bars, via_mmap);
	if (via_mmap && !bars.empty() && !w.mapped())
		GTEST_SKIP() << "the mmap-able BARs did not map whole (a sparse "
				"mmap?): nothing written through an mmap";
	int fd;
	ASSERT_NO_FATAL_FAILURE(open_stream(s, PRE_COPY, &fd));
	bytes stream;
	const __u64 limit = 1ULL << 31;
	/* Read to the pause, change, read again: four passes. */
	auto pass = [&](const char *where) {
		int ret = read_stream(*t_, fd, &stream, kQemuRead, limit);
		EXPECT_TRUE(precopy_pause(ret, real()))
			<< where << ": read at pre-copy's temporary end: " << ret;
	};
	ASSERT_NO_FATAL_FAILURE(w.round());	/* before the initial data too */
	for (int i = 0; i < 4; i++) {
		ASSERT_NO_FATAL_FAILURE(pass("PRE_COPY"));
		ASSERT_NO_FATAL_FAILURE(w.round());
	}
	if (has(VFIO_MIGRATION_P2P)) {
		ASSERT_EQ(s.set_state(PRE_COPY_P2P), 0);
		ASSERT_NO_FATAL_FAILURE(w.round());
		ASSERT_NO_FATAL_FAILURE(pass("PRE_COPY_P2P"));
		ASSERT_NO_FATAL_FAILURE(w.round());	/* unread at STOP_COPY */
	}
	ASSERT_EQ(s.set_state(STOP_COPY), 0);
	EXPECT_EQ(read_stream(*t_, fd, &stream, kQemuRead, limit), 0);
	EXPECT_EQ(t_->close(fd), 0);
	ASSERT_EQ(s.set_state(STOP), 0);
	RecordProperty("writes", std::to_string(w.pwrites()) + " by pwrite, " +
				 std::to_string(w.mmap_writes()) + " through mmap");

	/*
	 * The source as it stopped, taken before the load: a real device
	 * without a peer loads its own stream (a lost write then shows as
	 * the old content coming back).
	 */
	__u64 want = 0;
	int dret = digest(s, &want);
	if (dret != -EOPNOTSUPP) {
		ASSERT_EQ(dret, 0) << "the state digest failed in STOP";
	}
	const bool has_digest = dret == 0;
	if (bars.empty() && !real() && !has_digest)
		GTEST_SKIP() << "nothing changed and nothing to compare: no "
				"prefetchable read/write memory BAR and no "
				"state digest (uvfio_set_state_digest)";
	const std::vector<BlindBar> &wb = w.bars();
	std::vector<bytes> src_bar(wb.size()), dst_bar(wb.size());
	for (size_t b = 0; b < wb.size(); b++) {
		ASSERT_TRUE(read_span(*t_, src_fd(), wb[b].offset, wb[b].size,
				      &src_bar[b]))
			<< "BAR" << wb[b].index << " does not read back";
	}
	bytes resaved;
	if (!has_digest && real()) {
		ASSERT_NO_FATAL_FAILURE(save(s, &resaved));
	}

	Device &d = dst();
	ASSERT_EQ(load(d, stream), 0);
	for (size_t b = 0; b < wb.size(); b++) {
		ASSERT_TRUE(read_span(*t_, d.fd(), wb[b].offset, wb[b].size,
				      &dst_bar[b]))
			<< "BAR" << wb[b].index << " does not read back";
	}

	/* What was written last is there, on both sides. */
	unsigned lost_src = 0, lost_dst = 0;
	for (const auto &[where, data] : w.written()) {
		auto [b, off] = where;
		if (std::memcmp(src_bar[b].data() + off, data.data(), data.size()) &&
		    lost_src++ < 3)
			ADD_FAILURE() << "BAR" << wb[b].index << " at 0x" << std::hex
				      << off << ": the source does not hold what "
				      "was written there (not memory?)";
		if (std::memcmp(dst_bar[b].data() + off, data.data(), data.size()) &&
		    lost_dst++ < 5)
			ADD_FAILURE() << "BAR" << wb[b].index << " at 0x" << std::hex
				      << off << " (page 0x" << off / kPage
				      << "): written during pre-copy, not on the "
				      "destination: the write was not marked dirty, "
				      "or the dirty page was not sent again";
	}
	EXPECT_EQ(lost_src, 0u) << "of " << w.written().size() << " writes";
	EXPECT_EQ(lost_dst, 0u) << "of " << w.written().size() << " writes";
	for (size_t b = 0; b < wb.size(); b++) {
		auto mm = std::mismatch(src_bar[b].begin(), src_bar[b].end(),
					dst_bar[b].begin());
		EXPECT_TRUE(mm.first == src_bar[b].end())
			<< "BAR" << wb[b].index << " differs between source and "
			"destination first at 0x" << std::hex
			<< (mm.first - src_bar[b].begin());
	}

	if (has_digest) {
		__u64 got = 0;
		ASSERT_EQ(digest(d, &got), 0);
		EXPECT_EQ(got, want)
			<< "the loaded device's state digest differs from the "
			"source's";
	} else if (real()) {
		bytes loaded;
		ASSERT_NO_FATAL_FAILURE(save(d, &loaded));
		EXPECT_TRUE(loaded == resaved)
			<< "the loaded device saves a different stream ("
			<< loaded.size() << " bytes, the source " << resaved.size()
			<< ")";
	} else {
		RecordProperty("state_digest", "none: BAR contents compared only");
	}
	EXPECT_EQ(d.set_state(RUNNING), 0);
	EXPECT_EQ(s.set_state(RUNNING), 0);
}

} // namespace uvfio::conformance
