// SPDX-License-Identifier: GPL-2.0-only
/*
 * iova_bitmap: argument checks, the windowed walk, bits set across window
 * edges, the user's bitmap reached only through copy_{from,to}_user (bad
 * pointers, unaligned pointers, nothing written past the end), checked
 * against a byte-level model of the bitmap.
 */
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <vector>

#include <uvfio/linux/err.h>
#include <uvfio/linux/iova_bitmap.h>

#include "iova_bitmap_private.h"

namespace {

/* Sets the window size for one test and restores the default after. */
class WindowBytes
{
public:
	explicit WindowBytes(size_t bytes)
	{
		uvfio_iova_bitmap_set_window_bytes(bytes);
	}
	~WindowBytes() { uvfio_iova_bitmap_set_window_bytes(0); }
	WindowBytes(const WindowBytes &) = delete;
	WindowBytes &operator=(const WindowBytes &) = delete;
};

/*
 * The byte-level model: bit i of a bitmap for [iova, last] at 2^shift pages
 * is bit i % 8 of byte i / 8.
 */
struct Model {
	unsigned long iova = 0;
	unsigned long last = 0;
	unsigned int shift = 0;
	unsigned long nbits = 0;
	std::vector<uint8_t> bytes;

	Model(unsigned long iova_, size_t length, unsigned int shift_,
	      const uint8_t *initial)
		: iova(iova_), last(iova_ + (length - 1)), shift(shift_),
		  nbits(((length - 1) >> shift_) + 1),
		  bytes(initial, initial + (nbits + 7) / 8)
	{
	}

	void set(unsigned long a, size_t len)
	{
		if (!len)
			return;
		unsigned long b = len - 1 > ULONG_MAX - a ? ULONG_MAX
							  : a + (len - 1);
		if (a < iova)
			a = iova;
		if (b > last)
			b = last;
		if (a > b)
			return;
		for (unsigned long i = (a - iova) >> shift;
		     i <= (b - iova) >> shift; i++)
			bytes[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
	}
};

/* Length of the inclusive range [a, b], saturated at ULONG_MAX. */
size_t span(unsigned long a, unsigned long b)
{
	return b - a == ULONG_MAX ? ULONG_MAX : b - a + 1;
}

/* What a walk saw: the windows in order. */
struct Walk {
	std::vector<std::pair<unsigned long, size_t>> windows;
};

/* Windows must tile [iova, iova + length) in order. */
void expect_tiling(const Walk &w, unsigned long iova, size_t length)
{
	ASSERT_FALSE(w.windows.empty());
	unsigned long next = iova;
	for (size_t k = 0; k < w.windows.size(); k++) {
		EXPECT_EQ(w.windows[k].first, next) << "window " << k;
		ASSERT_GT(w.windows[k].second, 0u);
		next = w.windows[k].first + (w.windows[k].second - 1);
		if (k + 1 < w.windows.size())
			next++;
	}
	EXPECT_EQ(next, iova + (length - 1));
}

/* A buffer with canary bytes around the bitmap, data at any alignment. */
struct Guarded {
	static constexpr size_t kGuard = 64;
	std::vector<uint8_t> mem;
	size_t off;
	size_t nbytes;

	Guarded(size_t nbytes_, size_t misalign, uint8_t fill) : nbytes(nbytes_)
	{
		mem.assign(kGuard + 8 + nbytes + kGuard, 0xa5);
		/* Start from an 8-aligned address inside mem. */
		uintptr_t base = reinterpret_cast<uintptr_t>(mem.data()) + kGuard;
		off = kGuard + ((8 - base % 8) % 8) + misalign;
		std::memset(mem.data() + off, fill, nbytes);
	}
	uint8_t *data() { return mem.data() + off; }
	u64 *user() { return reinterpret_cast<u64 *>(data()); }
	bool guards_intact() const
	{
		for (size_t i = 0; i < mem.size(); i++)
			if ((i < off || i >= off + nbytes) && mem[i] != 0xa5)
				return false;
		return true;
	}
};

// Contract: length 0 and a page size of 0 or not a power of two are -EINVAL;
// iova + length - 1 past ULONG_MAX is -EOVERFLOW.
TEST(IovaBitmapTest, AllocRejectsBadArguments)
{
	u64 word = 0;
	struct iova_bitmap *b = iova_bitmap_alloc(0, 0, 4096, &word);
	ASSERT_TRUE(IS_ERR(b));
	EXPECT_EQ(PTR_ERR(b), -EINVAL);
	for (unsigned long ps : {0UL, 3UL, 4097UL, 12288UL, ULONG_MAX,
				 (1UL << 63) + 1}) {
		b = iova_bitmap_alloc(0, 4096, ps, &word);
		ASSERT_TRUE(IS_ERR(b)) << ps;
		EXPECT_EQ(PTR_ERR(b), -EINVAL) << ps;
	}
	b = iova_bitmap_alloc(ULONG_MAX - 4095, 4097, 4096, &word);
	ASSERT_TRUE(IS_ERR(b));
	EXPECT_EQ(PTR_ERR(b), -EOVERFLOW);
	b = iova_bitmap_alloc(2, ULONG_MAX, 4096, &word);
	ASSERT_TRUE(IS_ERR(b));
	EXPECT_EQ(PTR_ERR(b), -EOVERFLOW);

	/* The very last byte of the address space is fine. */
	b = iova_bitmap_alloc(ULONG_MAX - 4095, 4096, 4096, &word);
	ASSERT_FALSE(IS_ERR(b));
	iova_bitmap_free(b);
	iova_bitmap_free(nullptr);
}

struct HugeCase {
	unsigned long iova;
	size_t length;
	unsigned long page_size;
	u64 expect; /* the bitmap's only word after setting everything */
};

int set_all(struct iova_bitmap *b, unsigned long iova, size_t length,
	    void *opaque)
{
	static_cast<Walk *>(opaque)->windows.emplace_back(iova, length);
	iova_bitmap_set(b, 0, ULONG_MAX);
	iova_bitmap_set(b, ULONG_MAX, 1);
	return 0;
}

// Contract: page sizes up to 2^63 and lengths up to ULONG_MAX neither
// overflow nor divide by zero: 2^63 pages give 1 or 2 bits, one window.
TEST(IovaBitmapTest, HugePageSizes)
{
	const unsigned long p63 = 1UL << 63;
	const HugeCase cases[] = {
		{0, ULONG_MAX, p63, 0x03},
		{0, p63, p63, 0x01},
		{0, p63 + 1, p63, 0x03},
		{p63, p63, p63, 0x01},
		{p63 - 1, 2, p63, 0x01}, /* bits count from iova, not 0 */
		{1, ULONG_MAX - 1, p63, 0x03},
		{0, ULONG_MAX, 1UL << 62, 0x0f},
		{0, ULONG_MAX, 1UL << 61, 0xff},
		{0, ULONG_MAX, 1UL << 60, 0xffff},
		{0, ULONG_MAX, 1UL << 58, ~0ULL},
	};
	for (const HugeCase &c : cases) {
		SCOPED_TRACE(testing::Message() << std::hex << "iova " << c.iova
						<< " length " << c.length
						<< " page " << c.page_size);
		u64 words[2] = {0, 0};
		struct iova_bitmap *b =
			iova_bitmap_alloc(c.iova, c.length, c.page_size, words);
		ASSERT_FALSE(IS_ERR(b));
		Walk w;
		EXPECT_EQ(iova_bitmap_for_each(b, &w, set_all), 0);
		iova_bitmap_free(b);
		expect_tiling(w, c.iova, c.length);
		EXPECT_EQ(w.windows.size(), 1u);
		EXPECT_EQ(words[0], c.expect);
		EXPECT_EQ(words[1], 0u);
	}
}

// Contract: a 2 MiB bitmap (2^24 pages) set in full comes back all ones and
// the default window walks it in one go.
TEST(IovaBitmapTest, DefaultWindowFullSet)
{
	std::vector<u64> words((1u << 24) / 64 + 1, 0);
	words.back() = 0x1234;
	struct iova_bitmap *b =
		iova_bitmap_alloc(0, ULONG_MAX, 1UL << 40, words.data());
	ASSERT_FALSE(IS_ERR(b));
	Walk w;
	EXPECT_EQ(iova_bitmap_for_each(b, &w, set_all), 0);
	iova_bitmap_free(b);
	expect_tiling(w, 0, ULONG_MAX);
	EXPECT_EQ(w.windows.size(), 1u);
	for (size_t i = 0; i + 1 < words.size(); i++)
		ASSERT_EQ(words[i], ~0ULL) << i;
	EXPECT_EQ(words.back(), 0x1234u);
}

/* State for the randomized walk. */
struct RandomWalk {
	std::mt19937_64 *rng;
	Model *model;
	Walk walk;
	unsigned long iova, last;
	unsigned int shift;
	size_t window_bytes;
	int windows_seen = 0;
	bool bad_window = false;

	unsigned long pick(unsigned long lo, unsigned long hi)
	{
		return std::uniform_int_distribution<unsigned long>(lo, hi)(*rng);
	}
	/* Somewhere in or around the bitmap, sometimes far outside. */
	unsigned long anywhere()
	{
		switch (pick(0, 5)) {
		case 0:
			return pick(0, ULONG_MAX);
		case 1:
			return iova - std::min(iova, pick(0, 4UL << shift));
		case 2:
			return last + std::min(ULONG_MAX - last,
					       pick(0, 4UL << shift));
		default:
			return pick(iova, last);
		}
	}
	void set(struct iova_bitmap *b, unsigned long a, size_t len)
	{
		iova_bitmap_set(b, a, len);
		model->set(a, len);
	}
};

int random_fn(struct iova_bitmap *b, unsigned long wiova, size_t wlen,
	      void *opaque)
{
	auto *r = static_cast<RandomWalk *>(opaque);
	r->walk.windows.emplace_back(wiova, wlen);
	/* A window that is not the last holds exactly window_bytes of bits. */
	unsigned long wlast = wiova + (wlen - 1);
	if (wlast != r->last) {
		unsigned long bits = ((wlast - r->iova) >> r->shift) + 1 -
				     ((wiova - r->iova) >> r->shift);
		if (bits != r->window_bytes * 8 ||
		    ((wiova - r->iova) >> r->shift) % (r->window_bytes * 8))
			r->bad_window = true;
	}
	r->windows_seen++;

	int nsets = static_cast<int>(r->pick(0, 6));
	for (int i = 0; i < nsets; i++) {
		unsigned long a, z;
		switch (r->pick(0, 7)) {
		case 0: /* inside the window */
			a = r->pick(wiova, wlast);
			z = r->pick(a, wlast);
			break;
		case 1: /* from the window past its end */
			a = r->pick(wiova, wlast);
			z = r->pick(wlast, std::max(wlast, r->anywhere()));
			break;
		case 2: /* from before the window into it */
			a = r->pick(std::min(r->anywhere(), wiova), wiova);
			z = r->pick(wiova, wlast);
			break;
		case 3: /* later windows only */
			if (wlast == ULONG_MAX)
				continue;
			a = r->pick(wlast + 1, std::max(wlast + 1, r->anywhere()));
			z = r->pick(a, std::max(a, r->anywhere()));
			break;
		case 4: /* earlier windows only */
			if (wiova == 0)
				continue;
			z = r->pick(std::min(r->anywhere(), wiova - 1), wiova - 1);
			a = r->pick(std::min(r->anywhere(), z), z);
			break;
		case 5: /* anything, possibly wrapping */
			a = r->anywhere();
			r->set(b, a, r->pick(0, ULONG_MAX));
			continue;
		case 6: /* one page around the window edges */
			a = r->pick(0, 1) ? wlast : wiova;
			r->set(b, a, 1);
			continue;
		default: /* single bits anywhere */
			a = r->anywhere();
			z = a;
			break;
		}
		r->set(b, a, span(a, z));
	}
	return 0;
}

std::string hexdump(const uint8_t *p, size_t n)
{
	std::ostringstream s;
	for (size_t i = 0; i < n; i++)
		s << std::hex << (p[i] >> 4) << (p[i] & 15)
		  << (i % 32 == 31 ? "\n" : " ");
	return s.str();
}

// Contract: for random iova/length/page sizes (4K..2^40 and huge), window
// sizes, data alignments and set ranges (inside, across and outside the
// window, past the bitmap), the user's bitmap ends up equal to a byte model
// of "old bits OR set pages", windows tile [iova, iova + length) in order,
// and no byte outside the bitmap changes.
TEST(IovaBitmapTest, RandomizedAgainstModel)
{
	const size_t windows[] = {8, 16, 24, 40, 64, 128, 1000, 0};
	for (unsigned int seed = 1; seed <= 400; seed++) {
		std::mt19937_64 rng(seed);
		auto pick = [&](unsigned long lo, unsigned long hi) {
			return std::uniform_int_distribution<unsigned long>(
				lo, hi)(rng);
		};
		unsigned int shift = pick(0, 9) ? static_cast<unsigned int>(
							  pick(12, 40))
						: static_cast<unsigned int>(
							  pick(41, 63));
		unsigned long ps = 1UL << shift;
		unsigned long max_bits =
			std::min<unsigned long>(3000, (ULONG_MAX >> shift) + 1);
		unsigned long nbits = pick(1, max_bits);
		unsigned long base = (nbits - 1) << shift;
		size_t length = base + pick(1, std::min(ps, ULONG_MAX - base));
		unsigned long iova;
		switch (pick(0, 2)) {
		case 0:
			iova = 0;
			break;
		case 1:
			iova = pick(0, (ULONG_MAX - (length - 1)) >> shift)
			       << shift;
			break;
		default:
			iova = pick(0, ULONG_MAX - (length - 1));
			break;
		}
		size_t wb = windows[pick(0, std::size(windows) - 1)];
		size_t misalign = pick(0, 7);
		size_t nbytes = (nbits + 7) / 8;
		SCOPED_TRACE(testing::Message()
			     << "seed " << seed << std::hex << " iova " << iova
			     << " length " << length << " shift " << std::dec
			     << shift << " nbits " << nbits << " window " << wb
			     << " misalign " << misalign);

		Guarded g(nbytes, misalign, 0);
		for (size_t i = 0; i < nbytes; i++)
			g.data()[i] = pick(0, 3) ? 0 : static_cast<uint8_t>(
							       pick(0, 255));
		Model model(iova, length, shift, g.data());
		ASSERT_EQ(model.nbits, nbits);

		WindowBytes knob(wb);
		struct iova_bitmap *b =
			iova_bitmap_alloc(iova, length, ps, g.user());
		ASSERT_FALSE(IS_ERR(b));
		RandomWalk r;
		r.rng = &rng;
		r.model = &model;
		r.iova = iova;
		r.last = iova + (length - 1);
		r.shift = shift;
		r.window_bytes = wb ? wb : 2u << 20;
		int ret = iova_bitmap_for_each(b, &r, random_fn);
		iova_bitmap_free(b);
		ASSERT_EQ(ret, 0);
		expect_tiling(r.walk, iova, length);
		EXPECT_FALSE(r.bad_window);
		EXPECT_EQ(static_cast<size_t>(r.windows_seen),
			  (nbytes + r.window_bytes - 1) / r.window_bytes);
		ASSERT_TRUE(g.guards_intact());
		ASSERT_EQ(std::memcmp(g.data(), model.bytes.data(), nbytes), 0)
			<< "got\n"
			<< hexdump(g.data(), nbytes) << "want\n"
			<< hexdump(model.bytes.data(), nbytes);
	}
}

/* Runs of words handed to iova_bitmap_set_bits() from each window. */
struct BitsWalk {
	std::mt19937_64 *rng;
	Model *model;
	unsigned long iova;
	unsigned int shift;
	unsigned long nbits;
	bool take = false;	/* iova_bitmap_take_bits() half the time */
	bool leftover = false;	/* a taken word was not zero after */
};

int bits_fn(struct iova_bitmap *b, unsigned long win_iova, size_t,
	    void *opaque)
{
	auto *w = static_cast<BitsWalk *>(opaque);
	auto pick = [&](unsigned long lo, unsigned long hi) {
		return std::uniform_int_distribution<unsigned long>(lo,
								   hi)(*w->rng);
	};
	for (int n = pick(0, 4); n > 0; n--) {
		/* The bitmap's page size mostly; else a smaller or larger. */
		unsigned int sh = w->shift;
		if (!pick(0, 3))
			sh = static_cast<unsigned int>(pick(w->shift - 3,
							    w->shift + 2));
		unsigned long ps = 1UL << sh;
		/* Around this window, before the bitmap even; aligned or not. */
		long page = static_cast<long>(pick(0, w->nbits + 200)) - 100 +
			    static_cast<long>((win_iova - w->iova) >> w->shift);
		unsigned long run = w->iova + page * (1L << w->shift);
		if (!pick(0, 4))
			run += pick(1, ps - 1);
		std::vector<u64> bits(pick(1, 12));
		for (auto &x : bits)
			x = pick(0, 2) ? w->rng->operator()() &
						 w->rng->operator()()
				       : pick(0, 1) ? 0 : ~0ULL;
		u64 nb = pick(1, bits.size() * 64);
		/*
		 * A tracker's chunk handed over: often from the window's
		 * first bit or a byte boundary after it, whole words, the
		 * bitmap's page size (the one-pass case).
		 */
		if (w->take && pick(0, 1)) {
			ps = 1UL << w->shift;
			run = win_iova + pick(0, 4) * 8 * ps;
			nb = bits.size() * 64;
		}
		std::vector<u64> want = bits;
		if (w->take && pick(0, 1)) {
			iova_bitmap_take_bits(b, run, ps, bits.data(), nb);
			for (u64 k = 0; k < (nb + 63) / 64; k++)
				w->leftover |= bits[k] != 0;
		} else {
			iova_bitmap_set_bits(b, run, ps, bits.data(), nb);
		}
		for (u64 i = 0; i < nb; i++)
			if (want[i / 64] >> (i % 64) & 1)
				w->model->set(run + i * ps, ps);
	}
	return 0;
}

// Contract: iova_bitmap_set_bits() marks exactly what iova_bitmap_set()
// of each set bit's page would: runs inside the window (at any bit offset,
// any user alignment), across its edges, before the bitmap, for later
// windows, at another page size, at an IOVA not page-aligned; bits past
// nbits are ignored and nothing past the bitmap's bytes is written.
// iova_bitmap_take_bits() marks the same and leaves every word it was
// given zero, with its vector loop and with the portable one.
void set_bits_against_model(bool take)
{
	const size_t windows[] = {8, 16, 24, 40, 64, 128, 1000, 0};
	for (unsigned int seed = 1; seed <= 300; seed++) {
		std::mt19937_64 rng(seed);
		auto pick = [&](unsigned long lo, unsigned long hi) {
			return std::uniform_int_distribution<unsigned long>(
				lo, hi)(rng);
		};
		unsigned int shift = static_cast<unsigned int>(pick(12, 16));
		unsigned long ps = 1UL << shift;
		unsigned long nbits = pick(1, 3000);
		size_t length = ((nbits - 1) << shift) + pick(1, ps);
		unsigned long iova = (pick(128, 1UL << 30) << shift) +
				     (pick(0, 1) ? 0 : pick(1, ps - 1));
		size_t wb = windows[pick(0, std::size(windows) - 1)];
		size_t misalign = pick(0, 7);
		size_t nbytes = (nbits + 7) / 8;
		SCOPED_TRACE(testing::Message()
			     << "seed " << seed << std::hex << " iova " << iova
			     << std::dec << " shift " << shift << " nbits "
			     << nbits << " window " << wb << " misalign "
			     << misalign);

		Guarded g(nbytes, misalign, 0);
		for (size_t i = 0; i < nbytes; i++)
			g.data()[i] = pick(0, 3) ? 0 : static_cast<uint8_t>(
							       pick(0, 255));
		Model model(iova, length, shift, g.data());
		WindowBytes knob(wb);
		struct iova_bitmap *b =
			iova_bitmap_alloc(iova, length, ps, g.user());
		ASSERT_FALSE(IS_ERR(b));
		BitsWalk w = {&rng, &model, iova, shift, nbits, take};
		int ret = iova_bitmap_for_each(b, &w, bits_fn);
		iova_bitmap_free(b);
		ASSERT_EQ(ret, 0);
		ASSERT_FALSE(w.leftover) << "take_bits left a bit set";
		ASSERT_TRUE(g.guards_intact());
		ASSERT_EQ(std::memcmp(g.data(), model.bytes.data(), nbytes), 0)
			<< "got\n"
			<< hexdump(g.data(), nbytes) << "want\n"
			<< hexdump(model.bytes.data(), nbytes);
	}
}

TEST(IovaBitmapTest, SetBitsAgainstModel)
{
	set_bits_against_model(false);
}

TEST(IovaBitmapTest, TakeBitsAgainstModel)
{
	set_bits_against_model(true);
}

TEST(IovaBitmapTest, TakeBitsPortableLoopAgainstModel)
{
	uvfio_iova_bitmap_force_generic(true);
	set_bits_against_model(true);
	uvfio_iova_bitmap_force_generic(false);
}

/* Sets a list of page indexes, all from the first window. */
struct SetList {
	unsigned long iova;
	unsigned int shift;
	std::vector<std::pair<unsigned long, unsigned long>> pages; /* first, n */
	int calls = 0;
};

int set_list_first_window(struct iova_bitmap *b, unsigned long, size_t,
			  void *opaque)
{
	auto *s = static_cast<SetList *>(opaque);
	if (s->calls++)
		return 0;
	for (auto [first, n] : s->pages)
		iova_bitmap_set(b, s->iova + (first << s->shift),
				n << s->shift);
	return 0;
}

// Contract: bits set from the first window for many later windows (more
// disjoint ranges than the pending list holds, in any order, overlapping)
// all land, and the walk still visits every window.
TEST(IovaBitmapTest, SetAheadManyRanges)
{
	WindowBytes knob(8);
	const unsigned long nbits = 64 * 40;
	std::vector<u64> words(40, 0);
	SetList s;
	s.iova = 0x100000;
	s.shift = 12;
	std::mt19937_64 rng(7);
	std::vector<u64> want(40, 0);
	for (int i = 0; i < 200; i++) {
		unsigned long first = rng() % nbits;
		unsigned long n = 1 + rng() % (i % 3 ? 3 : 150);
		s.pages.emplace_back(first, n);
		for (unsigned long p = first; p < first + n && p < nbits; p++)
			want[p / 64] |= 1ULL << (p % 64);
	}
	struct iova_bitmap *b =
		iova_bitmap_alloc(s.iova, nbits << 12, 4096, words.data());
	ASSERT_FALSE(IS_ERR(b));
	EXPECT_EQ(iova_bitmap_for_each(b, &s, set_list_first_window), 0);
	iova_bitmap_free(b);
	EXPECT_EQ(s.calls, 40);
	EXPECT_EQ(words, want);
}

int set_earlier(struct iova_bitmap *b, unsigned long iova, size_t,
		void *opaque)
{
	auto *w = static_cast<Walk *>(opaque);
	w->windows.emplace_back(iova, 0);
	/* From the third window, mark page 1 of the first one. */
	if (w->windows.size() == 3)
		iova_bitmap_set(b, 0x1000, 0x1000);
	return 0;
}

// Contract: a bit for an earlier, already written back window is set in the
// user's bitmap, not dropped.
TEST(IovaBitmapTest, SetBehindWindow)
{
	WindowBytes knob(8);
	u64 words[4] = {0, 0, 0, 0};
	struct iova_bitmap *b = iova_bitmap_alloc(0, 256 * 4096, 4096, words);
	ASSERT_FALSE(IS_ERR(b));
	Walk w;
	EXPECT_EQ(iova_bitmap_for_each(b, &w, set_earlier), 0);
	iova_bitmap_free(b);
	EXPECT_EQ(w.windows.size(), 4u);
	EXPECT_EQ(words[0], 2u);
	EXPECT_EQ(words[1] | words[2] | words[3], 0u);
}

int nothing(struct iova_bitmap *, unsigned long, size_t, void *opaque)
{
	if (opaque)
		++*static_cast<int *>(opaque);
	return 0;
}

// Contract: bits already in the user's bitmap survive a walk: an empty
// report leaves it as it was, a report only adds bits.
TEST(IovaBitmapTest, PreservesExistingBits)
{
	WindowBytes knob(16);
	u64 words[5] = {0x5a5a5a5a5a5a5a5aULL, 0x8000000000000001ULL, 0,
			~0ULL, 0x0123456789abcdefULL};
	u64 orig[5];
	std::memcpy(orig, words, sizeof(words));
	struct iova_bitmap *b = iova_bitmap_alloc(0, 320 * 4096, 4096, words);
	ASSERT_FALSE(IS_ERR(b));
	int calls = 0;
	EXPECT_EQ(iova_bitmap_for_each(b, &calls, nothing), 0);
	EXPECT_EQ(calls, 3);
	EXPECT_EQ(std::memcmp(words, orig, sizeof(words)), 0);

	/* Set pages 64..127 and 4 again. */
	EXPECT_EQ(iova_bitmap_for_each(
			  b, nullptr,
			  [](struct iova_bitmap *bm, unsigned long iova,
			     size_t, void *) {
				  if (iova == 0) {
					  iova_bitmap_set(bm, 64 * 4096,
							  64 * 4096);
					  iova_bitmap_set(bm, 4 * 4096, 1);
				  }
				  return 0;
			  }),
		  0);
	iova_bitmap_free(b);
	EXPECT_EQ(words[0], orig[0] | 0x10);
	EXPECT_EQ(words[1], ~0ULL);
	EXPECT_EQ(words[2], 0u);
	EXPECT_EQ(words[3], ~0ULL);
	EXPECT_EQ(words[4], orig[4]);
}

// Contract: with data not 8-byte aligned, bit i still lands in bit i % 8 of
// the byte at data + i / 8, for every misalignment and window size.
TEST(IovaBitmapTest, UnalignedData)
{
	for (size_t wb : {8, 24, 0}) {
		for (size_t mis = 1; mis < 8; mis++) {
			SCOPED_TRACE(testing::Message() << "window " << wb
							<< " misalign " << mis);
			WindowBytes knob(wb);
			const unsigned long nbits = 333;
			Guarded g(42, mis, 0);
			struct iova_bitmap *b = iova_bitmap_alloc(
				0x7000, nbits * 4096, 4096, g.user());
			ASSERT_FALSE(IS_ERR(b));
			static const unsigned long pages[] = {0,  1,  7,   8,
							      63, 64, 65,  200,
							      255, 256, 330, 332};
			ASSERT_EQ(iova_bitmap_for_each(
					  b, nullptr,
					  [](struct iova_bitmap *bm,
					     unsigned long iova, size_t,
					     void *) {
						  if (iova != 0x7000)
							  return 0;
						  for (unsigned long p : pages)
							  iova_bitmap_set(
								  bm,
								  0x7000 + p * 4096,
								  4096);
						  return 0;
					  }),
				  0);
			iova_bitmap_free(b);
			std::vector<uint8_t> want(42, 0);
			for (unsigned long p : pages)
				want[p / 8] |= static_cast<uint8_t>(1u << (p % 8));
			EXPECT_EQ(std::memcmp(g.data(), want.data(), 42), 0)
				<< hexdump(g.data(), 42);
			EXPECT_TRUE(g.guards_intact());
		}
	}
}

/* Two pages, the second PROT_NONE; returns the first, or nullptr. */
uint8_t *map_with_guard(long page)
{
	void *p = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return nullptr;
	if (mprotect(static_cast<uint8_t *>(p) + page, page, PROT_NONE)) {
		munmap(p, 2 * page);
		return nullptr;
	}
	return static_cast<uint8_t *>(p);
}

// Contract: a bitmap whose last u64 word is partial and ends right before a
// PROT_NONE page is walked and fully set without touching that page: only
// the ceil(bits / 8) bytes of the bitmap are accessed.
TEST(IovaBitmapTest, NoAccessPastEnd)
{
	long page = sysconf(_SC_PAGESIZE);
	uint8_t *p = map_with_guard(page);
	ASSERT_NE(p, nullptr);
	for (size_t wb : {8, 16, 0}) {
		for (unsigned long nbits : {1UL, 9UL, 64UL + 13, 320UL + 13,
					    64UL * 5}) {
			SCOPED_TRACE(testing::Message() << "window " << wb
							<< " nbits " << nbits);
			WindowBytes knob(wb);
			size_t nbytes = (nbits + 7) / 8;
			uint8_t *data = p + page - nbytes;
			std::memset(p, 0, page);
			struct iova_bitmap *b = iova_bitmap_alloc(
				0, nbits * 4096, 4096,
				reinterpret_cast<u64 *>(data));
			ASSERT_FALSE(IS_ERR(b));
			/* Everything, and far past the end, from each window. */
			ASSERT_EQ(iova_bitmap_for_each(
					  b, nullptr,
					  [](struct iova_bitmap *bm,
					     unsigned long iova, size_t len,
					     void *) {
						  iova_bitmap_set(bm, iova,
								  ULONG_MAX);
						  iova_bitmap_set(bm, 0, len);
						  return 0;
					  }),
				  0);
			iova_bitmap_free(b);
			for (size_t i = 0; i + 1 < nbytes; i++)
				EXPECT_EQ(data[i], 0xff) << i;
			uint8_t last = nbits % 8 ? (1u << (nbits % 8)) - 1 : 0xff;
			EXPECT_EQ(data[nbytes - 1], last);
			for (uint8_t *q = p; q < data; q++)
				ASSERT_EQ(*q, 0);
		}
	}
	munmap(p, 2 * page);
}

// Contract: a NULL, unmapped or read-only bitmap makes iova_bitmap_for_each
// return -EFAULT (never crash); a fault at a later window stops the walk
// there.
TEST(IovaBitmapTest, BadUserPointerFaults)
{
	int calls = 0;
	for (u64 *bad : {static_cast<u64 *>(nullptr),
			 reinterpret_cast<u64 *>(0x10),
			 reinterpret_cast<u64 *>(~0xfffUL)}) {
		struct iova_bitmap *b =
			iova_bitmap_alloc(0, 1UL << 30, 4096, bad);
		ASSERT_FALSE(IS_ERR(b));
		EXPECT_EQ(iova_bitmap_for_each(b, &calls, nothing), -EFAULT);
		iova_bitmap_free(b);
	}
	EXPECT_EQ(calls, 0);

	long page = sysconf(_SC_PAGESIZE);
	uint8_t *p = map_with_guard(page);
	ASSERT_NE(p, nullptr);

	/* Read-only: the write back fails. */
	ASSERT_EQ(mprotect(p, page, PROT_READ), 0);
	struct iova_bitmap *b = iova_bitmap_alloc(
		0, 64 * 4096, 4096, reinterpret_cast<u64 *>(p));
	ASSERT_FALSE(IS_ERR(b));
	EXPECT_EQ(iova_bitmap_for_each(
			  b, nullptr,
			  [](struct iova_bitmap *bm, unsigned long iova,
			     size_t len, void *) {
				  iova_bitmap_set(bm, iova, len);
				  return 0;
			  }),
		  -EFAULT);
	iova_bitmap_free(b);
	ASSERT_EQ(mprotect(p, page, PROT_READ | PROT_WRITE), 0);

	/* 16 bytes before the guard page, 16 in it: window 3 faults. */
	WindowBytes knob(8);
	std::memset(p, 0, page);
	calls = 0;
	b = iova_bitmap_alloc(0, 256 * 4096, 4096,
			      reinterpret_cast<u64 *>(p + page - 16));
	ASSERT_FALSE(IS_ERR(b));
	EXPECT_EQ(iova_bitmap_for_each(b, &calls, nothing), -EFAULT);
	iova_bitmap_free(b);
	EXPECT_EQ(calls, 2);
	munmap(p, 2 * page);
}

struct FaultBehind {
	uint8_t *page_start;
	long page;
	int calls = 0;
};

// Contract: a failed write of bits for an earlier window (its memory became
// read-only) makes the walk return -EFAULT after the current window.
TEST(IovaBitmapTest, FaultSettingEarlierWindow)
{
	long page = sysconf(_SC_PAGESIZE);
	void *m = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(m, MAP_FAILED);
	auto *p = static_cast<uint8_t *>(m);

	WindowBytes knob(8);
	/* Window 1 is the last 8 bytes of page 1, the rest on page 2. */
	FaultBehind f{p, page};
	struct iova_bitmap *b = iova_bitmap_alloc(
		0, 256 * 4096, 4096, reinterpret_cast<u64 *>(p + page - 8));
	ASSERT_FALSE(IS_ERR(b));
	EXPECT_EQ(iova_bitmap_for_each(
			  b, &f,
			  [](struct iova_bitmap *bm, unsigned long, size_t,
			     void *opaque) {
				  auto *fb = static_cast<FaultBehind *>(opaque);
				  if (++fb->calls == 2) {
					  mprotect(fb->page_start, fb->page,
						   PROT_READ);
					  iova_bitmap_set(bm, 0, 4096);
				  }
				  return 0;
			  }),
		  -EFAULT);
	iova_bitmap_free(b);
	EXPECT_EQ(f.calls, 2);
	munmap(p, 2 * page);
}

struct StopAt {
	int stop_at;
	int calls = 0;
};

// Contract: fn's non-zero result stops the walk and is returned; bits set
// so far, including those meant for later windows, reach the user.
TEST(IovaBitmapTest, CallbackErrorStopsWalk)
{
	WindowBytes knob(8);
	u64 words[4] = {0, 0, 0, 0};
	struct iova_bitmap *b = iova_bitmap_alloc(0, 256 * 4096, 4096, words);
	ASSERT_FALSE(IS_ERR(b));
	StopAt s{2};
	EXPECT_EQ(iova_bitmap_for_each(
			  b, &s,
			  [](struct iova_bitmap *bm, unsigned long iova,
			     size_t len, void *opaque) {
				  auto *st = static_cast<StopAt *>(opaque);
				  if (++st->calls < st->stop_at)
					  return 0;
				  /* Last page of this window, 1st of next. */
				  iova_bitmap_set(bm, iova + len - 4096, 8192);
				  /* A page in the last window. */
				  iova_bitmap_set(bm, 255 * 4096, 4096);
				  return -EIO;
			  }),
		  -EIO);
	iova_bitmap_free(b);
	EXPECT_EQ(s.calls, 2);
	EXPECT_EQ(words[0], 0u);
	EXPECT_EQ(words[1], 1ULL << 63);
	EXPECT_EQ(words[2], 1u);
	EXPECT_EQ(words[3], 1ULL << 63);
}

// Contract: the window knob rounds up to a multiple of 8 and 0 restores the
// 2 MiB default.
TEST(IovaBitmapTest, WindowKnob)
{
	uvfio_iova_bitmap_set_window_bytes(1);
	EXPECT_EQ(uvfio_iova_bitmap_window_bytes(), 8u);
	uvfio_iova_bitmap_set_window_bytes(17);
	EXPECT_EQ(uvfio_iova_bitmap_window_bytes(), 24u);
	uvfio_iova_bitmap_set_window_bytes(0);
	EXPECT_EQ(uvfio_iova_bitmap_window_bytes(), 2u << 20);
}

} // namespace
