// SPDX-License-Identifier: GPL-2.0-only
/*
 * copy_{from,to}_user: bad user pointers fail the copy (bytes not copied
 * returned) instead of crashing, as the kernel's do.
 */
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <uvfio/linux/err.h>
#include <uvfio/linux/slab.h>
#include <uvfio/linux/uaccess.h>

namespace {

// Contract: a good pointer copies everything and returns 0.
TEST(UaccessTest, GoodPointersCopy)
{
	char src[64], dst[64];
	std::memset(src, 0x5a, sizeof(src));
	std::memset(dst, 0, sizeof(dst));
	EXPECT_EQ(copy_from_user(dst, src, sizeof(src)), 0u);
	EXPECT_EQ(std::memcmp(src, dst, sizeof(src)), 0);
	std::memset(dst, 0, sizeof(dst));
	EXPECT_EQ(copy_to_user(dst, src, sizeof(src)), 0u);
	EXPECT_EQ(std::memcmp(src, dst, sizeof(src)), 0);
	EXPECT_EQ(copy_from_user(dst, nullptr, 0), 0u);
}

// Contract: NULL and unmapped user addresses copy nothing.
TEST(UaccessTest, BadPointersFail)
{
	char buf[16] = {};
	EXPECT_EQ(copy_from_user(buf, nullptr, sizeof(buf)), sizeof(buf));
	EXPECT_EQ(copy_to_user(nullptr, buf, sizeof(buf)), sizeof(buf));
	EXPECT_EQ(copy_from_user(buf, reinterpret_cast<void *>(0x10), 8), 8u);
	EXPECT_EQ(copy_to_user(reinterpret_cast<void *>(0x10), buf, 8), 8u);
}

// Contract: writing to read-only user memory fails; a copy that runs into
// an unmapped page reports the bytes it could not copy.
TEST(UaccessTest, ReadOnlyAndPartial)
{
	long page = sysconf(_SC_PAGESIZE);
	char *p = static_cast<char *>(mmap(nullptr, 2 * page,
					   PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	ASSERT_NE(p, MAP_FAILED);
	char buf[32] = {1};

	ASSERT_EQ(mprotect(p, page, PROT_READ), 0);
	EXPECT_NE(copy_to_user(p, buf, sizeof(buf)), 0u);
	EXPECT_EQ(copy_from_user(buf, p, sizeof(buf)), 0u);

	ASSERT_EQ(mprotect(p, page, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(munmap(p + page, page), 0);
	/* 16 bytes before the hole, 16 in it. */
	unsigned long left = copy_from_user(buf, p + page - 16, sizeof(buf));
	EXPECT_GT(left, 0u);
	EXPECT_LE(left, 16u);
	munmap(p, page);
}

// Contract: uvfio_pin_user() says 0 only for memory a direct write cannot
// fault on: private anonymous memory writable across every VMA it spans
// (however many), not yet touched pages included. A hole is -EFAULT; a
// read-only page anywhere in the span, or a shared mapping past the end of
// its file, is never 0 (-EOPNOTSUPP: the copies decide, or -EFAULT).
TEST(UaccessTest, PinUserOnlyWhatAWriteCannotFault)
{
	long page = sysconf(_SC_PAGESIZE);
	void *k = nullptr;
	char *p = static_cast<char *>(mmap(nullptr, 4 * page,
					   PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	ASSERT_NE(p, MAP_FAILED);

	/* Untouched, then split into VMAs of different protections. */
	EXPECT_EQ(uvfio_pin_user(p, 4 * page, &k), 0);
	EXPECT_EQ(k, p);
	ASSERT_EQ(mprotect(p + page, page, PROT_READ | PROT_WRITE | PROT_EXEC),
		  0);
	EXPECT_EQ(uvfio_pin_user(p + 10, 3 * page, &k), 0);
	p[4 * page - 1] = 1;

	ASSERT_EQ(mprotect(p + 2 * page, page, PROT_READ), 0);
	EXPECT_NE(uvfio_pin_user(p, 4 * page, &k), 0);
	EXPECT_NE(uvfio_pin_user(p + 2 * page + 8, 8, &k), 0);
	EXPECT_EQ(uvfio_pin_user(p, 2 * page, &k), 0);
	ASSERT_EQ(mprotect(p + 2 * page, page, PROT_READ | PROT_WRITE), 0);

	ASSERT_EQ(munmap(p + 3 * page, page), 0);
	EXPECT_EQ(uvfio_pin_user(p + 2 * page, 2 * page, &k), -EFAULT);
	EXPECT_EQ(uvfio_pin_user(p + 3 * page, 1, &k), -EFAULT);
	munmap(p, 3 * page);

	/* A shared mapping of one page of a file, two pages long. */
	int fd = memfd_create("pin", MFD_CLOEXEC);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(ftruncate(fd, page), 0);
	char *m = static_cast<char *>(mmap(nullptr, 2 * page,
					   PROT_READ | PROT_WRITE, MAP_SHARED,
					   fd, 0));
	ASSERT_NE(m, MAP_FAILED);
	EXPECT_EQ(uvfio_pin_user(m, page, &k), 0);
	EXPECT_NE(uvfio_pin_user(m, 2 * page, &k), 0);
	munmap(m, 2 * page);
	close(fd);
}

// Contract: memdup_user returns ERR_PTR(-EFAULT) for a bad pointer.
TEST(UaccessTest, MemdupUser)
{
	void *p = memdup_user(reinterpret_cast<void *>(0x10), 8);
	ASSERT_TRUE(IS_ERR(p));
	EXPECT_EQ(PTR_ERR(p), -EFAULT);
	const char s[] = "abc";
	p = memdup_user(s, sizeof(s));
	ASSERT_FALSE(IS_ERR(p));
	EXPECT_STREQ(static_cast<char *>(p), "abc");
	kfree(p);
}

} // namespace
