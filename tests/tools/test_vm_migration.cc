// SPDX-License-Identifier: GPL-2.0-only
/*
 * Several devices, one VM (tools/lib's migrate_vm() over SimVm's
 * create_vm()): simnics whose DMA engines write into each other's BAR2
 * through the container's P2P windows, migrated together in QEMU's order;
 * the unsafe order without the P2P step as its negative control; the
 * refusal of a device without VFIO_MIGRATION_P2P among several.
 */
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include <uvfio/tools/migration.h>
#include <uvfio/tools/sim_vm.h>
#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

#include "../test_util.h"

using namespace uvfio::tools;

namespace {

constexpr size_t GUEST = 4 << 20;

std::vector<std::string> specs(const char *driver, unsigned bus, size_t n,
			       const char *extra = "")
{
	std::vector<std::string> v;
	for (size_t i = 0; i < n; i++)
		v.push_back(fmt::format("{},bdf=0000:{:02x}:{:02x}.0,mem=1M{}",
					driver, bus, i + 1, extra));
	return v;
}

/* A VM's devices as migrate_vm() takes them, over one transport. */
struct Pairs {
	std::unique_ptr<Transport> t = make_sim_transport();
	std::vector<std::unique_ptr<Device>> devs;
	std::vector<std::unique_ptr<MigrationV2>> migs;
	std::vector<VmDevice> list;

	Pairs(const SimVm &src, const SimVm &dst)
	{
		for (size_t i = 0; i < src.devices(); i++) {
			devs.push_back(std::make_unique<Device>(*t, src.fd(i)));
			migs.push_back(std::make_unique<MigrationV2>(*devs.back()));
			devs.push_back(std::make_unique<Device>(*t, dst.fd(i)));
			migs.push_back(std::make_unique<MigrationV2>(*devs.back()));
			list.push_back({migs[2 * i].get(), migs[2 * i + 1].get(),
					src.bdf(i)});
		}
	}
	__u32 state(size_t dev, bool src)
	{
		__u32 s = ~0u;
		devs[2 * dev + (src ? 0 : 1)]->get_state(&s);
		return s;
	}
};

/* Peer writes device i's workload completed, into any peer. */
__u64 peer_writes_from(const SimVm &vm, size_t i)
{
	__u64 n = 0;
	for (size_t j = 0; j < vm.devices(); j++)
		n += vm.peer_writes_done(i, j);
	return n;
}

/* Wait until cond() (the workloads are timed, the test is not). */
template <typename F> bool wait_for(F cond, int seconds = 60)
{
	auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
	while (!cond()) {
		if (std::chrono::steady_clock::now() > end)
			return false;
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}
	return true;
}

} // namespace

// Contract: four simnics in one VM (one container, one guest memory, each
// BAR2 mapped at a P2P window), each running a seeded workload of which
// one descriptor in four writes into a peer's BAR2, migrate in QEMU's P2P
// order with pre-copy while the workloads run: each destination, once
// loaded, has its source's state (the drivers' state digests, taken at
// that moment, outside the library), and no source changes after its
// save (its digest after the migration is the one at its save); the
// library's verification (every pair re-saved, guest memory) agrees,
// per device too; every source ends stopped and every destination
// running. 50 runs, 50 seeds.
TEST(VmMigration, FourSimnicsWritingIntoPeersVerify)
{
	for (unsigned run = 0; run < 50; run++) {
		SCOPED_TRACE("run " + std::to_string(run));
		SimVm src, dst;
		std::string why;
		ASSERT_EQ(src.create_vm(specs("simnic", 0x10, 4, ",seed=7"), GUEST,
					&why), 0) << why;
		ASSERT_EQ(dst.create_vm(specs("simnic", 0x20, 4), GUEST, &why), 0)
			<< why;
		for (size_t i = 0; i < 4; i++) {
			ASSERT_NE(src.p2p_window(i).first, 0u);
			ASSERT_EQ(src.p2p_window(i), dst.p2p_window(i));
		}
		for (size_t i = 0; i < 4; i++)
			ASSERT_EQ(src.start_workload(i, run * 4 + i + 1, 20000, true,
						     &why), 0) << why;
		/* Each engine has reached a peer before the migration starts. */
		for (size_t i = 0; i < 4; i++)
			ASSERT_TRUE(wait_for([&] { return peer_writes_from(src, i) > 0; }))
				<< "device " << i << " wrote into no peer";

		Pairs p(src, dst);
		VmMigrateOptions opt;
		opt.base.max_passes = 4;
		opt.base.min_pass_ms = 2;
		opt.base.cpu_written = src.cpu_written();
		std::vector<uint64_t> at_save(4, 0);
		std::string digest_error;
		opt.on_device_saved = [&](size_t i) {
			uint64_t d = 0;
			if (uvfio_sim_state_digest(src.fd(i), &at_save[i]) ||
			    uvfio_sim_state_digest(dst.fd(i), &d))
				digest_error += " no digest of device " + std::to_string(i);
			else if (d != at_save[i])
				digest_error += " device " + std::to_string(i) +
						" loaded a state other than its source's";
		};
		VmMigrateReport r;
		int ret = migrate_vm(p.list, src.guest(), dst.guest(), opt,
				     [&] { src.stop_workload(); }, &r, &why);
		ASSERT_EQ(ret, 0) << why;
		EXPECT_EQ(digest_error, "");
		for (size_t i = 0; i < 4; i++) {
			uint64_t d = 0;
			EXPECT_EQ(uvfio_sim_state_digest(src.fd(i), &d), 0);
			EXPECT_EQ(d, at_save[i]) << "source " << i
						 << " changed after its save";
		}
		EXPECT_TRUE(r.precopy);
		EXPECT_TRUE(r.p2p);
		EXPECT_EQ(r.dirty_tracking, "dma-logging");
		EXPECT_TRUE(r.verified) << r.verify_detail;
		ASSERT_EQ(r.devices.size(), 4u);
		for (size_t i = 0; i < 4; i++) {
			EXPECT_TRUE(r.devices[i].verified)
				<< r.devices[i].name << ": " << r.devices[i].verify_detail;
			EXPECT_GT(r.devices[i].stop_copy_bytes, 0u);
			EXPECT_EQ(p.state(i, true), VFIO_DEVICE_STATE_STOP);
			EXPECT_EQ(p.state(i, false), VFIO_DEVICE_STATE_RUNNING);
		}
	}
}

// Contract: the unsafe order (no P2P step; each device stopped and saved
// while the others still run) loses the writes peers make into a device
// already saved, and the verification says so, naming the device. Made
// certain by the hooks: while a device's stream runs its peers are idle
// (a write then would tear the stream, and the destination refuses it at
// load, which is the other way the unsafe order fails); once it is
// saved, the peers still running post again until they completed writes
// into it. The first device's re-saved source then differs from its
// destination, and the VM is not verified.
TEST(VmMigration, UnsafeOrderLosesPeerWritesAndVerificationNamesTheDevice)
{
	constexpr size_t N = 4;
	SimVm src, dst;
	std::string why;
	ASSERT_EQ(src.create_vm(specs("simnic", 0x30, N, ",seed=3"), GUEST, &why),
		  0) << why;
	ASSERT_EQ(dst.create_vm(specs("simnic", 0x40, N), GUEST, &why), 0) << why;
	for (size_t i = 0; i < N; i++)
		ASSERT_EQ(src.start_workload(i, 100 + i, 20000, true, &why), 0)
			<< why;

	Pairs p(src, dst);
	VmMigrateOptions opt;
	opt.unsafe_no_p2p = true;
	opt.base.max_passes = 2;
	opt.base.min_pass_ms = 2;
	opt.base.cpu_written = src.cpu_written();
	std::string hook_error;
	opt.on_device_stop = [&](size_t i) {
		src.stop_workload(i);	/* its vCPU */
		for (size_t j = i + 1; j < N; j++)
			if (src.drain_workload(j, 30000))
				hook_error = "device " + std::to_string(j) +
					     " did not drain";
	};
	std::vector<uint64_t> at_save(N, 0);
	opt.on_device_saved = [&](size_t i) {
		if (uvfio_sim_state_digest(src.fd(i), &at_save[i]))
			hook_error = "no digest";
		if (i + 1 == N)
			return;		/* no peer runs any more */
		std::string w;
		for (size_t j = i + 1; j < N; j++)
			if (src.start_workload(j, 1000 * (i + 1) + j, 20000, true, &w))
				hook_error = w;
		auto into_i = [&] {
			__u64 n = 0;
			for (size_t j = i + 1; j < N; j++)
				n += src.peer_writes_done(j, i);
			return n;
		};
		/* Several, so that one rewriting equal bytes cannot hide the
		 * loss. */
		if (!wait_for([&] { return into_i() >= 8; }))
			hook_error = "the peers wrote nothing into device " +
				     std::to_string(i);
	};
	VmMigrateReport r;
	int ret = migrate_vm(p.list, src.guest(), dst.guest(), opt, {}, &r, &why);
	src.stop_workload();
	ASSERT_EQ(ret, 0) << why;
	ASSERT_EQ(hook_error, "");
	/* The peers did change the first source after its save. */
	uint64_t now = 0;
	ASSERT_EQ(uvfio_sim_state_digest(src.fd(0), &now), 0);
	EXPECT_NE(now, at_save[0]);
	EXPECT_FALSE(r.p2p);
	EXPECT_FALSE(r.verified);
	EXPECT_FALSE(r.devices[0].verified);
	EXPECT_EQ(r.devices[0].verify_detail, "device state differs");
	EXPECT_NE(r.verify_detail.find(src.bdf(0) + ": device state differs"),
		  std::string::npos) << r.verify_detail;
	/* The last one was saved after every peer had stopped. */
	EXPECT_TRUE(r.devices[N - 1].verified) << r.devices[N - 1].verify_detail;
}

// Contract: among several devices, one without VFIO_MIGRATION_P2P (simmin:
// STOP_COPY only) makes migrate_vm() refuse with -EOPNOTSUPP, naming that
// device and the flag, before any device changes state; with
// unsafe_no_p2p the same VM migrates (no P2P step, IOMMU dirty tracking
// because simmin has no DMA logging) and verifies, nothing writing.
TEST(VmMigration, RefusesADeviceWithoutP2pUnlessForced)
{
	SimVm src, dst;
	std::string why;
	std::vector<std::string> s = specs("simnic", 0x50, 2),
				 d = specs("simnic", 0x60, 2);
	s.push_back("simmin,bdf=0000:50:09.0,mem=1M");
	d.push_back("simmin,bdf=0000:60:09.0,mem=1M");
	ASSERT_EQ(src.create_vm(s, GUEST, &why), 0) << why;
	ASSERT_EQ(dst.create_vm(d, GUEST, &why), 0) << why;

	Pairs p(src, dst);
	VmMigrateOptions opt;
	VmMigrateReport r;
	EXPECT_EQ(migrate_vm(p.list, src.guest(), dst.guest(), opt, {}, &r, &why),
		  -EOPNOTSUPP);
	EXPECT_NE(why.find("0000:50:09.0"), std::string::npos) << why;
	EXPECT_NE(why.find("VFIO_MIGRATION_P2P"), std::string::npos) << why;
	for (size_t i = 0; i < 3; i++) {
		EXPECT_EQ(p.state(i, true), VFIO_DEVICE_STATE_RUNNING);
		EXPECT_EQ(p.state(i, false), VFIO_DEVICE_STATE_RUNNING);
	}

	why.clear();
	opt.unsafe_no_p2p = true;
	ASSERT_EQ(migrate_vm(p.list, src.guest(), dst.guest(), opt, {}, &r, &why),
		  0) << why;
	EXPECT_FALSE(r.p2p);
	EXPECT_FALSE(r.precopy);	/* simmin has none */
	EXPECT_EQ(r.dirty_tracking, "iommu");
	EXPECT_TRUE(r.verified) << r.verify_detail;
	for (size_t i = 0; i < 3; i++)
		EXPECT_EQ(p.state(i, false), VFIO_DEVICE_STATE_RUNNING);
}

// Contract: one device through migrate_vm() is a migration as migrate()
// does it, with the P2P states on the way when the device has them, and
// a single-device SimVm keeps its API (device 0, no P2P window).
TEST(VmMigration, OneDeviceAndTheSingleDeviceApi)
{
	SimVm src, dst;
	std::string why;
	ASSERT_EQ(src.create("simnic,bdf=0000:70:01.0,mem=1M,seed=5", GUEST, &why),
		  0) << why;
	ASSERT_EQ(dst.create("simnic,bdf=0000:70:02.0,mem=1M", GUEST, &why), 0)
		<< why;
	EXPECT_EQ(src.devices(), 1u);
	EXPECT_EQ(src.fd(), src.fd(0));
	EXPECT_EQ(src.p2p_window(0).second, 0u);
	ASSERT_EQ(src.start_workload(7, 20000, &why), 0) << why;
	Pairs p(src, dst);
	VmMigrateOptions opt;
	opt.base.cpu_written = src.cpu_written();
	VmMigrateReport r;
	ASSERT_EQ(migrate_vm(p.list, src.guest(), dst.guest(), opt,
			     [&] { src.stop_workload(); }, &r, &why), 0) << why;
	EXPECT_TRUE(r.p2p);
	EXPECT_TRUE(r.verified) << r.verify_detail;
}

// Contract: a failure in the middle of the switch-over (the second
// device's PRE_COPY_P2P -> STOP_COPY arc, after the first was saved) fails
// migrate_vm() naming that device, and rolls the whole VM back as
// migrate() does one device: every source RUNNING again, every
// destination reset (RUNNING, ready for another try); a second try
// succeeds; and two VMs of four devices leave no descriptor behind.
TEST(VmMigration, FailureRollsTheWholeVmBackAndLeavesNoDescriptor)
{
	const int before = uvfio_test::count_open_fds();
	ASSERT_GT(before, 0);
	{
		SimVm src, dst;
		std::string why;
		ASSERT_EQ(src.create_vm(specs("simnic", 0x80, 4, ",seed=9"), GUEST,
					&why), 0) << why;
		ASSERT_EQ(dst.create_vm(specs("simnic", 0x90, 4), GUEST, &why), 0)
			<< why;
		for (size_t i = 0; i < 4; i++)
			ASSERT_EQ(src.start_workload(i, 50 + i, 20000, true, &why), 0)
				<< why;
		Pairs p(src, dst);
		VmMigrateOptions opt;
		opt.base.max_passes = 2;
		opt.base.cpu_written = src.cpu_written();
		std::vector<size_t> saved;
		opt.on_device_saved = [&](size_t i) { saved.push_back(i); };
		VmMigrateReport r;
		ASSERT_EQ(uvfio_fault_set("mig.arc.PRE_COPY_P2P->STOP_COPY", 2, 0, 0),
			  0);
		int ret = migrate_vm(p.list, src.guest(), dst.guest(), opt,
				     [&] { src.stop_workload(); }, &r, &why);
		uvfio_fault_clear(nullptr);
		EXPECT_LT(ret, 0);
		EXPECT_EQ(saved, std::vector<size_t>{0});
		EXPECT_NE(why.find(src.bdf(1) + ": source cannot enter STOP_COPY"),
			  std::string::npos) << why;
		for (size_t i = 0; i < 4; i++) {
			EXPECT_EQ(p.state(i, true), VFIO_DEVICE_STATE_RUNNING);
			EXPECT_EQ(p.state(i, false), VFIO_DEVICE_STATE_RUNNING);
		}

		why.clear();
		opt.on_device_saved = {};
		ASSERT_EQ(migrate_vm(p.list, src.guest(), dst.guest(), opt, {}, &r,
				     &why), 0) << why;
		EXPECT_TRUE(r.verified) << r.verify_detail;
	}
	EXPECT_EQ(uvfio_test::count_open_fds(), before) << "descriptors left behind";
}
