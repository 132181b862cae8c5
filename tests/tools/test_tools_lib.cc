// SPDX-License-Identifier: GPL-2.0-only
/*
 * tools/lib against the installed-style library: the kernel transport with
 * faked system calls (requests, offsets and errno mapping pass through
 * unchanged), the plain engine's end conditions, and the client's probe,
 * states, save/load and migration on simulated devices.
 */
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cerrno>
#include <cstring>
#include <deque>
#include <thread>
#include <string>
#include <vector>

#include <uvfio/tools/migration.h>
#include <uvfio/tools/sim_vm.h>
#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

using namespace uvfio::tools;

namespace {

/* What the fake system calls saw, and what they answer. */
struct FakeKernel {
	unsigned long last_request = 0;
	off_t last_offset = -1;
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
	off_t bar2 = off_t(VFIO_PCI_BAR2_REGION_INDEX) << 40;
	ASSERT_EQ(t->pread(a.fd(), x.data(), x.size(), bar2), ssize_t(x.size()));
	ASSERT_EQ(t->pread(b.fd(), y.data(), y.size(), bar2), ssize_t(y.size()));
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
	const off_t bar2 = off_t(VFIO_PCI_BAR2_REGION_INDEX) << 40;
	std::vector<char> saved(256 << 10), now(256 << 10);
	ASSERT_EQ(t->pread(a.fd(), saved.data(), saved.size(), bar2),
		  ssize_t(saved.size()));
	for (size_t i = 0; i < now.size(); i++)
		now[i] = char(~saved[i]);
	ASSERT_EQ(t->pwrite(a.fd(), now.data(), now.size(), bar2),
		  ssize_t(now.size()));

	ASSERT_EQ(load_device(db, {nullptr, p[0]}, true, nullptr, &why), 0) << why;
	close(p[0]);
	ASSERT_EQ(t->pread(b.fd(), now.data(), now.size(), bar2),
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
