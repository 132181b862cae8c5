// SPDX-License-Identifier: GPL-2.0-only
/*
 * The interval tree behind <uvfio/linux/interval_tree.h> (the kernel's
 * lib/interval_tree.c and lib/rbtree.c): a red-black tree
 * ordered by start, where every node also carries __subtree_last, the
 * largest `last` anywhere in its subtree. That one extra value lets a query
 * skip every subtree that ends before the window, which is what makes an
 * overlap walk O(log n + k).
 *
 * The augmented value is kept exact at all times: insertion raises it along
 * the descent, removal recomputes it from the point of the splice up to the
 * root, and each rotation recomputes the two nodes whose subtrees change.
 */
#include <algorithm>
#include <cstdint>

#include <uvfio/linux/interval_tree.h>

namespace {

constexpr unsigned long RB_RED = 0;
constexpr unsigned long RB_BLACK = 1;
constexpr unsigned long RB_COLOR_MASK = 1;

inline struct rb_node *parent_of(const struct rb_node *n)
{
	return rb_parent(n);
}

/* Missing children (NULL) count as black leaves. */
inline bool is_black(const struct rb_node *n)
{
	return !n || (n->__rb_parent_color & RB_COLOR_MASK) == RB_BLACK;
}

inline bool is_red(const struct rb_node *n)
{
	return !is_black(n);
}

inline unsigned long color_of(const struct rb_node *n)
{
	return n->__rb_parent_color & RB_COLOR_MASK;
}

inline void set_parent_color(struct rb_node *n, struct rb_node *parent,
			     unsigned long color)
{
	n->__rb_parent_color = reinterpret_cast<std::uintptr_t>(parent) | color;
}

inline void set_parent(struct rb_node *n, struct rb_node *parent)
{
	set_parent_color(n, parent, color_of(n));
}

inline void set_color(struct rb_node *n, unsigned long color)
{
	n->__rb_parent_color = (n->__rb_parent_color & ~RB_COLOR_MASK) | color;
}

inline struct interval_tree_node *itn(struct rb_node *n)
{
	return rb_entry(n, struct interval_tree_node, rb);
}

inline unsigned long subtree_last_of(struct rb_node *n)
{
	/* 0 is neutral for max(): every real `last` is >= 0. */
	return n ? itn(n)->__subtree_last : 0;
}

/* Recompute n's augmented value from its own range and its children. */
inline void recompute(struct rb_node *n)
{
	itn(n)->__subtree_last = std::max({itn(n)->last,
					   subtree_last_of(n->rb_left),
					   subtree_last_of(n->rb_right)});
}

/* Point whatever referred to old (parent's link or the root) at repl. */
inline void replace_child(struct rb_root_cached *root, struct rb_node *parent,
			  struct rb_node *old, struct rb_node *repl)
{
	if (!parent)
		root->rb_root.rb_node = repl;
	else if (parent->rb_left == old)
		parent->rb_left = repl;
	else
		parent->rb_right = repl;
}

/*
 * Rotations keep colours untouched (the fix-ups set them) and in-order
 * sequence intact. The node moving up now roots the same set of nodes the
 * old subtree root did, so it inherits that value; the one moving down is
 * recomputed from its new children.
 */
void rotate_left(struct rb_root_cached *root, struct rb_node *x)
{
	struct rb_node *y = x->rb_right;
	struct rb_node *p = parent_of(x);

	x->rb_right = y->rb_left;
	if (y->rb_left)
		set_parent(y->rb_left, x);
	set_parent(y, p);
	replace_child(root, p, x, y);
	y->rb_left = x;
	set_parent(x, y);

	itn(y)->__subtree_last = itn(x)->__subtree_last;
	recompute(x);
}

void rotate_right(struct rb_root_cached *root, struct rb_node *x)
{
	struct rb_node *y = x->rb_left;
	struct rb_node *p = parent_of(x);

	x->rb_left = y->rb_right;
	if (y->rb_right)
		set_parent(y->rb_right, x);
	set_parent(y, p);
	replace_child(root, p, x, y);
	y->rb_right = x;
	set_parent(x, y);

	itn(y)->__subtree_last = itn(x)->__subtree_last;
	recompute(x);
}

/* Restore the red-black rules after linking the red node z as a leaf. */
void insert_fixup(struct rb_root_cached *root, struct rb_node *z)
{
	for (;;) {
		struct rb_node *p = parent_of(z);

		if (!p) {
			/* z is the root, which is always black. */
			set_color(z, RB_BLACK);
			return;
		}
		if (is_black(p))
			return;

		/* p is red, so it is not the root and has a parent. */
		struct rb_node *g = parent_of(p);

		if (p == g->rb_left) {
			struct rb_node *u = g->rb_right;

			if (is_red(u)) {
				/* Push the red up and retry from g. */
				set_color(p, RB_BLACK);
				set_color(u, RB_BLACK);
				set_color(g, RB_RED);
				z = g;
				continue;
			}
			if (z == p->rb_right) {
				/* Straighten the zig-zag first. */
				rotate_left(root, p);
				z = p;
				p = parent_of(z);
			}
			set_color(p, RB_BLACK);
			set_color(g, RB_RED);
			rotate_right(root, g);
			return;
		}

		struct rb_node *u = g->rb_left;

		if (is_red(u)) {
			set_color(p, RB_BLACK);
			set_color(u, RB_BLACK);
			set_color(g, RB_RED);
			z = g;
			continue;
		}
		if (z == p->rb_left) {
			rotate_right(root, p);
			z = p;
			p = parent_of(z);
		}
		set_color(p, RB_BLACK);
		set_color(g, RB_RED);
		rotate_left(root, g);
		return;
	}
}

/*
 * A black node was unlinked and x (possibly NULL) took its place under
 * parent: x's side of parent is one black short. Move the deficit up or
 * absorb it with recolouring and rotations.
 */
void erase_fixup(struct rb_root_cached *root, struct rb_node *x,
		 struct rb_node *parent)
{
	while (x != root->rb_root.rb_node && is_black(x)) {
		if (x == parent->rb_left) {
			/* The sibling exists: its side has a black to spare. */
			struct rb_node *w = parent->rb_right;

			if (is_red(w)) {
				set_color(w, RB_BLACK);
				set_color(parent, RB_RED);
				rotate_left(root, parent);
				w = parent->rb_right;
			}
			if (is_black(w->rb_left) && is_black(w->rb_right)) {
				set_color(w, RB_RED);
				x = parent;
				parent = parent_of(x);
				continue;
			}
			if (is_black(w->rb_right)) {
				set_color(w->rb_left, RB_BLACK);
				set_color(w, RB_RED);
				rotate_right(root, w);
				w = parent->rb_right;
			}
			set_color(w, color_of(parent));
			set_color(parent, RB_BLACK);
			set_color(w->rb_right, RB_BLACK);
			rotate_left(root, parent);
			x = root->rb_root.rb_node;
			break;
		}

		struct rb_node *w = parent->rb_left;

		if (is_red(w)) {
			set_color(w, RB_BLACK);
			set_color(parent, RB_RED);
			rotate_right(root, parent);
			w = parent->rb_left;
		}
		if (is_black(w->rb_left) && is_black(w->rb_right)) {
			set_color(w, RB_RED);
			x = parent;
			parent = parent_of(x);
			continue;
		}
		if (is_black(w->rb_left)) {
			set_color(w->rb_right, RB_BLACK);
			set_color(w, RB_RED);
			rotate_left(root, w);
			w = parent->rb_left;
		}
		set_color(w, color_of(parent));
		set_color(parent, RB_BLACK);
		set_color(w->rb_left, RB_BLACK);
		rotate_right(root, parent);
		x = root->rb_root.rb_node;
		break;
	}
	if (x)
		set_color(x, RB_BLACK);
}

inline struct rb_node *leftmost_of(struct rb_node *n)
{
	while (n->rb_left)
		n = n->rb_left;
	return n;
}

inline struct rb_node *rightmost_of(struct rb_node *n)
{
	while (n->rb_right)
		n = n->rb_right;
	return n;
}

/*
 * The first node in start order within the subtree of node that intersects
 * [start, last]. Requires node->__subtree_last >= start, which guarantees a
 * node ending at or after start exists below; each step keeps that true for
 * the subtree it moves into. A NULL result therefore only ever comes from
 * meeting a node that starts after last, and then no node at or after this
 * subtree's first position (in the whole tree) can intersect either.
 */
struct interval_tree_node *subtree_search(struct interval_tree_node *node,
					  unsigned long start,
					  unsigned long last)
{
	for (;;) {
		struct rb_node *l = node->rb.rb_left;

		if (l && itn(l)->__subtree_last >= start) {
			/* Anything intersecting on the left comes first. */
			node = itn(l);
			continue;
		}
		if (node->start > last)
			return nullptr;
		if (node->last >= start)
			return node;

		/*
		 * Neither the left subtree nor node reaches start, so the
		 * right subtree must (by the precondition).
		 */
		node = itn(node->rb.rb_right);
	}
}

} // namespace

struct rb_node *rb_first(const struct rb_root *root)
{
	return root->rb_node ? leftmost_of(root->rb_node) : nullptr;
}

struct rb_node *rb_last(const struct rb_root *root)
{
	return root->rb_node ? rightmost_of(root->rb_node) : nullptr;
}

struct rb_node *rb_next(const struct rb_node *node)
{
	if (node->rb_right)
		return leftmost_of(node->rb_right);

	/* Climb until we leave a left subtree; that parent is next. */
	struct rb_node *p;

	while ((p = parent_of(node)) && node == p->rb_right)
		node = p;
	return p;
}

struct rb_node *rb_prev(const struct rb_node *node)
{
	if (node->rb_left)
		return rightmost_of(node->rb_left);

	struct rb_node *p;

	while ((p = parent_of(node)) && node == p->rb_left)
		node = p;
	return p;
}

void interval_tree_insert(struct interval_tree_node *node,
			  struct rb_root_cached *root)
{
	struct rb_node **link = &root->rb_root.rb_node;
	struct rb_node *parent = nullptr;
	const unsigned long start = node->start;
	const unsigned long last = node->last;
	bool leftmost = true;

	/*
	 * Equal starts go right, so they keep insertion order. Every node on
	 * the way down gains node in its subtree: raise its value as we pass.
	 */
	while (*link) {
		struct interval_tree_node *p = itn(*link);

		parent = *link;
		if (p->__subtree_last < last)
			p->__subtree_last = last;
		if (start < p->start) {
			link = &parent->rb_left;
		} else {
			link = &parent->rb_right;
			leftmost = false;
		}
	}

	node->__subtree_last = last;
	node->rb.rb_left = nullptr;
	node->rb.rb_right = nullptr;
	set_parent_color(&node->rb, parent, RB_RED);
	*link = &node->rb;
	if (leftmost)
		root->rb_leftmost = &node->rb;

	insert_fixup(root, &node->rb);
}

void interval_tree_remove(struct interval_tree_node *node,
			  struct rb_root_cached *root)
{
	struct rb_node *z = &node->rb;
	struct rb_node *x;		/* what moves into the vacated slot */
	struct rb_node *xparent;	/* x's parent after the splice */
	bool removed_black;

	if (root->rb_leftmost == z)
		root->rb_leftmost = rb_next(z);

	if (!z->rb_left || !z->rb_right) {
		/* At most one child: it replaces z directly. */
		x = z->rb_left ? z->rb_left : z->rb_right;
		xparent = parent_of(z);
		removed_black = is_black(z);
		if (x)
			set_parent(x, xparent);
		replace_child(root, xparent, z, x);
	} else {
		/*
		 * Two children: z's in-order successor y (leftmost of the
		 * right subtree, so it has no left child) is unlinked from
		 * its own slot and relinked in z's, taking z's colour. The
		 * colour lost is y's, from y's old position.
		 */
		struct rb_node *y = leftmost_of(z->rb_right);
		struct rb_node *zp = parent_of(z);

		removed_black = is_black(y);
		x = y->rb_right;
		if (parent_of(y) == z) {
			xparent = y;
		} else {
			xparent = parent_of(y);
			xparent->rb_left = x;
			if (x)
				set_parent(x, xparent);
			y->rb_right = z->rb_right;
			set_parent(y->rb_right, y);
		}
		replace_child(root, zp, z, y);
		y->rb_left = z->rb_left;
		set_parent(y->rb_left, y);
		set_parent_color(y, zp, color_of(z));
	}

	/*
	 * Every subtree that lost z (or had y moved out) lies on the path from
	 * xparent to the root; with y now on that path, one pass fixes them
	 * before any rebalancing rotation reads them.
	 */
	for (struct rb_node *n = xparent; n; n = parent_of(n))
		recompute(n);

	if (removed_black)
		erase_fixup(root, x, xparent);
}

struct interval_tree_node *interval_tree_iter_first(struct rb_root_cached *root,
						    unsigned long start,
						    unsigned long last)
{
	struct rb_node *top = root->rb_root.rb_node;

	if (!top)
		return nullptr;
	/* Everything ends before the window, or starts after it. */
	if (itn(top)->__subtree_last < start)
		return nullptr;
	if (itn(root->rb_leftmost)->start > last)
		return nullptr;
	return subtree_search(itn(top), start, last);
}

struct interval_tree_node *interval_tree_iter_next(struct interval_tree_node *node,
						   unsigned long start,
						   unsigned long last)
{
	struct rb_node *cur = &node->rb;
	struct rb_node *right = cur->rb_right;

	for (;;) {
		/*
		 * Nodes after cur: first its right subtree, then the nearest
		 * ancestor whose left subtree holds cur, and so on upwards.
		 */
		if (right && itn(right)->__subtree_last >= start)
			return subtree_search(itn(right), start, last);

		struct rb_node *p;

		while ((p = parent_of(cur)) && cur == p->rb_right)
			cur = p;
		if (!p)
			return nullptr;

		cur = p;
		struct interval_tree_node *n = itn(cur);

		if (n->start > last)
			return nullptr;
		if (n->last >= start)
			return n;
		right = cur->rb_right;
	}
}
