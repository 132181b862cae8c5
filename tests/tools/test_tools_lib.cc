// SPDX-License-Identifier: GPL-2.0-only
/*
 * tools/lib against the installed-style library: the kernel transport with
 * faked system calls (requests, offsets and errno mapping pass through
 * unchanged), the plain engine's end conditions, and the client's probe,
 * states, save/load and migration on simulated devices; device names
 * (sysfs paths, /dev/vfio/N@NAME) and the VMM-style opener, run over the
 * simulator's transport and over the kernel transport's own code with its
 * system calls routed to uvfio_* (what uvfio-run does for a whole process).
 */
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <csignal>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <thread>
#include <utility>
#include <string>
#include <vector>

#include <uvfio/tools/fsm.h>
#include <uvfio/tools/migration.h>
#include <uvfio/tools/migration_v1.h>
#include <uvfio/tools/plugins.h>
#include <uvfio/tools/rlimit.h>
#include <uvfio/tools/sim_vm.h>
#include <uvfio/tools/vfio_open.h>
#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

#include "sim_syscalls.h"

using namespace uvfio::tools;

namespace {

/* What the fake system calls saw, and what they answer. */
struct FakeKernel {
	unsigned long last_request = 0;
	off_t last_offset = -1;
	int last_flags = 0;
	int fail_errno = 0;
	std::deque<std::pair<ssize_t, int>> reads;	/* (result, errno) */
};
FakeKernel fake;

int fake_ioctl(int, unsigned long request, void *)
{
	fake.last_request = request;
	if (fake.fail_errno) {
		errno = fake.fail_errno;
		return -1;
	}
	return 0;
}

/* A region's offset on a device fd, as a client finds it (-1: none). */
off_t region_offset(Transport &t, int fd, __u32 index)
{
	struct vfio_region_info ri = {};
	ri.argsz = sizeof(ri);
	ri.index = index;
	if (t.ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri) || !ri.size)
		return -1;
	return off_t(ri.offset);
}

ssize_t fake_pread(int, void *buf, size_t count, off_t off)
{
	fake.last_offset = off;
	std::memset(buf, 0xab, count);
	return ssize_t(count);
}

ssize_t fake_read(int, void *buf, size_t count)
{
	if (fake.reads.empty())
		return 0;
	auto [ret, err] = fake.reads.front();
	fake.reads.pop_front();
	if (ret < 0) {
		errno = err;
		return -1;
	}
	size_t n = std::min(size_t(ret), count);
	std::memset(buf, 'x', n);
	return ssize_t(n);
}

// Contract: the kernel transport hands requests and offsets to the system
// calls unchanged and turns -1/errno into -errno (ENOMSG included, so a
// pre-copy pause reads as -ENOMSG); calls it was not given are libc's.
TEST(KernelTransport, PassesCallsAndMapsErrno)
{
	syscall_ops ops;
	ops.ioctl = fake_ioctl;
	ops.pread = fake_pread;
	ops.read = fake_read;
	auto t = make_kernel_transport(ops);
	EXPECT_STREQ(t->name(), "kernel");

	fake = {};
	EXPECT_EQ(t->ioctl(3, VFIO_DEVICE_FEATURE, nullptr), 0);
	EXPECT_EQ(fake.last_request, (unsigned long)VFIO_DEVICE_FEATURE);
	fake.fail_errno = ENOTTY;
	EXPECT_EQ(t->ioctl(3, VFIO_DEVICE_RESET, nullptr), -ENOTTY);

	char buf[8];
	EXPECT_EQ(t->pread(3, buf, sizeof(buf), 0x20000000000LL), 8);
	EXPECT_EQ(fake.last_offset, 0x20000000000LL);

	fake.reads = {{5, 0}, {-1, ENOMSG}, {-1, EIO}};
	EXPECT_EQ(t->read(3, buf, sizeof(buf)), 5);
	EXPECT_EQ(t->read(3, buf, sizeof(buf)), -ENOMSG);
	EXPECT_EQ(t->read(3, buf, sizeof(buf)), -EIO);

	/* write and close: libc's, on a real pipe. */
	int p[2];
	ASSERT_EQ(pipe(p), 0);
	EXPECT_EQ(t->write(p[1], "abc", 3), 3);
	EXPECT_EQ(::read(p[0], buf, 3), 3);
	EXPECT_EQ(t->close(p[1]), 0);
	EXPECT_EQ(t->close(p[1]), -EBADF);
	::close(p[0]);
}

// Contract: the plain engine stops at EOF, at ENOMSG only when asked to
// (pre-copy), fails with the source's errno otherwise, and counts bytes.
TEST(PlainEngine, EndConditions)
{
	syscall_ops ops;
	ops.read = fake_read;
	auto t = make_kernel_transport(ops);
	int p[2];
	ASSERT_EQ(pipe(p), 0);
	fcntl(p[0], F_SETFL, O_NONBLOCK);

	StreamStats st;
	fake.reads = {{1000, 0}, {24, 0}, {-1, ENOMSG}, {7, 0}};
	ASSERT_EQ(plain_copy({t.get(), 9}, {nullptr, p[1]}, true, &st), 0);
	EXPECT_EQ(st.bytes, 1024u);
	char buf[2048];
	EXPECT_EQ(::read(p[0], buf, sizeof(buf)), 1024);

	fake.reads = {{10, 0}, {-1, ENOMSG}};
	EXPECT_EQ(plain_copy({t.get(), 9}, {nullptr, p[1]}, false, nullptr),
		  -ENOMSG);
	fake.reads = {{10, 0}, {-1, EIO}};
	EXPECT_EQ(plain_copy({t.get(), 9}, {nullptr, p[1]}, true, nullptr),
		  -EIO);
	/* A sink that is gone: EPIPE, not a crash. */
	::close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	fake.reads = {{10, 0}};
	EXPECT_EQ(plain_copy({t.get(), 9}, {nullptr, p[1]}, false, nullptr),
		  -EPIPE);
	::close(p[1]);
}

// Contract: fsm_opens_stream() is true exactly for the arcs into a state
// with a stream of its own that start one, as the uAPI documents: not
// where a pre-copy stream carries on, not out of a stream, not staying.
TEST(Fsm, OpensStreamOnlyWhereANewStreamStarts)
{
	using namespace mig_state;
	const struct {
		__u32 from, to;
		bool opens;
	} arcs[] = {
		{STOP, STOP_COPY, true},	{STOP, RESUMING, true},
		{RUNNING, PRE_COPY, true},	{RUNNING_P2P, PRE_COPY_P2P, true},
		{PRE_COPY, STOP_COPY, false},	{PRE_COPY_P2P, STOP_COPY, false},
		{PRE_COPY, PRE_COPY_P2P, false}, {PRE_COPY_P2P, PRE_COPY, false},
		{STOP_COPY, STOP, false},	{RESUMING, STOP, false},
		{RUNNING, RUNNING_P2P, false},	{STOP_COPY, STOP_COPY, false},
	};
	for (const auto &a : arcs)
		EXPECT_EQ(fsm_opens_stream(a.from, a.to), a.opens)
			<< state_name(a.from) << " -> " << state_name(a.to);
}

// Contract: through the simulator's transport the client probes what the
// device offers, sets and reads states, and names states both ways.
TEST(MigrationClient, ProbeAndStates)
{
	SimVm vm;
	std::string why;
	ASSERT_EQ(vm.create("simnic,bdf=0000:00:12.0,mem=1M", 0, &why), 0) << why;
	auto t = make_sim_transport();
	Device d(*t, vm.fd());
	DeviceCaps c;
	ASSERT_EQ(d.probe(&c), 0);
	EXPECT_TRUE(c.migration);
	EXPECT_EQ(c.migration_flags, __u64(VFIO_MIGRATION_STOP_COPY |
					   VFIO_MIGRATION_P2P |
					   VFIO_MIGRATION_PRE_COPY));
	EXPECT_TRUE(c.dma_logging);
	EXPECT_TRUE(c.data_size);
	EXPECT_GT(c.stop_copy_size, 1u << 20);

	int fd;
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_PRE_COPY, &fd), 0);
	ASSERT_GE(fd, 0);
	__u64 initial = 0, dirty = 1;
	EXPECT_EQ(d.precopy_info(fd, &initial, &dirty), 0);
	EXPECT_GT(initial, 1u << 20);
	EXPECT_EQ(dirty, 0u);
	t->close(fd);
	__u32 s;
	ASSERT_EQ(d.get_state(&s), 0);
	EXPECT_STREQ(state_name(s), "pre_copy");
	/* No path from STOP_COPY back into pre-copy: the core's EINVAL. */
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP_COPY, &fd), 0);
	EXPECT_EQ(d.set_state(VFIO_DEVICE_STATE_PRE_COPY), -EINVAL);
	t->close(fd);

	__u32 parsed;
	EXPECT_EQ(parse_state("PRE-COPY-P2P", &parsed), 0);
	EXPECT_EQ(parsed, __u32(VFIO_DEVICE_STATE_PRE_COPY_P2P));
	EXPECT_EQ(parse_state("flying", &parsed), -EINVAL);
}

// Contract: save into a pipe and load from it round-trips a device; a
// short stream fails the load, resets the device and says why.
TEST(MigrationClient, SaveLoadAndShortStream)
{
	SimVm a, b;
	std::string why;
	ASSERT_EQ(a.create("simnic,bdf=0000:00:13.0,mem=256K,seed=4", 0, &why), 0);
	ASSERT_EQ(b.create("simnic,bdf=0000:00:13.1,mem=256K", 0, &why), 0);
	auto t = make_sim_transport();
	Device da(*t, a.fd()), db(*t, b.fd());

	int mfd = memfd_create("t", 0);
	ASSERT_EQ(save_device(da, {nullptr, mfd}, false, nullptr, &why), 0) << why;
	__u32 s;
	ASSERT_EQ(da.get_state(&s), 0);
	EXPECT_EQ(s, __u32(VFIO_DEVICE_STATE_RUNNING));
	off_t len = lseek(mfd, 0, SEEK_CUR);
	lseek(mfd, 0, SEEK_SET);
	StreamStats st;
	ASSERT_EQ(load_device(db, {nullptr, mfd}, true, &st, &why), 0) << why;
	EXPECT_EQ(st.bytes, __u64(len));
	std::vector<char> x(256 << 10), y(256 << 10);
	const off_t bar2 = region_offset(*t, a.fd(), VFIO_PCI_BAR2_REGION_INDEX);
	const off_t bar2_b = region_offset(*t, b.fd(), VFIO_PCI_BAR2_REGION_INDEX);
	ASSERT_EQ(t->pread(a.fd(), x.data(), x.size(), bar2), ssize_t(x.size()));
	ASSERT_EQ(t->pread(b.fd(), y.data(), y.size(), bar2_b), ssize_t(y.size()));
	EXPECT_TRUE(x == y);

	ASSERT_EQ(ftruncate(mfd, len / 2), 0);
	lseek(mfd, 0, SEEK_SET);
	why.clear();
	EXPECT_EQ(load_device(db, {nullptr, mfd}, true, nullptr, &why), -EINVAL);
	EXPECT_NE(why.find("refused"), std::string::npos) << why;
	ASSERT_EQ(db.get_state(&s), 0);
	EXPECT_EQ(s, __u32(VFIO_DEVICE_STATE_RUNNING));	/* reset */
	close(mfd);
}

// Contract: a save into a pipe that leaves the device running hands over
// the state as it was saved: device memory written after save_device()
// returns, before the pipe is read, does not reach the stream (a data fd
// may queue device memory by reference; the client copies it out here).
TEST(MigrationClient, SaveIntoAPipeThenRunKeepsTheSavedBytes)
{
	SimVm a, b;
	std::string why;
	ASSERT_EQ(a.create("simnic,bdf=0000:00:14.0,mem=256K,seed=5", 0, &why), 0);
	ASSERT_EQ(b.create("simnic,bdf=0000:00:14.1,mem=256K", 0, &why), 0);
	auto t = make_sim_transport();
	Device da(*t, a.fd()), db(*t, b.fd());
	int p[2];
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	/* The whole stream fits: nobody reads until the save is over. */
	ASSERT_GE(fcntl(p[1], F_SETPIPE_SZ, 1 << 20), 1 << 20);

	ASSERT_EQ(save_device(da, {nullptr, p[1]}, false, nullptr, &why), 0) << why;
	close(p[1]);
	const off_t bar2 = region_offset(*t, a.fd(), VFIO_PCI_BAR2_REGION_INDEX);
	const off_t bar2_b = region_offset(*t, b.fd(), VFIO_PCI_BAR2_REGION_INDEX);
	std::vector<char> saved(256 << 10), now(256 << 10);
	ASSERT_EQ(t->pread(a.fd(), saved.data(), saved.size(), bar2),
		  ssize_t(saved.size()));
	for (size_t i = 0; i < now.size(); i++)
		now[i] = char(~saved[i]);
	ASSERT_EQ(t->pwrite(a.fd(), now.data(), now.size(), bar2),
		  ssize_t(now.size()));

	ASSERT_EQ(load_device(db, {nullptr, p[0]}, true, nullptr, &why), 0) << why;
	close(p[0]);
	ASSERT_EQ(t->pread(b.fd(), now.data(), now.size(), bar2_b),
		  ssize_t(now.size()));
	EXPECT_TRUE(now == saved);
}

// Contract: live migration of an idle device switches over as soon as a
// pre-copy pass finds nothing left to send (the initial image, then one
// empty pass), not after the maximum number of passes, and ends equal.
TEST(MigrationClient, IdleDeviceSwitchesOverAfterAnEmptyPass)
{
	SimVm a, b;
	std::string why;
	ASSERT_EQ(a.create("simnic,bdf=0000:00:15.0,mem=1M,seed=6", 1 << 20,
			   &why), 0) << why;
	ASSERT_EQ(b.create("simnic,bdf=0000:00:15.1,mem=1M", 1 << 20, &why), 0)
		<< why;
	auto t = make_sim_transport();
	Device da(*t, a.fd()), db(*t, b.fd());
	MigrateOptions opt;
	MigrateReport r;
	ASSERT_EQ(migrate(da, a.guest(), db, b.guest(), opt, {}, &r, &why), 0)
		<< why;
	EXPECT_TRUE(r.precopy);
	ASSERT_EQ(r.passes.size(), 2u);
	EXPECT_EQ(r.passes[1].device_bytes, 0u);
	EXPECT_EQ(r.passes[1].guest_pages, 0u);
	EXPECT_TRUE(r.verified) << r.verify_detail;
}

} // namespace

namespace {

/* A file of n pseudo-random bytes; its fd at offset 0. */
int random_file(size_t n, std::vector<char> *content)
{
	int fd = memfd_create("src", 0);
	content->resize(n);
	unsigned x = 12345;
	for (auto &c : *content)
		c = char((x = x * 1103515245 + 12345) >> 16);
	EXPECT_EQ(write(fd, content->data(), n), ssize_t(n));
	lseek(fd, 0, SEEK_SET);
	return fd;
}

std::vector<char> file_contents(int fd)
{
	std::vector<char> v(size_t(lseek(fd, 0, SEEK_END)));
	EXPECT_EQ(pread(fd, v.data(), v.size(), 0), ssize_t(v.size()));
	return v;
}

// Contract: the io_uring engine copies a stream whole and in order, with
// splice or with registered buffers, for any chunk size and depth,
// between files (whose positions end past the data, as with read/write),
// through a socket pair (a data fd's kind) with a reader on the other
// end, and reports the bytes.
TEST(UringEngine, CopiesInOrder)
{
	std::vector<char> src;
	int in = random_file((5 << 20) + 12345, &src);
	for (bool splice : {true, false}) {
		for (size_t chunk : {size_t(4096), size_t(1 << 20)}) {
			for (unsigned depth : {2u, 5u}) {
				SCOPED_TRACE(testing::Message() << splice << " " << chunk
								<< " " << depth);
				lseek(in, 0, SEEK_SET);
				int out = memfd_create("dst", 0);
				StreamStats st;
				UringOptions o{depth, chunk, splice};
				ASSERT_EQ(uring_copy(in, out, &st, {}, o), 0);
				EXPECT_EQ(st.bytes, src.size());
				/* Positions move as with read/write. */
				EXPECT_EQ(lseek(in, 0, SEEK_CUR), off_t(src.size()));
				EXPECT_EQ(lseek(out, 0, SEEK_CUR), off_t(src.size()));
				EXPECT_TRUE(file_contents(out) == src);
				close(out);
			}
		}
	}
	/* Through a socket, read on the other side by a thread. */
	int sp[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	std::vector<char> got;
	std::thread reader([&] {
		char buf[65536];
		ssize_t n;
		while ((n = read(sp[1], buf, sizeof(buf))) > 0)
			got.insert(got.end(), buf, buf + n);
	});
	lseek(in, 0, SEEK_SET);
	StreamStats st;
	EXPECT_EQ(uring_copy(in, sp[0], &st), 0);
	shutdown(sp[0], SHUT_WR);
	reader.join();
	EXPECT_TRUE(got == src);
	close(sp[0]);
	close(sp[1]);
	close(in);
}

// Contract: a sink that refuses splice (EINVAL on the first splice into it,
// as a kernel driver's resuming data file without splice_write does) still
// gets the whole stream in order: the engine goes on with buffers, and the
// chunks already spliced out of the source reach it too. An O_APPEND file
// refuses splice the same way.
TEST(UringEngine, SinkWithoutSplice)
{
	std::vector<char> src;
	int in = random_file((3 << 20) + 777, &src);
	for (unsigned depth : {2u, 5u}) {
		SCOPED_TRACE(depth);
		lseek(in, 0, SEEK_SET);
		char path[] = "/tmp/uvfio-append-XXXXXX";
		int tmp = mkstemp(path);
		ASSERT_GE(tmp, 0);
		int out = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
		unlink(path);
		ASSERT_GE(out, 0);
		StreamStats st;
		UringOptions o{depth, size_t(1 << 20), true};
		ASSERT_EQ(uring_copy(in, out, &st, {}, o), 0);
		EXPECT_EQ(st.bytes, src.size());
		EXPECT_TRUE(file_contents(tmp) == src);
		close(out);
		close(tmp);
	}
	close(in);
}

// Contract: errors end the copy with their errno: a sink whose reader is
// gone (EPIPE), a source that is not readable (EBADF).
TEST(UringEngine, Errors)
{
	std::vector<char> src;
	int in = random_file(1 << 20, &src);
	int p[2];
	ASSERT_EQ(pipe(p), 0);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	EXPECT_EQ(uring_copy(in, p[1], nullptr), -EPIPE);
	close(p[1]);
	int out = memfd_create("dst", 0);
	EXPECT_EQ(uring_copy(-1, out, nullptr), -EBADF);
	close(out);
	close(in);
}

// Contract: a source that fails while a write is in flight ends the copy
// with the source's errno and does not wait for an operation whose
// completion came in the same batch as the error (that hung half the
// time). A data fd whose driver read fails (an armed fault point) is such
// a source; 20 saves give both orders of the two completions.
TEST(UringEngine, SourceErrorBesideAWrite)
{
	SimVm vm;
	std::string why;
	ASSERT_EQ(vm.create("simnic,bdf=0000:00:14.0,mem=1M,seed=2", 0, &why), 0);
	auto t = make_sim_transport();
	Device d(*t, vm.fd());
	for (int i = 0; i < 20; i++) {
		ASSERT_EQ(uvfio_fault_set("mig.data.read", 2, 0, 0), 0);
		int mfd = memfd_create("t", 0);
		why.clear();
		EXPECT_NE(save_device(d, {nullptr, mfd}, false, nullptr, &why), 0);
		close(mfd);
		EXPECT_EQ(d.reset(), 0);
	}
	uvfio_fault_clear(nullptr);
}

} // namespace

namespace {

/* -------- device names and the VMM-style opener -------- */

int fake_open(const char *path, int flags)
{
	fake.last_flags = flags;
	if (!std::strcmp(path, "/nonexistent")) {
		errno = ENOENT;
		return -1;
	}
	return 42;
}

ssize_t fake_readlink(const char *path, char *buf, size_t len)
{
	if (std::strcmp(path, "/sys/bus/pci/devices/0000:00:02.0/iommu_group")) {
		errno = ENOENT;
		return -1;
	}
	const char t[] = "../../../kernel/iommu_groups/7";
	size_t n = std::min(len, sizeof(t) - 1);
	std::memcpy(buf, t, n);	/* readlink(2): no NUL */
	return ssize_t(n);
}

// Contract: the kernel transport's open adds O_CLOEXEC (nothing the tools
// run inherits a VFIO fd) and maps errno; readlink returns the link's
// target, without a terminator, or -errno.
TEST(KernelTransport, OpenAndReadlink)
{
	syscall_ops ops;
	ops.open = fake_open;
	ops.readlink = fake_readlink;
	auto t = make_kernel_transport(ops);
	EXPECT_EQ(t->open("/dev/vfio/vfio", O_RDWR), 42);
	EXPECT_EQ(fake.last_flags, O_RDWR | O_CLOEXEC);
	EXPECT_EQ(t->open("/nonexistent", O_RDWR), -ENOENT);
	std::string target;
	EXPECT_EQ(t->readlink("/sys/bus/pci/devices/0000:00:02.0/iommu_group",
			      &target), 0);
	EXPECT_EQ(target, "../../../kernel/iommu_groups/7");
	EXPECT_EQ(t->readlink("/sys/bus/pci/devices/0000:00:03.0/iommu_group",
			      &target), -ENOENT);
}

// Contract: the simulator's readlink answers a simulated device's
// iommu_group link as sysfs would (relative, ending in its group number,
// the N of /dev/vfio/N) and ENOENT for any other device or path.
TEST(SimTransport, ReadlinkOfIommuGroup)
{
	SimVm vm;
	std::string why;
	ASSERT_EQ(vm.create("simnic,bdf=0000:00:16.0,mem=256K", 0, &why), 0) << why;
	auto t = make_sim_transport();
	std::string target;
	ASSERT_EQ(t->readlink("/sys/bus/pci/devices/0000:00:16.0/iommu_group",
			      &target), 0);
	EXPECT_EQ(target, "../../../kernel/iommu_groups/" +
				  std::to_string(uvfio_sim_iommu_group("0000:00:16.0")));
	EXPECT_EQ(t->readlink("/sys/bus/pci/devices/0000:00:16.1/iommu_group",
			      &target), -ENOENT);
	EXPECT_EQ(t->readlink("/sys/bus/pci/devices/0000:00:16.0/driver",
			      &target), -ENOENT);
	EXPECT_EQ(t->readlink("/sys/bus/mdev/devices/0a1b2c3d-0000-4000-8000-"
			      "0123456789ab/iommu_group", &target), -ENOENT);
}

// Contract: the three forms parse into the device's name in its group
// (and its sysfs directory, or its group when given); a trailing slash is
// fine; anything else is refused with a reason that names the forms, and
// only paths are device names (a spec never starts with '/').
TEST(DeviceNames, Parse)
{
	DeviceName dn;
	std::string why;
	ASSERT_EQ(parse_device_path("/sys/bus/pci/devices/0000:00:02.0", &dn,
				    &why), 0) << why;
	EXPECT_EQ(dn.name, "0000:00:02.0");
	EXPECT_EQ(dn.sysfs, "/sys/bus/pci/devices/0000:00:02.0");
	EXPECT_EQ(dn.group, "");
	ASSERT_EQ(parse_device_path("/sys/bus/pci/devices/0000:00:02.0/", &dn,
				    &why), 0) << why;
	EXPECT_EQ(dn.sysfs, "/sys/bus/pci/devices/0000:00:02.0");
	EXPECT_EQ(dn.arg, "/sys/bus/pci/devices/0000:00:02.0/");
	const std::string uuid = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";
	ASSERT_EQ(parse_device_path("/sys/bus/mdev/devices/" + uuid, &dn, &why),
		  0) << why;
	EXPECT_EQ(dn.name, uuid);
	ASSERT_EQ(parse_device_path("/dev/vfio/12@0000:3b:00.1", &dn, &why), 0)
		<< why;
	EXPECT_EQ(dn.name, "0000:3b:00.1");
	EXPECT_EQ(dn.group, "/dev/vfio/12");
	EXPECT_EQ(dn.sysfs, "");
	ASSERT_EQ(parse_device_path("/dev/vfio/3@" + uuid, &dn, &why), 0);
	EXPECT_EQ(dn.name, uuid);

	struct Bad {
		const char *name, *says;
	} bad[] = {
		{"/sys/bus/pci/devices/00:02.0", "not a PCI address"},
		{"/sys/bus/pci/devices/0000:00:02.8", "not a PCI address"},
		{"/sys/bus/pci/devices/0000:00:0G.0", "not a PCI address"},
		{"/sys/bus/pci/devices/0000:00:02.0/iommu_group", "not a PCI"},
		{"/sys/bus/mdev/devices/not-a-uuid", "not an mdev UUID"},
		{"/dev/vfio/12", "which device of group 12?"},
		{"/dev/vfio/12@", "not a device name"},
		{"/dev/vfio/x@0000:00:02.0", "not a group number"},
		{"/dev/vfio/vfio", "the container"},
		{"/dev/vfio/devices/vfio0", "not supported"},
		{"/dev/vfio/noiommu-0@0000:00:02.0", "not supported"},
		{"/dev/sda", "/sys/bus/pci/devices/DDDD:BB:DD.F"},
	};
	for (const Bad &b : bad) {
		SCOPED_TRACE(b.name);
		why.clear();
		EXPECT_EQ(parse_device_path(b.name, &dn, &why), -EINVAL);
		EXPECT_NE(why.find(b.says), std::string::npos) << why;
		EXPECT_EQ(why.find('\n'), std::string::npos);
	}
	EXPECT_TRUE(is_device_path("/dev/vfio/1@x"));
	EXPECT_FALSE(is_device_path("simnic,bdf=00:02.0"));
	EXPECT_TRUE(is_pci_address("0000:00:02.0"));
	EXPECT_FALSE(is_pci_address("0000:00:02.0 "));
}

using uvfio_test::uvfio_syscalls;

/* A simulated device, created, for the opener to find by name. */
struct Added {
	std::string bdf;
	explicit Added(const std::string &spec) : bdf(spec_bdf(spec))
	{
		EXPECT_EQ(uvfio_sim_add(spec.c_str()), 0) << spec;
	}
	~Added() { uvfio_sim_remove(bdf.c_str()); }
	std::string group() const
	{
		return "/dev/vfio/" + std::to_string(uvfio_sim_iommu_group(bdf.c_str()));
	}
};

// Contract: a device named by its sysfs path or by /dev/vfio/N@NAME opens
// through container and group as a VMM opens it, over either transport
// (the same opener): the device answers the uAPI, the group is in a
// type1v2 container, and reopen() is the last close (the device is
// RUNNING again); closing releases the group, which opens again.
TEST(VfioOpen, OpensLikeAVmmOverBothTransports)
{
	Added a("simnic,bdf=0000:00:17.0,mem=256K");
	for (bool kernel : {false, true}) {
		auto t = kernel ? make_kernel_transport(uvfio_syscalls())
				: make_sim_transport();
		for (const std::string &name :
		     {std::string("/sys/bus/pci/devices/0000:00:17.0"),
		      a.group() + "@0000:00:17.0"}) {
			SCOPED_TRACE(std::string(t->name()) + " " + name);
			DeviceName dn;
			std::string why;
			ASSERT_EQ(parse_device_path(name, &dn, &why), 0) << why;
			VfioDevice v(*t);
			ASSERT_EQ(v.open(dn, &why), 0) << why;
			EXPECT_EQ(v.name().group, a.group());
			EXPECT_GE(v.container_fd(), 0);
			struct vfio_group_status st = {};
			st.argsz = sizeof(st);
			ASSERT_EQ(t->ioctl(v.group_fd(), VFIO_GROUP_GET_STATUS, &st), 0);
			EXPECT_TRUE(st.flags & VFIO_GROUP_FLAGS_CONTAINER_SET);

			Device d(*t, v.fd());
			DeviceCaps c;
			ASSERT_EQ(d.probe(&c), 0);
			EXPECT_TRUE(c.migration);
			ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP), 0);
			ASSERT_EQ(v.reopen(), 0);
			Device d2(*t, v.fd());
			__u32 s = 0;
			ASSERT_EQ(d2.get_state(&s), 0);
			EXPECT_EQ(s, __u32(VFIO_DEVICE_STATE_RUNNING));

			/* The group is taken while open; free once closed. */
			VfioDevice other(*t);
			why.clear();
			EXPECT_EQ(other.open(dn, &why), -EBUSY);
			EXPECT_NE(why.find(a.group() + ": "), std::string::npos) << why;
			v.close();
			EXPECT_EQ(other.open(dn, &why), 0) << why;
		}
	}
}

// Contract: an opener that fails says, in one line, which name, which
// path or step, and the errno text: a device sysfs does not know (the
// link), a group that is not the device's, a name the group has not; and
// leaves nothing open behind (the group opens again right after).
TEST(VfioOpen, FailuresNameThePathAndErrno)
{
	Added a("simnic,bdf=0000:00:18.0,mem=256K");
	Added b("simnic,bdf=0000:00:18.1,mem=256K");
	auto t = make_kernel_transport(uvfio_syscalls());
	struct Case {
		std::string name;
		int err;
		std::string says;
	} cases[] = {
		{"/sys/bus/pci/devices/0000:00:18.7", -ENOENT,
		 "readlink /sys/bus/pci/devices/0000:00:18.7/iommu_group: No such "
		 "file or directory"},
		{a.group() + "@0000:00:18.1", -ENODEV,
		 a.group() + " has no device \"0000:00:18.1\": No such device"},
		{"/dev/vfio/99999@0000:00:18.0", -ENOENT,
		 "/dev/vfio/99999: No such file or directory"},
	};
	for (const Case &c : cases) {
		SCOPED_TRACE(c.name);
		DeviceName dn;
		std::string why;
		ASSERT_EQ(parse_device_path(c.name, &dn, &why), 0) << why;
		VfioDevice v(*t);
		EXPECT_EQ(v.open(dn, &why), c.err);
		EXPECT_NE(why.find("cannot open " + c.name + ": "), std::string::npos)
			<< why;
		EXPECT_NE(why.find(c.says), std::string::npos) << why;
		EXPECT_EQ(why.find('\n'), std::string::npos);
		EXPECT_EQ(v.fd(), -1);
		EXPECT_EQ(v.group_fd(), -1);
		EXPECT_EQ(v.container_fd(), -1);
	}
	/* The failed GET_DEVICE_FD closed a's group again. */
	DeviceName dn;
	std::string why;
	ASSERT_EQ(parse_device_path(a.group() + "@0000:00:18.0", &dn, &why), 0);
	VfioDevice v(*t);
	EXPECT_EQ(v.open(dn, &why), 0) << why;
}

// Contract: two devices opened by name, each with guest memory mapped in
// its own container, live-migrate through the kernel transport's code
// and end verified; the IOMMU's dirty tracking runs on that memory (with
// nothing written, nothing is reported).
TEST(VfioOpen, MigrateAndIommuDirtyPagesThroughTheKernelTransport)
{
	Added a("simnic,bdf=0000:00:19.0,mem=1M,seed=9");
	Added b("simnic,bdf=0000:00:19.1,mem=1M");
	auto t = make_kernel_transport(uvfio_syscalls());
	VfioDevice va(*t), vb(*t);
	DeviceName na, nb;
	std::string why;
	ASSERT_EQ(parse_device_path("/sys/bus/pci/devices/0000:00:19.0", &na, &why), 0);
	ASSERT_EQ(parse_device_path("/sys/bus/pci/devices/0000:00:19.1", &nb, &why), 0);
	ASSERT_EQ(va.open(na, &why), 0) << why;
	ASSERT_EQ(vb.open(nb, &why), 0) << why;
	ASSERT_EQ(va.map_guest(1 << 20, &why), 0) << why;
	ASSERT_EQ(vb.map_guest(1 << 20, &why), 0) << why;
	EXPECT_EQ(va.guest().iova, VfioDevice::GUEST_IOVA);
	EXPECT_EQ(va.guest().container, va.container_fd());

	Device da(*t, va.fd()), db(*t, vb.fd());
	{
		DirtyTracker tr(da, va.guest());
		ASSERT_EQ(tr.start(false), 0);
		EXPECT_STREQ(tr.mode(), "iommu");
		std::vector<__u64> bm;
		ASSERT_EQ(tr.report(&bm), 0);
		ASSERT_EQ(tr.report(&bm), 0);
		for (__u64 w : bm)
			EXPECT_EQ(w, 0u) << "a page dirty with nothing written";
	}
	MigrateOptions opt;
	MigrateReport r;
	ASSERT_EQ(migrate(da, va.guest(), db, vb.guest(), opt, {}, &r, &why), 0)
		<< why;
	EXPECT_TRUE(r.precopy);
	EXPECT_TRUE(r.verified) << r.verify_detail;
	/* And the destination runs. */
	__u32 s = 0;
	ASSERT_EQ(db.get_state(&s), 0);
	EXPECT_EQ(s, __u32(VFIO_DEVICE_STATE_RUNNING));
}

} // namespace

namespace {

/* -------- the v1 client against a scripted migration region -------- */

/*
 * A device with a v1 migration region, answered by fake system calls as
 * the KABI describes one: region index 9 at offset 9 << 40 (where
 * vfio-pci puts it), vfio_device_migration_info at 0, the data window at
 * 4 KiB. Saving serves `stream` in chunks of at most `chunk` bytes: a
 * data_offset read queues one, the next pending_bytes read counts it as
 * consumed. Resuming appends what each data_size write covers to
 * `resumed`. Every access is logged with its width.
 */
struct FakeV1 {
	bool has_region = true, ndma = false, sparse = false;
	bool broken_chain = false;
	__u64 window_off = 4096, window_size = 8192;
	size_t chunk = 3000;
	__u64 data_offset = 4096;	/* what data_offset reads */
	__u32 device_state = VFIO_DEVICE_STATE_V1_RUNNING;
	std::vector<char> stream, resumed;
	size_t sent = 0;
	__u64 queued = 0;
	bool chunk_queued = false;
	int memfd = -1;			/* the window's bytes */
	std::vector<std::string> log;
	std::vector<__u32> argsz;	/* GET_REGION_INFO of index 9 */
};
FakeV1 fv1;
constexpr int V1FD = 77;
constexpr __u32 V1INDEX = 9;
constexpr off_t V1BASE = off_t(V1INDEX) << 40;

void fv1_reset()
{
	if (fv1.memfd >= 0)
		close(fv1.memfd);
	fv1 = {};
	fv1.memfd = memfd_create("v1window", 0);
	EXPECT_EQ(ftruncate(fv1.memfd, off_t(fv1.window_size)), 0);
}

/* The capability chain of the migration region, at info offset `base`. */
std::vector<char> fv1_caps(__u32 base)
{
	std::vector<char> b;
	auto add = [&](const void *cap, size_t len) {
		size_t at = b.size();
		b.insert(b.end(), static_cast<const char *>(cap),
			 static_cast<const char *>(cap) + len);
		b.resize((b.size() + 7) & ~size_t(7));
		return at;
	};
	std::vector<size_t> at;
	/* Something else first: the walk must follow next. */
	struct vfio_info_cap_header other = {VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 1, 0};
	at.push_back(add(&other, sizeof(other)));
	struct vfio_region_info_cap_type ty = {};
	ty.header = {VFIO_REGION_INFO_CAP_TYPE, 1, 0};
	ty.type = VFIO_REGION_TYPE_MIGRATION_DEPRECATED;
	ty.subtype = VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED;
	at.push_back(add(&ty, sizeof(ty)));
	if (fv1.sparse) {
		alignas(8) char sm[sizeof(struct vfio_region_info_cap_sparse_mmap) +
				   sizeof(struct vfio_region_sparse_mmap_area)] = {};
		struct vfio_region_info_cap_sparse_mmap h = {};
		h.header = {VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, 0};
		h.nr_areas = 1;
		struct vfio_region_sparse_mmap_area a = {fv1.window_off,
							 fv1.window_size};
		std::memcpy(sm, &h, sizeof(h));
		std::memcpy(sm + sizeof(h), &a, sizeof(a));
		at.push_back(add(sm, sizeof(sm)));
	}
	if (fv1.ndma) {
		struct vfio_info_cap_header n = {VFIO_REGION_INFO_CAP_MIG_NDMA, 1, 0};
		at.push_back(add(&n, sizeof(n)));
	}
	for (size_t i = 0; i < at.size(); i++) {
		__u32 next = i + 1 < at.size() ? base + __u32(at[i + 1]) : 0;
		if (i + 1 == at.size() && fv1.broken_chain)
			next = 0xfff0;
		std::memcpy(b.data() + at[i] + offsetof(struct vfio_info_cap_header, next),
			    &next, sizeof(next));
	}
	return b;
}

int fv1_ioctl(int fd, unsigned long request, void *arg)
{
	if (fd != V1FD) {
		errno = EBADF;
		return -1;
	}
	if (request == VFIO_DEVICE_GET_INFO) {
		auto *info = static_cast<struct vfio_device_info *>(arg);
		info->flags = VFIO_DEVICE_FLAGS_PCI;
		info->num_regions = fv1.has_region ? V1INDEX + 1 : V1INDEX;
		info->num_irqs = 0;
		return 0;
	}
	if (request == VFIO_DEVICE_RESET) {
		fv1.log.push_back("reset");
		fv1.device_state = VFIO_DEVICE_STATE_V1_RUNNING;
		return 0;
	}
	if (request != VFIO_DEVICE_GET_REGION_INFO) {
		errno = ENOTTY;
		return -1;
	}
	auto *ri = static_cast<struct vfio_region_info *>(arg);
	if (ri->index != V1INDEX) {
		ri->flags = 0;
		ri->size = 0;
		ri->offset = off_t(ri->index) << 40;
		ri->cap_offset = 0;
		return 0;
	}
	fv1.argsz.push_back(ri->argsz);
	std::vector<char> caps = fv1_caps(sizeof(*ri));
	ri->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
		    VFIO_REGION_INFO_FLAG_CAPS |
		    (fv1.sparse ? VFIO_REGION_INFO_FLAG_MMAP : 0);
	ri->size = fv1.window_off + fv1.window_size;
	ri->offset = V1BASE;
	if (ri->argsz < sizeof(*ri) + caps.size()) {
		ri->argsz = __u32(sizeof(*ri) + caps.size());
		ri->cap_offset = 0;
		return 0;
	}
	ri->cap_offset = sizeof(*ri);
	std::memcpy(reinterpret_cast<char *>(ri) + sizeof(*ri), caps.data(),
		    caps.size());
	return 0;
}

const char *fv1_field(off_t rel)
{
	switch (rel) {
	case 0: return "state";
	case 8: return "pending";
	case 16: return "offset";
	case 24: return "size";
	default: return nullptr;
	}
}

ssize_t fv1_pread(int fd, void *buf, size_t count, off_t off)
{
	const off_t rel = off - V1BASE;
	if (fd != V1FD || off < V1BASE) {
		errno = EINVAL;
		return -1;
	}
	if (__u64(rel) >= fv1.window_off) {
		fv1.log.push_back("r data " + std::to_string(count));
		return ::pread(fv1.memfd, buf, count, rel - off_t(fv1.window_off));
	}
	const char *f = fv1_field(rel);
	if (!f || count != (rel ? 8u : 4u)) {
		fv1.log.push_back("r bad " + std::to_string(rel) + "/" +
				  std::to_string(count));
		errno = EINVAL;
		return -1;
	}
	fv1.log.push_back(std::string("r ") + f);
	__u64 v = 0;
	const bool saving = fv1.device_state & VFIO_DEVICE_STATE_V1_SAVING;
	switch (rel) {
	case 0:
		std::memcpy(buf, &fv1.device_state, 4);
		return 4;
	case 8:
		if (fv1.chunk_queued) {
			fv1.sent += fv1.queued;
			fv1.chunk_queued = false;
		}
		v = fv1.stream.size() - fv1.sent;
		break;
	case 16:
		if (saving && !fv1.chunk_queued) {
			fv1.queued = std::min({__u64(fv1.chunk),
					       __u64(fv1.stream.size() - fv1.sent),
					       fv1.window_size});
			EXPECT_EQ(::pwrite(fv1.memfd, fv1.stream.data() + fv1.sent,
					   fv1.queued, 0), ssize_t(fv1.queued));
			fv1.chunk_queued = true;
		}
		v = fv1.data_offset;
		break;
	case 24:
		v = saving ? fv1.queued : 0;
		break;
	}
	std::memcpy(buf, &v, 8);
	return 8;
}

ssize_t fv1_pwrite(int fd, const void *buf, size_t count, off_t off)
{
	const off_t rel = off - V1BASE;
	if (fd != V1FD || off < V1BASE) {
		errno = EINVAL;
		return -1;
	}
	if (__u64(rel) >= fv1.window_off) {
		fv1.log.push_back("w data " + std::to_string(count));
		return ::pwrite(fv1.memfd, buf, count, rel - off_t(fv1.window_off));
	}
	if (rel == 0 && count == 4) {
		std::memcpy(&fv1.device_state, buf, 4);
		char hex[32];
		std::snprintf(hex, sizeof(hex), "w state %#x", fv1.device_state);
		fv1.log.push_back(hex);
		return 4;
	}
	if (rel == 24 && count == 8) {
		__u64 n;
		std::memcpy(&n, buf, 8);
		fv1.log.push_back("w size " + std::to_string(n));
		size_t at = fv1.resumed.size();
		fv1.resumed.resize(at + n);
		EXPECT_EQ(::pread(fv1.memfd, fv1.resumed.data() + at, n, 0),
			  ssize_t(n));
		return 8;
	}
	fv1.log.push_back("w bad " + std::to_string(rel) + "/" +
			  std::to_string(count));
	errno = EINVAL;
	return -1;
}

void *fv1_mmap(void *, size_t len, int prot, int flags, int fd, off_t off)
{
	if (fd != V1FD || off != V1BASE + off_t(fv1.window_off) ||
	    len != fv1.window_size) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	fv1.log.push_back("mmap");
	return ::mmap(nullptr, len, prot, flags, fv1.memfd, 0);
}

std::unique_ptr<Transport> fv1_transport()
{
	syscall_ops ops;
	ops.ioctl = fv1_ioctl;
	ops.pread = fv1_pread;
	ops.pwrite = fv1_pwrite;
	ops.mmap = fv1_mmap;
	return make_kernel_transport(ops);
}

/* The log from index `from` on, one string. */
std::string fv1_log(size_t from = 0)
{
	std::string s;
	for (size_t i = from; i < fv1.log.size(); i++)
		s += (s.empty() ? "" : ", ") + fv1.log[i];
	return s;
}

std::vector<char> pattern(size_t n, unsigned seed)
{
	std::vector<char> v(n);
	for (auto &c : v)
		c = char((seed = seed * 1103515245 + 12345) >> 16);
	return v;
}

// Contract: the region is found by its type capability (3, subtype 1)
// wherever it is in the chain: GET_REGION_INFO is asked again with the
// argsz the first answer asked for, and the chain is followed by next
// offsets; the sparse mmap areas and the NDMA capability are seen. A
// device without the region is -ENODEV, a chain that leaves the buffer
// -EPROTO, each with one line saying so.
TEST(MigrationV1Client, FindsTheRegionByItsTypeCapability)
{
	fv1_reset();
	fv1.sparse = fv1.ndma = true;
	auto t = fv1_transport();
	V1Region r;
	std::string why;
	ASSERT_EQ(find_v1_region(*t, V1FD, &r, &why), 0) << why;
	EXPECT_EQ(r.index, V1INDEX);
	EXPECT_EQ(r.offset, __u64(V1BASE));
	EXPECT_EQ(r.size, fv1.window_off + fv1.window_size);
	EXPECT_TRUE(r.ndma);
	ASSERT_EQ(r.mmap_areas.size(), 1u);
	EXPECT_EQ(r.mmap_areas[0], std::make_pair(fv1.window_off, fv1.window_size));
	ASSERT_EQ(fv1.argsz.size(), 2u);
	EXPECT_EQ(fv1.argsz[0], sizeof(struct vfio_region_info));
	EXPECT_GT(fv1.argsz[1], sizeof(struct vfio_region_info));

	fv1_reset();	/* no NDMA, no sparse mmap */
	ASSERT_EQ(find_v1_region(*t, V1FD, &r, &why), 0) << why;
	EXPECT_FALSE(r.ndma);
	EXPECT_TRUE(r.mmap_areas.empty());

	fv1_reset();
	fv1.has_region = false;
	EXPECT_EQ(find_v1_region(*t, V1FD, &r, &why), -ENODEV);
	EXPECT_NE(why.find("no v1 migration region"), std::string::npos) << why;

	fv1_reset();
	fv1.broken_chain = true;
	why.clear();
	EXPECT_EQ(find_v1_region(*t, V1FD, &r, &why), -EPROTO);
	EXPECT_NE(why.find("capability chain"), std::string::npos) << why;
	EXPECT_EQ(why.find('\n'), std::string::npos);
}

// Contract: device_state is read and written at its native width (4
// bytes), read-modify-write: bits outside the ones the client sets (the
// reserved ones, and bit 3 where the region has no NDMA capability) are
// written back as read. v2 state names map onto the KABI's bits; the P2P
// states need NDMA (-EOPNOTSUPP, nothing written, without it) and error
// is never written (-EINVAL).
TEST(MigrationV1Client, StateBitsReadModifyWrite)
{
	fv1_reset();
	fv1.device_state = 0x80000000u | VFIO_DEVICE_STATE_V1_RUNNING;
	auto t = fv1_transport();
	Device dev(*t, V1FD);
	MigrationV1 m(dev);
	std::string why;
	ASSERT_EQ(m.open(&why), 0) << why;
	size_t mark = fv1.log.size();
	ASSERT_EQ(m.set_state(VFIO_DEVICE_STATE_STOP_COPY), 0);
	EXPECT_EQ(fv1.device_state, 0x80000000u | VFIO_DEVICE_STATE_V1_SAVING);
	__u32 s = 0;
	ASSERT_EQ(m.get_state(&s), 0);
	EXPECT_EQ(s, __u32(VFIO_DEVICE_STATE_STOP_COPY));
	for (const std::string &e : std::vector<std::string>(
		     fv1.log.begin() + long(mark), fv1.log.end()))
		EXPECT_TRUE(e == "r state" || e.rfind("w state ", 0) == 0) << e;

	mark = fv1.log.size();
	EXPECT_EQ(m.set_state(VFIO_DEVICE_STATE_RUNNING_P2P), -EOPNOTSUPP);
	EXPECT_EQ(m.set_state(VFIO_DEVICE_STATE_PRE_COPY_P2P), -EOPNOTSUPP);
	EXPECT_EQ(m.set_state(VFIO_DEVICE_STATE_ERROR), -EINVAL);
	EXPECT_EQ(fv1_log(mark), "") << "nothing written for a refused state";

	/* Bit 3 is reserved without the capability: kept as read. */
	fv1.device_state = VFIO_DEVICE_STATE_V1_RUNNING | VFIO_DEVICE_STATE_V1_NDMA;
	ASSERT_EQ(m.set_state(VFIO_DEVICE_STATE_STOP), 0);
	EXPECT_EQ(fv1.device_state, __u32(VFIO_DEVICE_STATE_V1_NDMA));

	fv1_reset();
	fv1.ndma = true;
	MigrationV1 n(dev);
	ASSERT_EQ(n.open(&why), 0) << why;
	const std::pair<__u32, __u32> map[] = {
		{VFIO_DEVICE_STATE_RUNNING_P2P, 0x9},
		{VFIO_DEVICE_STATE_PRE_COPY_P2P, 0xb},
		{VFIO_DEVICE_STATE_PRE_COPY, 0x3},
		{VFIO_DEVICE_STATE_STOP_COPY, 0x2},
		{VFIO_DEVICE_STATE_STOP, 0x0},
		{VFIO_DEVICE_STATE_RESUMING, 0x4},
		{VFIO_DEVICE_STATE_RUNNING, 0x1},
	};
	for (auto [state, bits] : map) {
		SCOPED_TRACE(state_name(state));
		ASSERT_EQ(n.set_state(state), 0);
		EXPECT_EQ(fv1.device_state, bits);	/* NDMA now ours */
		ASSERT_EQ(n.get_state(&s), 0);
		EXPECT_EQ(s, state);
	}
	/* Reading: ERROR is SAVING|RESUMING; RESUMING with RUNNING is
	 * invalid; NDMA without RUNNING adds nothing. */
	EXPECT_TRUE(v1_state_of_bits(0x6, &s));
	EXPECT_EQ(s, __u32(VFIO_DEVICE_STATE_ERROR));
	EXPECT_FALSE(v1_state_of_bits(0x5, &s));
	EXPECT_FALSE(v1_state_of_bits(0x7, &s));
	EXPECT_TRUE(v1_state_of_bits(0x8, &s));
	EXPECT_EQ(s, __u32(VFIO_DEVICE_STATE_STOP));
	EXPECT_EQ(v1_bits_text(0x80000003), "RUNNING|SAVING|0x80000000");
	EXPECT_EQ(v1_bits_text(0), "STOP");
}

// Contract: a save follows the KABI's sequence, each field at 8 bytes:
// pending_bytes, data_offset (queues a chunk), data_size, the chunk's
// bytes, pending_bytes again, until pending_bytes reads 0, which ends a
// stop-and-copy stream (EOF) and pauses a pre-copy one (-ENOMSG). The
// bytes are the device's, whole and in order, read with pread or through
// the mmap'd window when the region offers a sparse mmap (then no pread
// of the window at all).
TEST(MigrationV1Client, SavesInTheKabiSequence)
{
	for (bool mapped : {false, true}) {
		SCOPED_TRACE(mapped ? "mmap" : "pread");
		fv1_reset();
		fv1.sparse = mapped;
		fv1.stream = pattern(7000, 1);
		auto t = fv1_transport();
		Device dev(*t, V1FD);
		MigrationV1 m(dev);
		std::string why;
		ASSERT_EQ(m.open(&why, mapped), 0) << why;
		EXPECT_EQ(m.region().mapped_bytes(), mapped ? fv1.window_size : 0);
		Endpoint from;
		ASSERT_EQ(m.set_state(VFIO_DEVICE_STATE_STOP_COPY, &from), 0);
		ASSERT_TRUE(from.valid());
		ASSERT_NE(from.io, nullptr);
		size_t mark = fv1.log.size();
		int out = memfd_create("out", 0);
		StreamStats st;
		ASSERT_EQ(plain_copy(from, {nullptr, out}, false, &st), 0);
		EXPECT_EQ(st.bytes, 7000u);
		EXPECT_TRUE(file_contents(out) == fv1.stream);
		close(out);
		const std::string data = mapped ? "" : ", r data ";
		auto it = [&](int n) {
			return "r pending, r offset, r size" +
			       (mapped ? std::string() : data + std::to_string(n));
		};
		EXPECT_EQ(fv1_log(mark), it(3000) + ", " + it(3000) + ", " +
						 it(1000) + ", r pending");
		m.close_stream(&from);

		/* Pre-copy with nothing pending: a pause, not the end. */
		fv1_reset();
		fv1.sparse = mapped;
		MigrationV1 p(dev);
		ASSERT_EQ(p.open(&why, mapped), 0) << why;
		ASSERT_EQ(p.set_state(VFIO_DEVICE_STATE_PRE_COPY, &from), 0);
		EXPECT_EQ(fv1.device_state, 0x3u);
		char b[16];
		EXPECT_EQ(from.io->read(b, sizeof(b)), -ENOMSG);
		/* Into stop-and-copy: the same stream goes on; now EOF. */
		Endpoint again;
		ASSERT_EQ(p.set_state(VFIO_DEVICE_STATE_STOP_COPY, &again), 0);
		EXPECT_FALSE(again.valid());
		EXPECT_EQ(from.io->read(b, sizeof(b)), 0);
	}
}

// Contract: a load follows the KABI's resuming sequence: per chunk,
// data_offset, the data written there, data_size written; no chunk is
// larger than the window from data_offset, the device gets every byte in
// order, and with a sparse mmap the data goes through the mapping.
TEST(MigrationV1Client, ResumesInChunksOfAtMostTheWindow)
{
	for (bool mapped : {false, true}) {
		SCOPED_TRACE(mapped ? "mmap" : "pwrite");
		fv1_reset();
		fv1.sparse = mapped;
		auto t = fv1_transport();
		Device dev(*t, V1FD);
		MigrationV1 m(dev);
		std::string why;
		ASSERT_EQ(m.open(&why, mapped), 0) << why;
		Endpoint to;
		ASSERT_EQ(m.set_state(VFIO_DEVICE_STATE_RESUMING, &to), 0);
		ASSERT_TRUE(to.valid());
		EXPECT_EQ(fv1.device_state, 0x4u);
		std::vector<char> in;
		int src = random_file(20000, &in);
		size_t mark = fv1.log.size();
		ASSERT_EQ(plain_copy({nullptr, src}, to, false, nullptr), 0);
		close(src);
		EXPECT_TRUE(fv1.resumed == in);
		auto chunk = [&](int n) {
			return "r offset, " +
			       (mapped ? std::string() : "w data " + std::to_string(n) + ", ") +
			       "w size " + std::to_string(n);
		};
		EXPECT_EQ(fv1_log(mark), chunk(8192) + ", " + chunk(8192) + ", " +
						 chunk(3616));
	}
}

// Contract: a region that breaks the KABI fails the stream with -EPROTO
// and a one-line reason (stream_error) rather than reading the wrong
// bytes: a data_offset inside vfio_device_migration_info, and
// pending_bytes with no data in stop-and-copy (data_offset must return
// only once data is there).
TEST(MigrationV1Client, RefusesWhatBreaksTheKabi)
{
	fv1_reset();
	fv1.stream = pattern(100, 2);
	fv1.data_offset = 16;
	auto t = fv1_transport();
	Device dev(*t, V1FD);
	MigrationV1 m(dev);
	std::string why;
	ASSERT_EQ(m.open(&why), 0) << why;
	Endpoint from;
	ASSERT_EQ(m.set_state(VFIO_DEVICE_STATE_STOP_COPY, &from), 0);
	char b[256];
	EXPECT_EQ(from.io->read(b, sizeof(b)), -EPROTO);
	EXPECT_NE(m.stream_error().find("data_offset 16"), std::string::npos)
		<< m.stream_error();

	fv1.data_offset = 4096;
	fv1.chunk = 0;
	fv1.sent = 0;
	fv1.chunk_queued = false;
	ASSERT_EQ(m.set_state(VFIO_DEVICE_STATE_STOP), 0);
	ASSERT_EQ(m.set_state(VFIO_DEVICE_STATE_STOP_COPY, &from), 0);
	EXPECT_TRUE(m.stream_error().empty()) << "a new stream, a new error";
	EXPECT_EQ(from.io->read(b, sizeof(b)), -EPROTO);
	EXPECT_NE(m.stream_error().find("data_size 0"), std::string::npos)
		<< m.stream_error();

	/* Through save_device: the failure and the reason in one line. */
	int out = memfd_create("out", 0);
	why.clear();
	fv1.device_state = VFIO_DEVICE_STATE_V1_RUNNING;
	EXPECT_EQ(save_device(m, {nullptr, out}, false, nullptr, &why), -EPROTO);
	EXPECT_NE(why.find("data_size 0"), std::string::npos) << why;
	close(out);
}

} // namespace

namespace {

/* -------- the v1 client on the core's region -------- */

/* A device's whole v1 or v2 save, in memory. */
std::vector<char> saved(Migration &m, std::string *why)
{
	int mfd = memfd_create("save", 0);
	std::vector<char> v;
	if (!save_device(m, {nullptr, mfd}, false, nullptr, why))
		v = file_contents(mfd);
	close(mfd);
	return v;
}

// Contract: open_migration finds the core's v1 region on a device with
// migration (NDMA offered where the driver has P2P: simnic, not simmin;
// its data window mmap'd, through either transport), and on a device whose region is turned off
// (mig_v1=off) fails with -ENODEV and one line saying so; v2 needs no
// region.
TEST(MigrationV1OnDevices, FindsTheCoreRegion)
{
	SimVm a, b, c;
	std::string why;
	ASSERT_EQ(a.create("simnic,bdf=0000:00:1a.0,mem=256K", 0, &why), 0) << why;
	ASSERT_EQ(b.create("simmin,bdf=0000:00:1a.1,mem=256K", 0, &why), 0) << why;
	ASSERT_EQ(c.create("simnic,bdf=0000:00:1a.2,mem=256K,mig_v1=off", 0, &why),
		  0) << why;
	auto t = make_sim_transport();
	Device da(*t, a.fd()), db(*t, b.fd()), dc(*t, c.fd());
	MigrationV1 ma(da), mb(db);
	ASSERT_EQ(ma.open(&why), 0) << why;
	ASSERT_EQ(mb.open(&why), 0) << why;
	EXPECT_GE(ma.region().region().index, __u32(VFIO_PCI_NUM_REGIONS));
	EXPECT_TRUE(ma.region().region().ndma);
	EXPECT_FALSE(mb.region().region().ndma);
	EXPECT_GT(ma.region().mapped_bytes(), 0u);
	__u32 s;
	ASSERT_EQ(ma.get_state(&s), 0);
	EXPECT_EQ(s, __u32(VFIO_DEVICE_STATE_RUNNING));

	/* The kernel transport's own calls (what uvfio-run routes) find and
	 * map it too. */
	auto k = make_kernel_transport(uvfio_syscalls());
	Device dk(*k, a.fd());
	MigrationV1 mk(dk);
	ASSERT_EQ(mk.open(&why), 0) << why;
	EXPECT_EQ(mk.region().mapped_bytes(), ma.region().mapped_bytes());

	std::unique_ptr<Migration> m;
	why.clear();
	EXPECT_EQ(open_migration(dc, Protocol::V1, &m, &why), -ENODEV);
	EXPECT_NE(why.find("no v1 migration region"), std::string::npos) << why;
	EXPECT_EQ(why.find('\n'), std::string::npos);
	EXPECT_EQ(open_migration(dc, Protocol::V2, &m, &why), 0);
	EXPECT_EQ(m->protocol(), Protocol::V2);
}

// Contract: the region carries the driver's own stream: a v1 save (through
// the mmap'd window or with pread) is byte for byte a v2 save of the same
// state; a v1 save loads through v2 and a v2 save through v1, each
// leaving the destination equal to the source (BAR2) and running.
TEST(MigrationV1OnDevices, StreamsAreTheSameBothWays)
{
	SimVm a, b;
	std::string why;
	ASSERT_EQ(a.create("simnic,bdf=0000:00:1b.0,mem=2M,seed=11", 0, &why), 0);
	ASSERT_EQ(b.create("simnic,bdf=0000:00:1b.1,mem=2M", 0, &why), 0);
	auto t = make_sim_transport();
	Device da(*t, a.fd()), db(*t, b.fd());
	MigrationV2 a2(da), b2(db);
	MigrationV1 a1(da), a1p(da), b1(db);
	ASSERT_EQ(a1.open(&why), 0) << why;
	ASSERT_EQ(a1p.open(&why, false), 0) << why;
	ASSERT_EQ(b1.open(&why), 0) << why;
	EXPECT_EQ(a1p.region().mapped_bytes(), 0u);

	std::vector<char> v2 = saved(a2, &why);
	ASSERT_GT(v2.size(), 2u << 20) << why;
	EXPECT_TRUE(saved(a1, &why) == v2) << "v1 (mmap) " << why;
	EXPECT_TRUE(saved(a1p, &why) == v2) << "v1 (pread) " << why;

	const off_t bar2 = region_offset(*t, a.fd(), VFIO_PCI_BAR2_REGION_INDEX);
	const off_t bar2_b = region_offset(*t, b.fd(), VFIO_PCI_BAR2_REGION_INDEX);
	std::vector<char> x(2 << 20), y(2 << 20);
	ASSERT_EQ(t->pread(a.fd(), x.data(), x.size(), bar2), ssize_t(x.size()));
	for (auto [load, save] : {std::pair<Migration *, Migration *>{&b1, &a2},
				  {&b2, &a1}}) {
		SCOPED_TRACE(load == &b1 ? "v2 save, v1 load" : "v1 save, v2 load");
		ASSERT_EQ(db.reset(), 0);
		int mfd = memfd_create("s", 0);
		ASSERT_EQ(save_device(*save, {nullptr, mfd}, false, nullptr, &why), 0)
			<< why;
		lseek(mfd, 0, SEEK_SET);
		StreamStats st;
		ASSERT_EQ(load_device(*load, {nullptr, mfd}, true, &st, &why), 0)
			<< why;
		close(mfd);
		EXPECT_EQ(st.bytes, v2.size());
		ASSERT_EQ(t->pread(b.fd(), y.data(), y.size(), bar2_b),
			  ssize_t(y.size()));
		EXPECT_TRUE(x == y);
		__u32 s;
		ASSERT_EQ(load->get_state(&s), 0);
		EXPECT_EQ(s, __u32(VFIO_DEVICE_STATE_RUNNING));
	}

	/* Half a stream through the window: refused, the device reset. */
	int mfd = memfd_create("half", 0);
	ASSERT_EQ(write(mfd, v2.data(), v2.size() / 2), ssize_t(v2.size() / 2));
	lseek(mfd, 0, SEEK_SET);
	why.clear();
	EXPECT_EQ(load_device(b1, {nullptr, mfd}, true, nullptr, &why), -EINVAL);
	EXPECT_NE(why.find("refused"), std::string::npos) << why;
	close(mfd);
	__u32 s;
	ASSERT_EQ(b1.get_state(&s), 0);
	EXPECT_EQ(s, __u32(VFIO_DEVICE_STATE_RUNNING));
}

// Contract: a live migration runs with either protocol on either side
// (the stream is the same): v1 to v1, v1 to v2, v2 to v1, each verified;
// v1 pre-copy carries simnic's device memory before the switch-over.
TEST(MigrationV1OnDevices, MigratesAcrossProtocols)
{
	for (auto [sp, dp] : {std::pair{Protocol::V1, Protocol::V1},
			      {Protocol::V1, Protocol::V2},
			      {Protocol::V2, Protocol::V1}}) {
		SCOPED_TRACE(std::string(protocol_name(sp)) + " -> " +
			     protocol_name(dp));
		SimVm a, b;
		std::string why;
		ASSERT_EQ(a.create("simnic,bdf=0000:00:1c.0,mem=1M,seed=12", 1 << 20,
				   &why), 0) << why;
		ASSERT_EQ(b.create("simnic,bdf=0000:00:1c.1,mem=1M", 1 << 20, &why),
			  0) << why;
		auto t = make_sim_transport();
		Device da(*t, a.fd()), db(*t, b.fd());
		std::unique_ptr<Migration> ma, mb;
		ASSERT_EQ(open_migration(da, sp, &ma, &why), 0) << why;
		ASSERT_EQ(open_migration(db, dp, &mb, &why), 0) << why;
		MigrateOptions opt;
		MigrateReport r;
		ASSERT_EQ(migrate(*ma, a.guest(), *mb, b.guest(), opt, {}, &r, &why),
			  0) << why;
		EXPECT_TRUE(r.precopy);
		ASSERT_FALSE(r.passes.empty());
		EXPECT_GT(r.passes[0].device_bytes, 1u << 20);
		EXPECT_TRUE(r.verified) << r.verify_detail;
		__u32 s;
		ASSERT_EQ(mb->get_state(&s), 0);
		EXPECT_EQ(s, __u32(VFIO_DEVICE_STATE_RUNNING));
	}
}

} // namespace

namespace {

/* Open descriptors of this process, by /proc/self/fd (its own dir fd not
 * counted). */
int count_fds()
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (struct dirent *e = readdir(d))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

/* State digest of a device, stopped first (a running one has none). */
int stopped_digest(Device &dev, __u64 *digest)
{
	int ret = dev.set_state(VFIO_DEVICE_STATE_STOP);
	if (ret)
		return ret;
	uint64_t h;
	if (uvfio_sim_state_digest(dev.fd(), &h))
		return -errno;
	*digest = h;
	return 0;
}

// Contract: a v2 migration (pre-copy, DMA logging, the io_uring engine's
// stop-copy, verification) holds a bounded number of descriptors while it
// streams and leaves none behind: after it, the process has exactly the
// descriptors it had before (the devices' own stay, as a VMM holds them).
//
// Observed (15 before, 15 after): a peak of +8 while both streams are
// open, 4 per data fd (the user's fd, a second descriptor of that socket,
// the core's end of the socketpair, the pump's eventfd); +25 when the
// sampler thread catches the stop-copy inside the io_uring engine (its
// ring and 8 pipes: 17 more), as it does in the slower sanitizer builds.
// The progress callbacks only see the pre-copy passes. Bound: 32 = the
// two streams' 8, the engine's 17 and the verification's memfd, rounded
// up; a descriptor leaked per chunk, per pass or per stream exceeds it
// or shows in "after".
TEST(MigrationFds, OneMigrationLeavesNoDescriptorBehind)
{
	SimVm a, b;
	std::string why;
	ASSERT_EQ(a.create("simnic,bdf=0000:00:1d.0,mem=1M,seed=13", 1 << 20,
			   &why), 0) << why;
	ASSERT_EQ(b.create("simnic,bdf=0000:00:1d.1,mem=1M", 1 << 20, &why), 0)
		<< why;
	auto t = make_sim_transport();
	Device da(*t, a.fd()), db(*t, b.fd());
	MigrateOptions opt;
	MigrateReport r;

	const int before = count_fds();
	ASSERT_GT(before, 0);
	std::atomic<int> peak{before};
	auto observe = [&](__u64) {
		int n = count_fds(), p = peak.load();
		while (n > p && !peak.compare_exchange_weak(p, n))
			;
	};
	std::atomic<bool> done{false};
	std::thread sampler([&] {
		while (!done.load())
			observe(0);
	});
	int ret = migrate(da, a.guest(), db, b.guest(), opt,
			  [&] { observe(0); }, &r, &why, observe);
	done = true;
	sampler.join();
	ASSERT_EQ(ret, 0) << why;
	EXPECT_TRUE(r.verified) << r.verify_detail;
	const int after = count_fds();

	std::printf("fds: before %d, peak %d (+%d), after %d\n", before,
		    peak.load(), peak.load() - before, after);
	EXPECT_EQ(after, before) << "descriptors leaked by one migration";
	EXPECT_GE(peak.load(), before + 8) << "both streams were not observed";
	EXPECT_LE(peak.load() - before, 32);
}

// Contract: 256 migrations run at once in one process, each through
// tools/lib's migrate() on a thread of its own, under the default limits
// once raise_nofile_limit() has raised the soft RLIMIT_NOFILE (as the
// tools do): every one succeeds, verifies (migrate()'s own check), and
// leaves its destination with its source's state (the drivers' state
// digests, both stopped), with no descriptor left behind.
//
// Under ThreadSanitizer it passes but TSan reports a race on fd numbers
// (socketpair() in vfio_mig_stream_open, pipe2() in send_ref, against an
// earlier socketpair() of another thread): core/kernel/file.cc's fd table closes
// with syscall(SYS_close), which TSan does not see, so when another
// thread's next descriptor gets the same number TSan finds no ordering
// between the two. The kernel orders them; the fix belongs in the core
// (a close TSan sees), not here.
TEST(MigrationConcurrency, TwoHundredFiftySixPairsAtOnce)
{
	constexpr int PAIRS = 256;
	ASSERT_EQ(raise_nofile_limit(), 0);
	const int before = count_fds();

	struct Result {
		int ret = -EINPROGRESS;
		std::string why;
		bool verified = false;
		__u64 src_digest = 0, dst_digest = 0;
	};
	std::vector<Result> res(PAIRS);
	/* Every pair created before any migrates: the streams overlap. */
	std::barrier ready(PAIRS);
	auto t = make_sim_transport();

	auto pair = [&](int i) {
		Result &out = res[size_t(i)];
		char sa[64], sb[64];
		std::snprintf(sa, sizeof(sa),
			      "simnic,bdf=0000:%02x:%02x.0,mem=1M,seed=%d",
			      0x40 + (i >> 5), i & 31, i + 1);
		std::snprintf(sb, sizeof(sb), "simnic,bdf=0000:%02x:%02x.1,mem=1M",
			      0x40 + (i >> 5), i & 31);
		SimVm a, b;
		if ((out.ret = a.create(sa, 64 << 10, &out.why)) ||
		    (out.ret = b.create(sb, 64 << 10, &out.why))) {
			ready.arrive_and_drop();
			return;
		}
		ready.arrive_and_wait();
		Device da(*t, a.fd()), db(*t, b.fd());
		MigrateOptions opt;
		MigrateReport r;
		out.ret = migrate(da, a.guest(), db, b.guest(), opt, {}, &r,
				  &out.why);
		out.verified = r.verified;
		if (!out.ret) {
			if ((out.ret = stopped_digest(da, &out.src_digest)) ||
			    (out.ret = stopped_digest(db, &out.dst_digest)))
				out.why = "state digest: " +
					  std::string(strerror(-out.ret));
		}
	};
	std::vector<std::thread> threads;
	for (int i = 0; i < PAIRS; i++)
		threads.emplace_back(pair, i);
	for (auto &th : threads)
		th.join();

	int ok = 0;
	for (int i = 0; i < PAIRS; i++) {
		const Result &r = res[size_t(i)];
		EXPECT_EQ(r.ret, 0) << "pair " << i << ": " << r.why;
		EXPECT_TRUE(r.ret || r.verified) << "pair " << i;
		EXPECT_TRUE(r.ret || r.src_digest == r.dst_digest)
			<< "pair " << i << ": the destination's state differs";
		ok += !r.ret && r.verified && r.src_digest == r.dst_digest;
	}
	std::printf("%d of %d concurrent migrations verified\n", ok, PAIRS);
	EXPECT_EQ(count_fds(), before);
}

// Contract: the plugins on UVFIO_DRIVER_PATH are what the core says they
// are (uvfio_driver_plugin()): NAME.so, the first directory that has it
// wins, only names a spec can give (no hidden or odd names, nothing but
// .so files), missing directories and empty entries skipped, listed in
// name order; tools/lib's list is that list. uvfio_driver_plugin_load()
// loads by name as a spec naming it would: a file that does not load says
// why, naming itself, in a buffer it is cut to fit; no such plugin or no
// spec name is ENOENT; a registered (built-in) name is EEXIST and loads
// nothing; a spec naming the plugin takes the same file and logs the
// same reason.
TEST(DriverPlugins, FoundInPathOrderAndLoadErrorsSayWhy)
{
	char tmpl[] = "/tmp/uvfio-plugins-XXXXXX";
	ASSERT_NE(mkdtemp(tmpl), nullptr);
	std::string root = tmpl, a = root + "/a", b = root + "/b";
	ASSERT_EQ(mkdir(a.c_str(), 0755), 0);
	ASSERT_EQ(mkdir(b.c_str(), 0755), 0);
	auto touch = [](const std::string &f, const char *text) {
		FILE *fp = std::fopen(f.c_str(), "w");
		ASSERT_NE(fp, nullptr);
		std::fputs(text, fp);
		std::fclose(fp);
	};
	/* Long enough for the loader to read a header, which is not ELF's. */
	std::string not_elf(4096, 'x');
	touch(b + "/zeta.so", not_elf.c_str());
	touch(b + "/alpha.so", not_elf.c_str());
	touch(a + "/alpha.so", "first");
	touch(a + "/notes.txt", "");
	touch(a + "/.hidden.so", "");
	touch(a + "/bad name.so", "");
	/* A built-in driver's name: the built-in wins. */
	touch(b + "/simnic.so", not_elf.c_str());

	/* The environment as the core reads it; restored however we leave. */
	struct Env {
		std::string old;
		bool had;
		explicit Env(const std::string &v)
		{
			const char *o = std::getenv("UVFIO_DRIVER_PATH");
			had = o;
			old = o ? o : "";
			setenv("UVFIO_DRIVER_PATH", v.c_str(), 1);
		}
		~Env()
		{
			if (had)
				setenv("UVFIO_DRIVER_PATH", old.c_str(), 1);
			else
				unsetenv("UVFIO_DRIVER_PATH");
		}
	} env(root + "/none:" + a + "::" + b);

	using Plugin = std::pair<std::string, std::string>;
	std::vector<Plugin> listed;
	const char *name, *file;
	for (unsigned int i = 0; !uvfio_driver_plugin(i, &name, &file); i++)
		listed.emplace_back(name, file);
	EXPECT_EQ(errno, ENOENT);
	ASSERT_EQ(listed.size(), 3u);
	EXPECT_EQ(listed[0], Plugin("alpha", a + "/alpha.so"));
	EXPECT_EQ(listed[1], Plugin("simnic", b + "/simnic.so"));
	EXPECT_EQ(listed[2], Plugin("zeta", b + "/zeta.so"));
	EXPECT_EQ(uvfio_driver_plugin(0, nullptr, nullptr), 0);
	EXPECT_EQ(uvfio_driver_plugin(3, &name, &file), -1);
	EXPECT_EQ(errno, ENOENT);

	std::vector<uvfio::tools::PluginFile> found =
		uvfio::tools::find_driver_plugins();
	ASSERT_EQ(found.size(), listed.size());
	for (size_t i = 0; i < found.size(); i++) {
		EXPECT_EQ(found[i].name, listed[i].first);
		EXPECT_EQ(found[i].path, listed[i].second);
	}
	EXPECT_EQ(uvfio::tools::find_driver_plugin("zeta"), b + "/zeta.so");
	EXPECT_EQ(uvfio::tools::find_driver_plugin("nosuch"), "");
	/* A name is a file name, never a path. */
	EXPECT_EQ(uvfio::tools::find_driver_plugin("../b/zeta"), "");

	char why[512];
	EXPECT_EQ(uvfio_driver_plugin_load("zeta", why, sizeof(why)), -1);
	EXPECT_EQ(errno, EINVAL);
	std::string zeta_why = why;
	EXPECT_EQ(zeta_why.rfind("driver plugin " + b + "/zeta.so: ", 0), 0u)
		<< zeta_why;
	EXPECT_NE(zeta_why.find("ELF"), std::string::npos) << zeta_why;
	char small[8];
	EXPECT_EQ(uvfio_driver_plugin_load("zeta", small, sizeof(small)), -1);
	EXPECT_EQ(std::string(small), zeta_why.substr(0, 7));
	EXPECT_EQ(uvfio_driver_plugin_load("zeta", nullptr, 0), -1);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(uvfio_driver_plugin_load("nosuch", why, sizeof(why)), -1);
	EXPECT_EQ(errno, ENOENT);
	EXPECT_NE(std::string(why).find("nosuch"), std::string::npos) << why;
	EXPECT_EQ(uvfio_driver_plugin_load("../b/zeta", why, sizeof(why)), -1);
	EXPECT_EQ(errno, ENOENT);
	EXPECT_EQ(uvfio_driver_plugin_load(".hidden", why, sizeof(why)), -1);
	EXPECT_EQ(errno, ENOENT);
	EXPECT_EQ(uvfio_driver_plugin_load("simnic", why, sizeof(why)), -1);
	EXPECT_EQ(errno, EEXIST);
	EXPECT_EQ(uvfio_driver_plugin_load(nullptr, why, sizeof(why)), -1);
	EXPECT_EQ(errno, EFAULT);

	std::string msg;
	EXPECT_EQ(uvfio::tools::load_driver_plugin("zeta", &msg), -EINVAL);
	EXPECT_EQ(msg, zeta_why);
	EXPECT_EQ(uvfio::tools::load_driver_plugin("simnic", &msg), -EEXIST);

	/* A spec naming a plugin: the same file, the same reason, logged. */
	std::vector<std::string> log;
	uvfio_set_log_fn(
		[](int, const char *line, void *opaque) {
			static_cast<std::vector<std::string> *>(opaque)->push_back(
				line);
		},
		&log);
	EXPECT_EQ(uvfio_sim_add("zeta,bdf=0000:00:1f.0"), -1);
	EXPECT_EQ(errno, ENOENT);
	EXPECT_EQ(uvfio_sim_add("alpha,bdf=0000:00:1f.0"), -1);
	EXPECT_EQ(errno, ENOENT);
	uvfio_set_log_fn(nullptr, nullptr);
	auto logged = [&](const std::string &text) {
		return std::any_of(log.begin(), log.end(), [&](auto &l) {
			return l.find(text) != std::string::npos;
		});
	};
	EXPECT_TRUE(logged(zeta_why));
	EXPECT_TRUE(logged("driver plugin " + a + "/alpha.so: "));
	EXPECT_FALSE(logged(b + "/alpha.so"));

	for (const char *f : {"/a/alpha.so", "/a/notes.txt", "/a/.hidden.so",
			      "/a/bad name.so", "/b/alpha.so", "/b/zeta.so",
			      "/b/simnic.so"})
		unlink((root + f).c_str());
	rmdir(a.c_str());
	rmdir(b.c_str());
	rmdir(root.c_str());
}

} // namespace
