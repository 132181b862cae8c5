// SPDX-License-Identifier: GPL-2.0-only
/*
 * The vfio_device lifecycle: allocation and ops->init, the last put and
 * ops->release, registration validation, first open / last close, the user
 * reference count, and unregister waiting with ops->request.
 */
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "lc_driver.h"
#include "vfio.h"

using namespace uvfio_test;

namespace {

const struct vfio_migration_ops full_mig_ops = {
	.migration_set_state = [](struct vfio_device *,
				  enum vfio_device_mig_state) -> struct file * {
		return nullptr;
	},
	.migration_get_state = [](struct vfio_device *,
				  enum vfio_device_mig_state *s) {
		*s = VFIO_DEVICE_STATE_RUNNING;
		return 0;
	},
	.migration_get_data_size = [](struct vfio_device *,
				      unsigned long *len) {
		*len = 0;
		return 0;
	},
};

const struct vfio_migration_ops no_size_mig_ops = {
	.migration_set_state = full_mig_ops.migration_set_state,
	.migration_get_state = full_mig_ops.migration_get_state,
	.migration_get_data_size = nullptr,
};

const struct vfio_log_ops full_log_ops = {
	.log_start = [](struct vfio_device *, struct rb_root_cached *, u32,
			u64 *) { return 0; },
	.log_stop = [](struct vfio_device *) { return 0; },
	.log_read_and_clear = [](struct vfio_device *, unsigned long,
				 unsigned long,
				 struct iova_bitmap *) { return 0; },
};

const struct vfio_log_ops no_stop_log_ops = {
	.log_start = full_log_ops.log_start,
	.log_stop = nullptr,
	.log_read_and_clear = full_log_ops.log_read_and_clear,
};

// Contract: vfio_alloc_device calls ops->init once; the last
// vfio_put_device calls ops->release once and frees the structure.
TEST(LifecycleTest, InitOnAllocReleaseOnLastPut)
{
	LcParent parent;
	LcCounters c;
	lc_device *d = lc_alloc(parent, c);
	ASSERT_FALSE(IS_ERR(d));
	EXPECT_EQ(c.init, 1);
	EXPECT_EQ(c.release, 0);
	EXPECT_EQ(d->vdev.ops, &lc_ops);
	EXPECT_EQ(d->vdev.dev, &parent.dev);

	/* An extra reference delays release to the last put. */
	get_device(&d->vdev.device);
	vfio_put_device(&d->vdev);
	EXPECT_EQ(c.release, 0);
	vfio_put_device(&d->vdev);
	EXPECT_EQ(c.release, 1);
	EXPECT_EQ(c.init, 1);
}

// Contract: when ops->init fails, allocation returns its error, the
// structure is freed (LSan checks) and ops->release is never called.
TEST(LifecycleTest, InitFailureFreesWithoutRelease)
{
	LcParent parent;
	LcCounters c;
	c.init_ret = -ENOMEM;
	lc_device *d = lc_alloc(parent, c);
	ASSERT_TRUE(IS_ERR(d));
	EXPECT_EQ(PTR_ERR(d), -ENOMEM);
	EXPECT_EQ(c.init, 1);
	EXPECT_EQ(c.release, 0);
}

struct RegCase {
	const char *what;
	const struct vfio_migration_ops *mig;
	unsigned int flags;
	const struct vfio_log_ops *log;
	int expect;
};

class RegistrationTest : public ::testing::TestWithParam<RegCase>
{
};

// Contract: registration rejects incomplete ops tables with EINVAL and
// leaves the device unopenable; complete tables register.
TEST_P(RegistrationTest, ValidatesOps)
{
	const RegCase &rc = GetParam();
	LcParent parent;
	LcCounters c;
	lc_device *d = lc_alloc(parent, c);
	ASSERT_FALSE(IS_ERR(d));
	d->vdev.mig_ops = rc.mig;
	d->vdev.migration_flags = rc.flags;
	d->vdev.log_ops = rc.log;

	EXPECT_EQ(vfio_register_group_dev(&d->vdev), rc.expect) << rc.what;
	if (rc.expect == 0) {
		int fd = uvfio_open(dev_name(&parent.dev));
		EXPECT_GE(fd, 0);
		EXPECT_EQ(uvfio_close(fd), 0);
		vfio_unregister_group_dev(&d->vdev);
	} else {
		errno = 0;
		EXPECT_EQ(uvfio_open(dev_name(&parent.dev)), -1);
		EXPECT_EQ(errno, ENOENT);
	}
	vfio_put_device(&d->vdev);
	EXPECT_EQ(c.release, 1);
}

constexpr unsigned int SC = VFIO_MIGRATION_STOP_COPY;
constexpr unsigned int P2P = VFIO_MIGRATION_P2P;
constexpr unsigned int PRE = VFIO_MIGRATION_PRE_COPY;

INSTANTIATE_TEST_SUITE_P(
	Ops, RegistrationTest,
	::testing::Values(
		RegCase{"no ops beyond the basics", nullptr, 0, nullptr, 0},
		RegCase{"mig_ops complete, STOP_COPY", &full_mig_ops, SC,
			nullptr, 0},
		RegCase{"mig_ops with all flags", &full_mig_ops, SC | P2P | PRE,
			nullptr, 0},
		RegCase{"mig_ops without STOP_COPY", &full_mig_ops, P2P,
			nullptr, -EINVAL},
		RegCase{"mig_ops with no flags", &full_mig_ops, 0, nullptr,
			-EINVAL},
		RegCase{"mig_ops without get_data_size", &no_size_mig_ops, SC,
			nullptr, -EINVAL},
		RegCase{"mig_ops with an unknown flag", &full_mig_ops,
			SC | (1u << 5), nullptr, -EINVAL},
		RegCase{"flags without mig_ops", nullptr, SC, nullptr,
			-EINVAL},
		RegCase{"log_ops complete", nullptr, 0, &full_log_ops, 0},
		RegCase{"log_ops without log_stop", nullptr, 0,
			&no_stop_log_ops, -EINVAL}));

// Contract: two vfio_devices for one parent device: the second
// registration fails with EEXIST and the first keeps working.
TEST(LifecycleTest, DuplicateRegistrationFails)
{
	LcParent parent;
	LcCounters c1, c2;
	lc_device *a = lc_alloc(parent, c1);
	lc_device *b = lc_alloc(parent, c2);
	ASSERT_FALSE(IS_ERR(a));
	ASSERT_FALSE(IS_ERR(b));
	ASSERT_EQ(vfio_register_group_dev(&a->vdev), 0);
	EXPECT_EQ(vfio_register_group_dev(&b->vdev), -EEXIST);
	int fd = uvfio_open(dev_name(&parent.dev));
	ASSERT_GE(fd, 0);
	EXPECT_EQ(c1.open, 1);
	EXPECT_EQ(c2.open, 0);
	uvfio_close(fd);
	vfio_unregister_group_dev(&a->vdev);
	vfio_put_device(&a->vdev);
	vfio_put_device(&b->vdev);
	EXPECT_EQ(c1.release, 1);
	EXPECT_EQ(c2.release, 1);
}

class OpenCloseTest : public ::testing::Test
{
protected:
	void SetUp() override
	{
		d = lc_alloc(parent, c);
		ASSERT_FALSE(IS_ERR(d));
		ASSERT_EQ(vfio_register_group_dev(&d->vdev), 0);
	}
	void TearDown() override
	{
		vfio_unregister_group_dev(&d->vdev);
		vfio_put_device(&d->vdev);
		EXPECT_EQ(c.release, 1);
	}
	LcParent parent;
	LcCounters c;
	lc_device *d = nullptr;
};

// Contract: only the first open calls open_device and only the last close
// calls close_device, both with the device set's lock held; the user
// reference count follows the open fds.
TEST_F(OpenCloseTest, FirstOpenLastClose)
{
	EXPECT_EQ(refcount_read(&d->vdev.refcount), 1u);
	int fd1 = uvfio_open(dev_name(&parent.dev));
	ASSERT_GE(fd1, 0);
	int fd2 = uvfio_open(dev_name(&parent.dev));
	ASSERT_GE(fd2, 0);
	EXPECT_NE(fd1, fd2);
	EXPECT_EQ(c.open, 1);
	EXPECT_TRUE(c.lock_held_in_open);
	EXPECT_EQ(d->vdev.open_count, 2u);
	EXPECT_EQ(refcount_read(&d->vdev.refcount), 3u);

	EXPECT_EQ(uvfio_close(fd1), 0);
	EXPECT_EQ(c.close, 0);
	EXPECT_EQ(d->vdev.open_count, 1u);
	EXPECT_EQ(uvfio_close(fd2), 0);
	EXPECT_EQ(c.close, 1);
	EXPECT_TRUE(c.lock_held_in_close);
	EXPECT_EQ(d->vdev.open_count, 0u);
	EXPECT_EQ(refcount_read(&d->vdev.refcount), 1u);

	/* A new first open calls open_device again. */
	int fd3 = uvfio_open(dev_name(&parent.dev));
	ASSERT_GE(fd3, 0);
	EXPECT_EQ(c.open, 2);
	uvfio_close(fd3);
	EXPECT_EQ(c.close, 2);
}

// Contract: a failing open_device fails the open with its errno, leaves no
// fd and no open count behind, and does not call close_device.
TEST_F(OpenCloseTest, OpenFailureRollsBack)
{
	int fds_before = count_open_fds();
	c.open_ret = -EIO;
	errno = 0;
	EXPECT_EQ(uvfio_open(dev_name(&parent.dev)), -1);
	EXPECT_EQ(errno, EIO);
	EXPECT_EQ(d->vdev.open_count, 0u);
	EXPECT_EQ(c.close, 0);
	EXPECT_EQ(refcount_read(&d->vdev.refcount), 1u);
	EXPECT_EQ(count_open_fds(), fds_before);

	c.open_ret = 0;
	int fd = uvfio_open(dev_name(&parent.dev));
	ASSERT_GE(fd, 0);
	EXPECT_EQ(c.open, 2);
	uvfio_close(fd);
	EXPECT_EQ(c.close, 1);
}

// Contract: unregister with no user returns at once without calling
// ops->request.
TEST(UnregisterTest, NoUsersNoRequest)
{
	LcParent parent;
	LcCounters c;
	lc_device *d = lc_alloc(parent, c);
	ASSERT_FALSE(IS_ERR(d));
	ASSERT_EQ(vfio_register_group_dev(&d->vdev), 0);
	vfio_unregister_group_dev(&d->vdev);
	EXPECT_EQ(c.request, 0);
	vfio_put_device(&d->vdev);
}

// Contract: unregister hides the device from new opens at once, then waits
// for the last user, calling ops->request with counts 0, 1, 2, ... while it
// waits; it returns only after the user closed.
TEST(UnregisterTest, WaitsForUsersAndCallsRequest)
{
	LcParent parent;
	LcCounters c;
	lc_device *d = lc_alloc(parent, c);
	ASSERT_FALSE(IS_ERR(d));
	ASSERT_EQ(vfio_register_group_dev(&d->vdev), 0);
	int fd = uvfio_open(dev_name(&parent.dev));
	ASSERT_GE(fd, 0);

	vfio_set_unregister_request_interval_ms(5);
	std::atomic<bool> returned{false};
	std::thread t([&] {
		vfio_unregister_group_dev(&d->vdev);
		returned = true;
	});
	/* Wait for a few requests; unregister must still be waiting. */
	auto deadline = std::chrono::steady_clock::now() +
			std::chrono::seconds(20);
	while (c.request < 3 && std::chrono::steady_clock::now() < deadline)
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	EXPECT_GE(c.request, 3);
	EXPECT_FALSE(returned);

	errno = 0;
	EXPECT_EQ(uvfio_open(dev_name(&parent.dev)), -1);
	EXPECT_EQ(errno, ENOENT);

	/* The user still works until it closes. */
	EXPECT_EQ(d->vdev.open_count, 1u);
	EXPECT_EQ(uvfio_close(fd), 0);
	t.join();
	EXPECT_TRUE(returned);
	EXPECT_EQ(c.close, 1);
	{
		std::lock_guard<std::mutex> l(c.request_lock);
		for (size_t i = 0; i < c.request_counts.size(); i++)
			EXPECT_EQ(c.request_counts[i], i);
	}
	vfio_set_unregister_request_interval_ms(10 * 1000);
	vfio_put_device(&d->vdev);
	EXPECT_EQ(c.release, 1);
}

// Contract: a user that closes from within ops->request (the way a
// well-behaved user answers the request) lets unregister finish.
TEST(UnregisterTest, CloseFromRequestCallback)
{
	LcParent parent;
	LcCounters c;
	lc_device *d = lc_alloc(parent, c);
	ASSERT_FALSE(IS_ERR(d));
	ASSERT_EQ(vfio_register_group_dev(&d->vdev), 0);
	int fd = uvfio_open(dev_name(&parent.dev));
	ASSERT_GE(fd, 0);
	std::thread closer;
	c.on_request = [&](unsigned int count) {
		if (count == 0)
			closer = std::thread([fd] { uvfio_close(fd); });
	};
	vfio_unregister_group_dev(&d->vdev);
	closer.join();
	EXPECT_GE(c.request, 1);
	EXPECT_EQ(c.close, 1);
	vfio_put_device(&d->vdev);
}

// Contract: a device registered without a set is put in a set of its own,
// keyed by the device itself.
TEST(LifecycleTest, SingletonDeviceSet)
{
	LcParent parent;
	LcCounters c;
	lc_device *d = lc_alloc(parent, c);
	ASSERT_FALSE(IS_ERR(d));
	EXPECT_EQ(d->vdev.dev_set, nullptr);
	ASSERT_EQ(vfio_register_group_dev(&d->vdev), 0);
	ASSERT_NE(d->vdev.dev_set, nullptr);
	EXPECT_EQ(d->vdev.dev_set->set_id, &d->vdev);
	EXPECT_EQ(d->vdev.dev_set->device_count, 1u);
	vfio_unregister_group_dev(&d->vdev);
	vfio_put_device(&d->vdev);
}

} // namespace
