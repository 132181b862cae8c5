/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Core-private: this process's VMAs as procfs tells them, for the checks
 * the kernel makes by walking its own VMAs (pinning user memory,
 * following a BAR mmap at MAP_DMA).
 */
#ifndef UVFIO_CORE_KERNEL_PROCMAP_H
#define UVFIO_CORE_KERNEL_PROCMAP_H

#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <linux/types.h>

/*
 * PROCMAP_QUERY (Linux 6.11, <linux/fs.h>): the VMA covering an address,
 * from a /proc/<pid>/maps fd, in one ioctl. Declared here because Debian
 * 12's headers predate it.
 */
struct procmap_query {
	__u64 size;
	__u64 query_flags;
	__u64 query_addr;
	__u64 vma_start;
	__u64 vma_end;
	__u64 vma_flags;
	__u64 vma_page_size;
	__u64 vma_offset;
	__u64 inode;
	__u32 dev_major;
	__u32 dev_minor;
	__u32 vma_name_size;
	__u32 build_id_size;
	__u64 vma_name_addr;
	__u64 build_id_addr;
};
constexpr unsigned long PROCMAP_QUERY_IOCTL =
	_IOWR('f', 17, struct procmap_query);
static_assert(PROCMAP_QUERY_IOCTL == 0xc0686611UL);
/* vma_flags, and query_flags' "covering VMA must have" bits. */
constexpr __u64 PROCMAP_QUERY_VMA_READABLE = 0x01;
constexpr __u64 PROCMAP_QUERY_VMA_WRITABLE = 0x02;

/* All of a procfs file's text from fd (what could be read). */
inline std::string procfs_read_all(int fd)
{
	std::string text;
	char buf[8192];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		text.append(buf, static_cast<size_t>(n));
	}
	return text;
}

#endif /* UVFIO_CORE_KERNEL_PROCMAP_H */
