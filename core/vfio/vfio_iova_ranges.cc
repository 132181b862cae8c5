// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio_combine_iova_ranges(): shrink a set of IOVA ranges to what a device's
 * dirty tracker can hold, by bridging the narrowest gaps first. The
 * counterpart of the helper of the same name in drivers/vfio/vfio_main.c.
 */
#include <algorithm>

#include <uvfio/linux/interval_tree.h>
#include <uvfio/linux/vfio.h>

namespace {

/*
 * Give a linked node a new end. The tree's per-subtree maxima depend on
 * `last`, so the node goes out and back in rather than being edited in
 * place; start is unchanged, so it returns to the same position.
 */
void iova_range_set_last(struct rb_root_cached *root,
			 struct interval_tree_node *node, unsigned long last)
{
	interval_tree_remove(node, root);
	node->last = last;
	interval_tree_insert(node, root);
}

/*
 * The hole between two neighbours in start order. Ranges that touch
 * ([0, 9] then [10, 19]) are 1 apart; ones that overlap count as 0 apart,
 * so they are bridged before any real hole.
 */
unsigned long iova_range_gap(const struct interval_tree_node *prev,
			     const struct interval_tree_node *next)
{
	return next->start > prev->last ? next->start - prev->last : 0;
}

/* Fold every range into the first one: one range spanning them all. */
void iova_ranges_combine_all(struct rb_root_cached *root)
{
	struct interval_tree_node *first =
		interval_tree_iter_first(root, 0, ULONG_MAX);

	/* cur_nodes said there were ranges to combine. */
	if (WARN_ON(!first))
		return;

	unsigned long last = first->last;
	struct interval_tree_node *n = interval_tree_iter_next(first, 0, ULONG_MAX);

	while (n) {
		struct interval_tree_node *next =
			interval_tree_iter_next(n, 0, ULONG_MAX);

		last = std::max(last, n->last);
		interval_tree_remove(n, root);
		n = next;
	}
	if (last != first->last)
		iova_range_set_last(root, first, last);
}

} // namespace

void vfio_combine_iova_ranges(struct rb_root_cached *root, u32 cur_nodes,
			      u32 req_nodes)
{
	/* Asking for no ranges at all is a caller bug; leave the tree be. */
	if (WARN_ON(!req_nodes))
		return;
	if (req_nodes >= cur_nodes)
		return;

	/* The common "one range covering everything" case, in one pass. */
	if (req_nodes == 1) {
		iova_ranges_combine_all(root);
		return;
	}

	while (cur_nodes > req_nodes) {
		struct interval_tree_node *prev, *curr;
		struct interval_tree_node *comb_start = nullptr;
		struct interval_tree_node *comb_end = nullptr;
		unsigned long min_gap = 0;

		/*
		 * Find the neighbours with the narrowest hole between them;
		 * a strict comparison keeps the lowest-address pair on ties.
		 */
		prev = interval_tree_iter_first(root, 0, ULONG_MAX);
		curr = prev ? interval_tree_iter_next(prev, 0, ULONG_MAX) : nullptr;
		for (; curr; prev = curr,
			     curr = interval_tree_iter_next(curr, 0, ULONG_MAX)) {
			unsigned long gap = iova_range_gap(prev, curr);

			if (!comb_start || gap < min_gap) {
				min_gap = gap;
				comb_start = prev;
				comb_end = curr;
			}
		}

		/* Fewer than two ranges left although cur_nodes said more. */
		if (WARN_ON(!comb_start))
			return;

		/* The earlier range absorbs the later one and the hole. */
		unsigned long last = std::max(comb_start->last, comb_end->last);

		interval_tree_remove(comb_end, root);
		iova_range_set_last(root, comb_start, last);
		cur_nodes--;
	}
}
