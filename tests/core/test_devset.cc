// SPDX-License-Identifier: GPL-2.0-only
/*
 * Device sets: membership by set_id, the open count over the set, lookup by
 * parent device, and the set's lock around open_device/close_device.
 */
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "lc_driver.h"
#include "vfio.h"

using namespace uvfio_test;

namespace {

int set_key; /* any address serves as a set_id */

class DevSetTest : public ::testing::Test
{
protected:
	void SetUp() override
	{
		a = lc_alloc(pa, ca);
		b = lc_alloc(pb, cb);
		ASSERT_FALSE(IS_ERR(a));
		ASSERT_FALSE(IS_ERR(b));
		ASSERT_EQ(vfio_assign_device_set(&a->vdev, &set_key), 0);
		ASSERT_EQ(vfio_assign_device_set(&b->vdev, &set_key), 0);
		ASSERT_EQ(vfio_register_group_dev(&a->vdev), 0);
		ASSERT_EQ(vfio_register_group_dev(&b->vdev), 0);
	}
	void TearDown() override
	{
		vfio_unregister_group_dev(&a->vdev);
		vfio_unregister_group_dev(&b->vdev);
		vfio_put_device(&a->vdev);
		vfio_put_device(&b->vdev);
	}
	LcParent pa, pb;
	LcCounters ca, cb;
	lc_device *a = nullptr, *b = nullptr;
};

// Contract: devices assigned the same set_id share one vfio_device_set.
TEST_F(DevSetTest, SharedSet)
{
	ASSERT_NE(a->vdev.dev_set, nullptr);
	EXPECT_EQ(a->vdev.dev_set, b->vdev.dev_set);
	EXPECT_EQ(a->vdev.dev_set->set_id, &set_key);
	EXPECT_EQ(a->vdev.dev_set->device_count, 2u);
}

// Contract: vfio_device_set_open_count sums the open counts of every
// member; vfio_find_device_in_devset finds a member by its parent.
TEST_F(DevSetTest, OpenCountAndFind)
{
	struct vfio_device_set *set = a->vdev.dev_set;
	int fa = uvfio_open(dev_name(&pa.dev));
	int fb1 = uvfio_open(dev_name(&pb.dev));
	int fb2 = uvfio_open(dev_name(&pb.dev));
	ASSERT_GE(fa, 0);
	ASSERT_GE(fb1, 0);
	ASSERT_GE(fb2, 0);

	mutex_lock(&set->lock);
	EXPECT_EQ(vfio_device_set_open_count(set), 3u);
	EXPECT_EQ(vfio_find_device_in_devset(set, &pa.dev), &a->vdev);
	EXPECT_EQ(vfio_find_device_in_devset(set, &pb.dev), &b->vdev);
	LcParent stranger;
	EXPECT_EQ(vfio_find_device_in_devset(set, &stranger.dev), nullptr);
	mutex_unlock(&set->lock);

	uvfio_close(fb1);
	mutex_lock(&set->lock);
	EXPECT_EQ(vfio_device_set_open_count(set), 2u);
	mutex_unlock(&set->lock);
	uvfio_close(fa);
	uvfio_close(fb2);
	mutex_lock(&set->lock);
	EXPECT_EQ(vfio_device_set_open_count(set), 0u);
	mutex_unlock(&set->lock);
	EXPECT_TRUE(ca.lock_held_in_open);
	EXPECT_TRUE(cb.lock_held_in_close);
}

// Contract: open_device of one member cannot run while another thread holds
// the set's lock (the lock is the set's, not the device's).
TEST_F(DevSetTest, OpenSerializedBySetLock)
{
	struct vfio_device_set *set = a->vdev.dev_set;
	mutex_lock(&set->lock);
	std::atomic<int> fd{-2};
	std::thread t([&] { fd = uvfio_open(dev_name(&pb.dev)); });
	std::this_thread::sleep_for(std::chrono::milliseconds(50));
	EXPECT_EQ(fd, -2);
	EXPECT_EQ(cb.open, 0);
	mutex_unlock(&set->lock);
	t.join();
	ASSERT_GE(fd, 0);
	EXPECT_EQ(cb.open, 1);
	uvfio_close(fd);
}

// Contract: a device can be assigned only one set; the set is freed with
// its last member and a later assignment of the same id starts a new one.
TEST(DevSetLifetimeTest, SetFollowsMembers)
{
	LcParent p;
	LcCounters c;
	lc_device *d = lc_alloc(p, c);
	ASSERT_FALSE(IS_ERR(d));
	ASSERT_EQ(vfio_assign_device_set(&d->vdev, &set_key), 0);
	EXPECT_EQ(vfio_assign_device_set(&d->vdev, &set_key), -EINVAL);
	EXPECT_EQ(d->vdev.dev_set->device_count, 1u);
	vfio_put_device(&d->vdev);

	LcCounters c2;
	lc_device *e = lc_alloc(p, c2);
	ASSERT_FALSE(IS_ERR(e));
	ASSERT_EQ(vfio_assign_device_set(&e->vdev, &set_key), 0);
	EXPECT_EQ(e->vdev.dev_set->device_count, 1u);
	EXPECT_EQ(vfio_assign_device_set(&e->vdev, nullptr), -EINVAL);
	vfio_put_device(&e->vdev);
}

} // namespace
