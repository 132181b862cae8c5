/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/linux/interval_tree.h> - the kernel's interval tree of closed
 * ranges [start, last] keyed by start, with the subset of <linux/rbtree.h>
 * its users touch.
 *
 * As in the kernel, nodes are embedded in caller-owned memory: insert links
 * a node in, remove only unlinks it, and nothing here allocates or frees.
 * The tree is a red-black tree augmented with __subtree_last (the largest
 * `last` in a node's subtree), so insert and remove are O(log n) and walking
 * the k nodes overlapping a window costs O(log n + k). Nodes with equal
 * start keep their insertion order. There is no locking: callers serialize.
 */
#ifndef UVFIO_LINUX_INTERVAL_TREE_H
#define UVFIO_LINUX_INTERVAL_TREE_H

#include <climits>

#include <uvfio/linux/kernel.h>

/* -------- <linux/rbtree.h> subset -------- */

/*
 * One tree link. The parent pointer and the node's colour share one word
 * (the colour in bit 0, which alignment leaves free), as in the kernel.
 */
struct rb_node {
	unsigned long __rb_parent_color = 0;
	struct rb_node *rb_right = nullptr;
	struct rb_node *rb_left = nullptr;
} __attribute__((aligned(sizeof(long))));

struct rb_root {
	struct rb_node *rb_node = nullptr;
};

/* A root that also remembers its leftmost (smallest) node. */
struct rb_root_cached {
	struct rb_root rb_root;
	struct rb_node *rb_leftmost = nullptr;
};

#define RB_ROOT (rb_root{ nullptr })
#define RB_ROOT_CACHED (rb_root_cached{ { nullptr }, nullptr })

#define rb_entry(ptr, type, member) container_of(ptr, type, member)
#define rb_entry_safe(ptr, type, member)                                     \
	({                                                                   \
		auto __p = (ptr);                                            \
		__p ? rb_entry(__p, type, member) : nullptr;                 \
	})

#define rb_parent(r) \
	(reinterpret_cast<struct rb_node *>((r)->__rb_parent_color & ~3UL))

/* True when the tree holds no node. */
#define RB_EMPTY_ROOT(root) ((root)->rb_node == nullptr)

/* A node marked as not linked into any tree (see RB_CLEAR_NODE). */
#define RB_EMPTY_NODE(node) \
	((node)->__rb_parent_color == reinterpret_cast<unsigned long>(node))
#define RB_CLEAR_NODE(node) \
	((node)->__rb_parent_color = reinterpret_cast<unsigned long>(node))

/* In-order walks; NULL past either end or on an empty tree. */
struct rb_node *rb_first(const struct rb_root *root);
struct rb_node *rb_last(const struct rb_root *root);
struct rb_node *rb_next(const struct rb_node *node);
struct rb_node *rb_prev(const struct rb_node *node);

static inline struct rb_node *rb_first_cached(const struct rb_root_cached *root)
{
	return root->rb_leftmost;
}

/* -------- <linux/interval_tree.h> -------- */

/*
 * A closed range [start, last] (both ends included, start <= last).
 * __subtree_last belongs to the tree: do not set it, and do not change start
 * or last while the node is linked (remove, edit, insert again).
 */
struct interval_tree_node {
	struct rb_node rb;
	unsigned long start = 0;
	unsigned long last = 0;
	unsigned long __subtree_last = 0;
};

/* Link node (start and last set by the caller) into root. */
void interval_tree_insert(struct interval_tree_node *node,
			  struct rb_root_cached *root);

/* Unlink node, which must be in root. Its memory stays the caller's. */
void interval_tree_remove(struct interval_tree_node *node,
			  struct rb_root_cached *root);

/*
 * The first node, in start order, whose range intersects [start, last]
 * (node->start <= last && node->last >= start), or NULL.
 */
struct interval_tree_node *interval_tree_iter_first(struct rb_root_cached *root,
						    unsigned long start,
						    unsigned long last);

/*
 * The next node after node, in start order, intersecting [start, last], or
 * NULL. node must be linked and is normally the previous result for the
 * same window. The tree must not change between the calls of a walk, except
 * that the node just returned may be removed once its successor is known.
 */
struct interval_tree_node *interval_tree_iter_next(struct interval_tree_node *node,
						   unsigned long start,
						   unsigned long last);

#endif /* UVFIO_LINUX_INTERVAL_TREE_H */
