// SPDX-License-Identifier: GPL-2.0-only
/*
 * <uvfio/linux/interval_tree.h> against a brute-force model, with the
 * red-black and __subtree_last invariants checked after every change, and
 * vfio_combine_iova_ranges() against a direct model of its greedy rule.
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include <uvfio/linux/interval_tree.h>
#include <uvfio/linux/vfio.h>

#include "test_util.h"

namespace {

using Range = std::pair<unsigned long, unsigned long>; /* [first, second] */

struct interval_tree_node *itn(struct rb_node *rb)
{
	return rb ? rb_entry(rb, struct interval_tree_node, rb) : nullptr;
}

bool rb_is_black(const struct rb_node *rb)
{
	return !rb || (rb->__rb_parent_color & 1);
}

/*
 * Walks the subtree at rb checking parent links, colours (no red node with
 * a red child, equal black height on every path), start order and the exact
 * __subtree_last. Returns the black height; records failures through gtest.
 */
int check_subtree(struct rb_node *rb, struct rb_node *parent,
		  unsigned long *max_last)
{
	if (!rb)
		return 1;
	struct interval_tree_node *n = itn(rb);

	EXPECT_EQ(rb_parent(rb), parent);
	EXPECT_LE(n->start, n->last);
	if (!rb_is_black(rb)) {
		EXPECT_TRUE(rb_is_black(rb->rb_left));
		EXPECT_TRUE(rb_is_black(rb->rb_right));
	}
	if (rb->rb_left) {
		EXPECT_LE(itn(rb->rb_left)->start, n->start);
	}
	if (rb->rb_right) {
		EXPECT_GE(itn(rb->rb_right)->start, n->start);
	}

	unsigned long l_last = 0, r_last = 0;
	int lh = check_subtree(rb->rb_left, rb, &l_last);
	int rh = check_subtree(rb->rb_right, rb, &r_last);

	EXPECT_EQ(lh, rh);
	*max_last = std::max({n->last, l_last, r_last});
	EXPECT_EQ(n->__subtree_last, *max_last);
	return lh + (rb_is_black(rb) ? 1 : 0);
}

/* The whole tree: structure, cached leftmost, size and height bound. */
void check_tree(struct rb_root_cached *root, size_t expected_nodes)
{
	struct rb_node *top = root->rb_root.rb_node;
	unsigned long max_last = 0;

	if (top) {
		EXPECT_TRUE(rb_is_black(top));
	}
	check_subtree(top, nullptr, &max_last);
	EXPECT_EQ(root->rb_leftmost, rb_first(&root->rb_root));
	EXPECT_EQ(rb_first_cached(root), rb_first(&root->rb_root));

	size_t count = 0;
	for (struct rb_node *rb = rb_first(&root->rb_root); rb; rb = rb_next(rb))
		count++;
	EXPECT_EQ(count, expected_nodes);

	/* Walking backwards visits the same number of nodes. */
	size_t back = 0;
	for (struct rb_node *rb = rb_last(&root->rb_root); rb; rb = rb_prev(rb))
		back++;
	EXPECT_EQ(back, expected_nodes);

	/* A red-black tree of n nodes is at most 2*log2(n+1) deep. */
	std::vector<std::pair<struct rb_node *, int>> stack;
	int height = 0;
	if (top)
		stack.emplace_back(top, 1);
	while (!stack.empty()) {
		auto [rb, d] = stack.back();
		stack.pop_back();
		height = std::max(height, d);
		if (rb->rb_left)
			stack.emplace_back(rb->rb_left, d + 1);
		if (rb->rb_right)
			stack.emplace_back(rb->rb_right, d + 1);
	}
	EXPECT_LE(height, 2 * std::log2(static_cast<double>(expected_nodes) + 1));
}

/* Every node intersecting [start, last], as the iterators report them. */
std::vector<struct interval_tree_node *>
query(struct rb_root_cached *root, unsigned long start, unsigned long last)
{
	std::vector<struct interval_tree_node *> out;
	for (auto *n = interval_tree_iter_first(root, start, last); n;
	     n = interval_tree_iter_next(n, start, last))
		out.push_back(n);
	return out;
}

std::vector<Range> ranges_of(struct rb_root_cached *root)
{
	std::vector<Range> out;
	for (auto *n : query(root, 0, ULONG_MAX))
		out.emplace_back(n->start, n->last);
	return out;
}

struct ModelItem {
	struct interval_tree_node node;
	unsigned long seq; /* insertion order, which breaks start ties */
	bool linked = false;
};

/* A random closed interval, biased towards the edges of the space. */
Range random_range(std::mt19937_64 &rng)
{
	std::uniform_int_distribution<int> kind(0, 9);
	std::uniform_int_distribution<unsigned long> any;
	std::uniform_int_distribution<unsigned long> small(0, 2000);
	std::uniform_int_distribution<unsigned long> len(0, 200);
	unsigned long a, b;

	switch (kind(rng)) {
	case 0: /* touching 0 */
		return {0, small(rng)};
	case 1: /* touching ULONG_MAX */
		return {ULONG_MAX - small(rng), ULONG_MAX};
	case 2: /* a single point at one edge */
		a = (rng() & 1) ? 0 : ULONG_MAX;
		return {a, a};
	case 3: /* anywhere, any length */
		a = any(rng);
		b = any(rng);
		return {std::min(a, b), std::max(a, b)};
	case 4: /* everything */
		return {0, ULONG_MAX};
	default: /* short and dense, so overlaps are common */
		a = small(rng);
		return {a, a + len(rng)};
	}
}

// Contract: under thousands of random inserts and removes (edges 0 and
// ULONG_MAX included), every window's iter_first/iter_next walk yields
// exactly the overlapping nodes, in start order (ties in insertion order),
// the tree stays a valid balanced augmented tree, and removing all nodes
// leaves it empty.
TEST(IntervalTreeTest, RandomizedAgainstBruteForce)
{
	std::mt19937_64 rng(0x5eed1234);
	struct rb_root_cached root = RB_ROOT_CACHED;
	std::vector<std::unique_ptr<ModelItem>> items;
	std::vector<ModelItem *> linked;
	unsigned long seq = 0;

	auto expected = [&](unsigned long start, unsigned long last) {
		std::vector<ModelItem *> hits;
		for (ModelItem *m : linked)
			if (m->node.start <= last && m->node.last >= start)
				hits.push_back(m);
		std::sort(hits.begin(), hits.end(),
			  [](const ModelItem *a, const ModelItem *b) {
				  if (a->node.start != b->node.start)
					  return a->node.start < b->node.start;
				  return a->seq < b->seq;
			  });
		std::vector<struct interval_tree_node *> out;
		for (ModelItem *m : hits)
			out.push_back(&m->node);
		return out;
	};

	auto check_windows = [&](int count) {
		for (int q = 0; q < count; q++) {
			Range w = (q == 0) ? Range{0, ULONG_MAX} : random_range(rng);
			ASSERT_EQ(query(&root, w.first, w.second),
				  expected(w.first, w.second))
				<< "window [" << w.first << ", " << w.second << "]";
		}
		for (Range w : {Range{0, 0}, Range{ULONG_MAX, ULONG_MAX}})
			ASSERT_EQ(query(&root, w.first, w.second),
				  expected(w.first, w.second));
	};

	std::uniform_int_distribution<int> op(0, 99);
	for (int step = 0; step < 6000; step++) {
		/* Grow for a while, then mostly shrink, so sizes vary. */
		int insert_pct = step < 3000 ? 70 : 35;

		if (linked.empty() || op(rng) < insert_pct) {
			auto item = std::make_unique<ModelItem>();
			Range r = random_range(rng);
			item->node.start = r.first;
			item->node.last = r.second;
			item->seq = seq++;
			item->linked = true;
			interval_tree_insert(&item->node, &root);
			linked.push_back(item.get());
			items.push_back(std::move(item));
		} else {
			std::uniform_int_distribution<size_t> pick(
				0, linked.size() - 1);
			size_t i = pick(rng);
			interval_tree_remove(&linked[i]->node, &root);
			linked[i]->linked = false;
			linked[i] = linked.back();
			linked.pop_back();
		}

		if (step % 7 == 0 || step < 64) {
			check_tree(&root, linked.size());
			ASSERT_FALSE(testing::Test::HasFailure())
				<< "after step " << step;
		}
		check_windows(3);
		if (testing::Test::HasFailure())
			return;
	}
	check_windows(200);

	/* Drain in random order, checking along the way. */
	std::shuffle(linked.begin(), linked.end(), rng);
	while (!linked.empty()) {
		interval_tree_remove(&linked.back()->node, &root);
		linked.pop_back();
		if (linked.size() % 16 == 0) {
			check_tree(&root, linked.size());
			check_windows(2);
			ASSERT_FALSE(testing::Test::HasFailure());
		}
	}
	EXPECT_TRUE(RB_EMPTY_ROOT(&root.rb_root));
	EXPECT_EQ(root.rb_leftmost, nullptr);
	EXPECT_EQ(interval_tree_iter_first(&root, 0, ULONG_MAX), nullptr);
}

// Contract: ascending, descending and equal-start insertion orders (the
// rebalancing worst cases) keep the tree valid and walks in start order,
// equal starts in insertion order.
TEST(IntervalTreeTest, SequentialInsertOrders)
{
	constexpr unsigned long N = 1024;

	for (int order = 0; order < 3; order++) {
		struct rb_root_cached root = RB_ROOT_CACHED;
		std::vector<struct interval_tree_node> nodes(N);

		for (unsigned long i = 0; i < N; i++) {
			unsigned long k = order == 0 ? i : order == 1 ? N - 1 - i : 7;
			nodes[i].start = k * 10;
			nodes[i].last = k * 10 + 4;
			interval_tree_insert(&nodes[i], &root);
		}
		check_tree(&root, N);

		auto all = query(&root, 0, ULONG_MAX);
		ASSERT_EQ(all.size(), N);
		for (unsigned long i = 0; i < N; i++) {
			if (order == 0)
				EXPECT_EQ(all[i], &nodes[i]);
			else if (order == 1)
				EXPECT_EQ(all[i], &nodes[N - 1 - i]);
			else
				EXPECT_EQ(all[i], &nodes[i]);
		}

		/* Remove every other node, then the rest. */
		for (unsigned long i = 0; i < N; i += 2)
			interval_tree_remove(&nodes[i], &root);
		check_tree(&root, N / 2);
		for (unsigned long i = 1; i < N; i += 2)
			interval_tree_remove(&nodes[i], &root);
		check_tree(&root, 0);
		EXPECT_TRUE(RB_EMPTY_ROOT(&root.rb_root));
	}
}

// Contract: iter_first on an empty tree returns NULL for any window.
TEST(IntervalTreeTest, EmptyTreeHasNoOverlaps)
{
	struct rb_root_cached root = RB_ROOT_CACHED;

	EXPECT_TRUE(RB_EMPTY_ROOT(&root.rb_root));
	EXPECT_EQ(rb_first_cached(&root), nullptr);
	EXPECT_EQ(interval_tree_iter_first(&root, 0, ULONG_MAX), nullptr);
	EXPECT_EQ(interval_tree_iter_first(&root, 0, 0), nullptr);
	EXPECT_EQ(interval_tree_iter_first(&root, ULONG_MAX, ULONG_MAX), nullptr);

	/* A default-constructed root is the same empty tree. */
	struct rb_root_cached root2;
	EXPECT_EQ(interval_tree_iter_first(&root2, 0, ULONG_MAX), nullptr);
	root2 = RB_ROOT_CACHED;
	EXPECT_TRUE(RB_EMPTY_ROOT(&root2.rb_root));
}

// Contract: intervals are closed, so [0,9] and [10,19] share no address:
// a window ending at 9 sees only the first, one starting at 10 only the
// second, and [9,10] sees both.
TEST(IntervalTreeTest, TouchingIntervalsDoNotOverlap)
{
	struct rb_root_cached root = RB_ROOT_CACHED;
	struct interval_tree_node a, b;

	a.start = 0;
	a.last = 9;
	b.start = 10;
	b.last = 19;
	interval_tree_insert(&b, &root);
	interval_tree_insert(&a, &root);

	using V = std::vector<struct interval_tree_node *>;
	EXPECT_EQ(query(&root, 0, 9), V{&a});
	EXPECT_EQ(query(&root, 9, 9), V{&a});
	EXPECT_EQ(query(&root, 10, 10), V{&b});
	EXPECT_EQ(query(&root, 10, 19), V{&b});
	EXPECT_EQ(query(&root, 9, 10), (V{&a, &b}));
	EXPECT_EQ(query(&root, 20, ULONG_MAX), V{});

	/* a's insertion overlapping check, as the VFIO core does it. */
	EXPECT_EQ(interval_tree_iter_first(&root, a.start, a.last), &a);
	interval_tree_remove(&a, &root);
	EXPECT_EQ(interval_tree_iter_first(&root, 0, 9), nullptr);
	check_tree(&root, 1);
}

// Contract: a walk may unlink the node it just got once it has fetched the
// next one (how callers empty a tree of caller-owned nodes).
TEST(IntervalTreeTest, RemoveDuringWalk)
{
	struct rb_root_cached root = RB_ROOT_CACHED;
	std::vector<struct interval_tree_node> nodes(100);

	for (unsigned long i = 0; i < nodes.size(); i++) {
		nodes[i].start = i * 100;
		nodes[i].last = i * 100 + (i % 3 ? 50 : 250);
		interval_tree_insert(&nodes[i], &root);
	}
	size_t seen = 0;
	auto *n = interval_tree_iter_first(&root, 0, ULONG_MAX);
	while (n) {
		auto *next = interval_tree_iter_next(n, 0, ULONG_MAX);
		EXPECT_EQ(n, &nodes[seen]);
		interval_tree_remove(n, &root);
		seen++;
		n = next;
	}
	EXPECT_EQ(seen, nodes.size());
	EXPECT_TRUE(RB_EMPTY_ROOT(&root.rb_root));
}

/* -------- vfio_combine_iova_ranges -------- */

/* Caller-owned nodes for a set of ranges, linked into one tree. */
class RangeTree
{
public:
	explicit RangeTree(const std::vector<Range> &ranges)
		: nodes_(ranges.size())
	{
		for (size_t i = 0; i < ranges.size(); i++) {
			nodes_[i].start = ranges[i].first;
			nodes_[i].last = ranges[i].second;
			interval_tree_insert(&nodes_[i], &root);
		}
	}
	u32 size() const { return static_cast<u32>(nodes_.size()); }
	const struct interval_tree_node &node(size_t i) const
	{
		return nodes_[i];
	}

	struct rb_root_cached root = RB_ROOT_CACHED;

private:
	std::vector<struct interval_tree_node> nodes_;
};

/* The rule itself, on a sorted vector of disjoint ranges. */
std::vector<Range> model_combine(std::vector<Range> r, size_t req)
{
	std::sort(r.begin(), r.end());
	while (r.size() > req && r.size() > 1) {
		size_t best = 0;
		unsigned long best_gap = 0;
		for (size_t i = 0; i + 1 < r.size(); i++) {
			unsigned long gap = r[i + 1].first - r[i].second;
			if (i == 0 || gap < best_gap) {
				best_gap = gap;
				best = i;
			}
		}
		r[best].second = r[best + 1].second;
		r.erase(r.begin() + static_cast<long>(best) + 1);
	}
	return r;
}

bool covers(const std::vector<Range> &after, Range a)
{
	for (Range r : after)
		if (r.first <= a.first && a.second <= r.second)
			return true;
	return false;
}

// Contract: the pair with the smallest gap is joined first, the first
// range taking the second's end; touching ranges (gap 1) beat any hole.
TEST(CombineIovaRangesTest, MergesClosestNeighboursFirst)
{
	RangeTree t({{300, 309}, {0, 9}, {115, 119}, {100, 109}});

	/* Gaps: 0..100 is 91, 109..115 is 6, 119..300 is 181. */
	vfio_combine_iova_ranges(&t.root, 4, 3);
	EXPECT_EQ(ranges_of(&t.root),
		  (std::vector<Range>{{0, 9}, {100, 119}, {300, 309}}));
	check_tree(&t.root, 3);
	/* The lower node survived and the upper one was unlinked. */
	EXPECT_EQ(interval_tree_iter_first(&t.root, 115, 115), &t.node(3));

	vfio_combine_iova_ranges(&t.root, 3, 2);
	EXPECT_EQ(ranges_of(&t.root),
		  (std::vector<Range>{{0, 119}, {300, 309}}));
	EXPECT_EQ(interval_tree_iter_first(&t.root, 0, 0), &t.node(1));
	check_tree(&t.root, 2);

	RangeTree touching({{0, 9}, {10, 19}, {22, 29}});
	vfio_combine_iova_ranges(&touching.root, 3, 2);
	EXPECT_EQ(ranges_of(&touching.root),
		  (std::vector<Range>{{0, 19}, {22, 29}}));
}

// Contract: equal gaps are resolved by joining the lowest-address pair.
TEST(CombineIovaRangesTest, TiesJoinLowestAddressPair)
{
	RangeTree t({{40, 49}, {20, 29}, {0, 9}, {60, 69}});

	vfio_combine_iova_ranges(&t.root, 4, 3);
	EXPECT_EQ(ranges_of(&t.root),
		  (std::vector<Range>{{0, 29}, {40, 49}, {60, 69}}));
	/* Now gaps are 11 and 11 again: still the lowest pair. */
	vfio_combine_iova_ranges(&t.root, 3, 2);
	EXPECT_EQ(ranges_of(&t.root),
		  (std::vector<Range>{{0, 49}, {60, 69}}));
}

// Contract: reducing to one range yields a single node spanning from the
// first start to the last end, including at the edges 0 and ULONG_MAX.
TEST(CombineIovaRangesTest, ReduceToOne)
{
	RangeTree t({{ULONG_MAX, ULONG_MAX}, {0, 0}});

	vfio_combine_iova_ranges(&t.root, 2, 1);
	EXPECT_EQ(ranges_of(&t.root), (std::vector<Range>{{0, ULONG_MAX}}));
	check_tree(&t.root, 1);

	/* The ULONG_MAX-wide hole is still a hole that can be picked. */
	RangeTree u({{0, 0}, {ULONG_MAX, ULONG_MAX}, {5, 5}});
	vfio_combine_iova_ranges(&u.root, 3, 2);
	EXPECT_EQ(ranges_of(&u.root),
		  (std::vector<Range>{{0, 5}, {ULONG_MAX, ULONG_MAX}}));

	RangeTree w({{4096, 8191}, {1 << 20, (1 << 21) - 1}, {0, 4095}});
	vfio_combine_iova_ranges(&w.root, 3, 1);
	EXPECT_EQ(ranges_of(&w.root),
		  (std::vector<Range>{{0, (1 << 21) - 1}}));
	check_tree(&w.root, 1);
}

// Contract: on random disjoint range sets, the result has exactly
// req_nodes ranges, matches the greedy model, covers every address that
// was covered before, and the tree stays valid.
TEST(CombineIovaRangesTest, RandomMatchesModelAndKeepsCoverage)
{
	std::mt19937_64 rng(0xc0b1e);

	for (int iter = 0; iter < 400; iter++) {
		std::uniform_int_distribution<size_t> count(2, 80);
		size_t n = count(rng);

		/* Disjoint ranges: walk upwards with random lengths/holes. */
		std::vector<Range> in;
		bool wide = iter % 4 == 0;
		std::uniform_int_distribution<unsigned long> step(
			1, wide ? ULONG_MAX / 200 : 64);
		unsigned long pos = (iter % 3 == 0) ? 0 : step(rng);
		for (size_t i = 0; i < n; i++) {
			unsigned long len = step(rng) - 1;
			in.emplace_back(pos, pos + len);
			pos += len + step(rng);
		}
		if (iter % 5 == 0)
			in.back() = {std::max(in.back().first, ULONG_MAX - 8),
				     ULONG_MAX};
		std::shuffle(in.begin(), in.end(), rng);

		std::uniform_int_distribution<u32> reqd(1, static_cast<u32>(n));
		u32 req = reqd(rng);
		RangeTree t(in);
		vfio_combine_iova_ranges(&t.root, t.size(), req);

		std::vector<Range> out = ranges_of(&t.root);
		ASSERT_EQ(out.size(), req);
		ASSERT_EQ(out, model_combine(in, req)) << "iteration " << iter;
		for (Range a : in)
			ASSERT_TRUE(covers(out, a));
		check_tree(&t.root, req);
		ASSERT_FALSE(testing::Test::HasFailure());
	}
}

// Contract: req_nodes >= cur_nodes, and an empty tree, leave the tree
// untouched; req_nodes == 0 also changes nothing (and WARNs).
TEST(CombineIovaRangesTest, NoOpCases)
{
	const std::vector<Range> in = {{0, 9}, {20, 29}, {1000, 1999}};
	const std::vector<Range> sorted = in;

	for (u32 req : {3u, 4u, U32_MAX}) {
		RangeTree t(in);
		vfio_combine_iova_ranges(&t.root, 3, req);
		EXPECT_EQ(ranges_of(&t.root), sorted) << "req " << req;
		check_tree(&t.root, 3);
	}

	{
		RangeTree t(in);
		uvfio_test::LogCapture log;
		vfio_combine_iova_ranges(&t.root, 3, 0);
		EXPECT_EQ(ranges_of(&t.root), sorted);
		EXPECT_TRUE(log.contains("WARNING"));
	}

	struct rb_root_cached empty = RB_ROOT_CACHED;
	uvfio_test::LogCapture log;
	vfio_combine_iova_ranges(&empty, 0, 1);
	EXPECT_FALSE(log.contains("WARNING"));
	vfio_combine_iova_ranges(&empty, 0, 0);
	EXPECT_TRUE(RB_EMPTY_ROOT(&empty.rb_root));
}

// Contract: a cur_nodes larger than the tree really holds stops at one
// range with a WARN instead of looping or crashing.
TEST(CombineIovaRangesTest, OverstatedCountStopsAtOneRange)
{
	RangeTree t({{0, 9}, {20, 29}, {50, 59}});
	uvfio_test::LogCapture log;

	vfio_combine_iova_ranges(&t.root, 10, 2);
	EXPECT_EQ(ranges_of(&t.root), (std::vector<Range>{{0, 59}}));
	EXPECT_TRUE(log.contains("WARNING"));
	check_tree(&t.root, 1);
}

} // namespace
