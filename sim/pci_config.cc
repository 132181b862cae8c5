// SPDX-License-Identifier: GPL-2.0-only
/*
 * The simulated function's configuration space: registers with per-byte
 * RW / W1C / read-only masks, BAR sizing by masks, the capability list and
 * function-level reset.
 */
#include <cerrno>
#include <cstring>

#include <uvfio/sim/pci_config.h>

#include "sim_types.h"

namespace {

void put8(u8 *a, u32 off, u8 v)
{
	a[off] = v;
}

void put16(u8 *a, u32 off, u16 v)
{
	a[off] = v & 0xff;
	a[off + 1] = v >> 8;
}

void put32(u8 *a, u32 off, u32 v)
{
	for (int i = 0; i < 4; i++)
		a[off + i] = (v >> (8 * i)) & 0xff;
}

u32 align_up(u32 v, u32 a)
{
	return (v + a - 1) & ~(a - 1);
}

bool is_pow2(u64 v)
{
	return v && !(v & (v - 1));
}

/* Capability sizes as placed in the list (dword multiples). */
constexpr u32 kPmSize = 8;
constexpr u32 kMsixSize = 12;
constexpr u32 kVndrSize = SIM_PCI_VNDR_CAP_LEN;

} // namespace

int sim_pci_config_init(struct sim_pci_config *cfg,
			const struct sim_pci_config_desc *desc)
{
	u8 *img = cfg->reset_image;
	u8 *rw = cfg->rw;
	u8 *w1c = cfg->w1c;

	std::memset(img, 0, SIM_PCI_CFG_SIZE);
	std::memset(rw, 0, SIM_PCI_CFG_SIZE);
	std::memset(w1c, 0, SIM_PCI_CFG_SIZE);
	cfg->pm_cap = cfg->msix_cap = cfg->exp_cap = cfg->vndr_cap = 0;

	/* Identification: read-only. */
	put16(img, SIM_PCI_VENDOR_ID, desc->vendor_id);
	put16(img, SIM_PCI_DEVICE_ID, desc->device_id);
	put8(img, SIM_PCI_REVISION_ID, desc->revision);
	put8(img, SIM_PCI_CLASS_PROG, desc->class_code & 0xff);
	put16(img, SIM_PCI_CLASS_PROG + 1, (desc->class_code >> 8) & 0xffff);
	put8(img, SIM_PCI_HEADER_TYPE, 0);	/* type 0, single function */
	put16(img, SIM_PCI_SUBSYSTEM_VENDOR_ID, desc->subsys_vendor_id);
	put16(img, SIM_PCI_SUBSYSTEM_ID, desc->subsys_id);

	/* Command: memory space, bus master, INTx disable. No I/O BARs. */
	u16 cmd_rw = SIM_PCI_COMMAND_MEMORY | SIM_PCI_COMMAND_MASTER;
	if (desc->has_intx)
		cmd_rw |= SIM_PCI_COMMAND_INTX_DISABLE;
	put16(rw, SIM_PCI_COMMAND, cmd_rw);
	/* Status: capability list present; error bits write-1-to-clear. */
	put16(img, SIM_PCI_STATUS, SIM_PCI_STATUS_CAP_LIST);
	put16(w1c, SIM_PCI_STATUS, SIM_PCI_STATUS_ERR_BITS);

	/* Interrupt line is scratch for software; the pin is fixed. */
	put8(rw, SIM_PCI_INTERRUPT_LINE, 0xff);
	put8(img, SIM_PCI_INTERRUPT_PIN, desc->has_intx ? 1 : 0);

	/* BARs: address bits above the size are RW, the rest read-only. */
	for (int i = 0; i < SIM_PCI_NUM_BARS; i++) {
		const struct sim_pci_bar_desc *b = &desc->bars[i];
		u32 reg = SIM_PCI_BASE_ADDRESS_0 + 4 * i;
		if (!b->size)
			continue;
		if (!is_pow2(b->size) || b->size < 16)
			return -EINVAL;
		if (!b->is_64 && b->size > (1ULL << 31))
			return -EINVAL;
		u32 type = (b->is_64 ? SIM_PCI_BAR_MEM_TYPE_64 : 0) |
			   (b->prefetch ? SIM_PCI_BAR_MEM_PREFETCH : 0);
		u64 mask = ~(b->size - 1);
		put32(img, reg, type);
		put32(rw, reg, static_cast<u32>(mask) & ~0xfu);
		if (b->is_64) {
			if (i == SIM_PCI_NUM_BARS - 1 || desc->bars[i + 1].size)
				return -EINVAL;
			put32(rw, reg + 4, static_cast<u32>(mask >> 32));
			i++;
		}
	}

	/* Device-specific registers from 0x40: plain RW storage. */
	if (desc->dev_specific_end < 0x40 || desc->dev_specific_end > 0x90)
		return -EINVAL;
	std::memset(rw + 0x40, 0xff, desc->dev_specific_end - 0x40);

	/* The capability list, in the order PM, MSI-X, PCIe, vendor. */
	u32 pos = align_up(desc->dev_specific_end, 8);
	u8 prev_next = SIM_PCI_CAPABILITY_LIST;
	auto link = [&](u8 id, u32 size) {
		img[prev_next] = static_cast<u8>(pos);
		img[pos] = id;
		prev_next = static_cast<u8>(pos + 1);
		u32 at = pos;
		pos = align_up(pos + size, 4);
		return static_cast<u8>(at);
	};

	/* Power management, version 3: D0 only, PowerState field RW. */
	cfg->pm_cap = link(SIM_PCI_CAP_ID_PM, kPmSize);
	put16(img, cfg->pm_cap + SIM_PCI_PM_PMC, 0x0003);
	put16(rw, cfg->pm_cap + SIM_PCI_PM_CTRL, 0x0003);
	put16(img, cfg->pm_cap + SIM_PCI_PM_CTRL, 0x0008);	/* NoSoftReset */

	if (desc->msix_count) {
		if (desc->msix_count > 2048 ||
		    desc->msix_table_bar >= SIM_PCI_NUM_BARS ||
		    desc->msix_pba_bar >= SIM_PCI_NUM_BARS ||
		    !desc->bars[desc->msix_table_bar].size ||
		    !desc->bars[desc->msix_pba_bar].size ||
		    (desc->msix_table_offset & 7) || (desc->msix_pba_offset & 7))
			return -EINVAL;
		cfg->msix_cap = link(SIM_PCI_CAP_ID_MSIX, kMsixSize);
		put16(img, cfg->msix_cap + SIM_PCI_MSIX_FLAGS,
		      static_cast<u16>(desc->msix_count - 1));
		put16(rw, cfg->msix_cap + SIM_PCI_MSIX_FLAGS,
		      SIM_PCI_MSIX_FLAGS_MASKALL | SIM_PCI_MSIX_FLAGS_ENABLE);
		put32(img, cfg->msix_cap + SIM_PCI_MSIX_TABLE,
		      desc->msix_table_offset | desc->msix_table_bar);
		put32(img, cfg->msix_cap + SIM_PCI_MSIX_PBA,
		      desc->msix_pba_offset | desc->msix_pba_bar);
	}

	if (desc->is_pcie) {
		u8 c = cfg->exp_cap = link(SIM_PCI_CAP_ID_EXP,
					   SIM_PCI_EXP_CAP_SIZE);
		/* Version 2, device/port type 0: PCI Express endpoint. */
		put16(img, c + SIM_PCI_EXP_FLAGS, 0x0002);
		/* 128-byte max payload, role-based errors, FLR. */
		put32(img, c + SIM_PCI_EXP_DEVCAP,
		      SIM_PCI_EXP_DEVCAP_FLR | 0x00008000);
		/*
		 * Device Control: error reporting enables, relaxed ordering,
		 * payload, extended tag, no snoop, read request size are RW.
		 * Initiate FLR always reads 0; a write of 1 is acted on.
		 */
		put16(rw, c + SIM_PCI_EXP_DEVCTL, 0x79ff);
		put16(img, c + SIM_PCI_EXP_DEVCTL, 0x2810);
		/* Device Status: the four error-detected bits are W1C. */
		put16(w1c, c + SIM_PCI_EXP_DEVSTA, 0x000f);
	}

	if (desc->vendor_cap) {
		u8 c = cfg->vndr_cap = link(SIM_PCI_CAP_ID_VNDR, kVndrSize);
		img[c + 2] = SIM_PCI_VNDR_CAP_LEN;
		std::memset(rw + c + 3, 0xff, SIM_PCI_VNDR_CAP_LEN - 3);
	}
	if (pos > 0x100)
		return -EINVAL;
	/* prev_next already reads 0: the list ends there. */

	std::memcpy(cfg->regs, img, SIM_PCI_CFG_SIZE);
	cfg->flrs = 0;
	return 0;
}

void sim_pci_config_read(const struct sim_pci_config *cfg, u32 off, void *buf,
			 size_t len)
{
	std::memcpy(buf, cfg->regs + off, len);
}

void sim_pci_config_write(struct sim_pci_config *cfg, u32 off,
			  const void *buf, size_t len)
{
	const u8 *val = static_cast<const u8 *>(buf);
	bool flr = false;

	for (size_t i = 0; i < len; i++) {
		u32 o = off + static_cast<u32>(i);
		u8 old = cfg->regs[o];
		u8 v = static_cast<u8>((old & ~cfg->rw[o]) | (val[i] & cfg->rw[o]));
		v &= static_cast<u8>(~(val[i] & cfg->w1c[o]));
		cfg->regs[o] = v;
		/* High byte of Device Control: bit 15 is Initiate FLR. */
		if (cfg->exp_cap && o == cfg->exp_cap + SIM_PCI_EXP_DEVCTL + 1u &&
		    (val[i] & (SIM_PCI_EXP_DEVCTL_BCR_FLR >> 8)))
			flr = true;
	}
	if (!flr)
		return;
	if (cfg->flr_request)
		cfg->flr_request(cfg, cfg->hook_arg);
	else
		sim_pci_config_flr(cfg);
}

u16 sim_pci_config_read16(const struct sim_pci_config *cfg, u32 off)
{
	return static_cast<u16>(cfg->regs[off] | (cfg->regs[off + 1] << 8));
}

u32 sim_pci_config_read32(const struct sim_pci_config *cfg, u32 off)
{
	return sim_pci_config_read16(cfg, off) |
	       (static_cast<u32>(sim_pci_config_read16(cfg, off + 2)) << 16);
}

bool sim_pci_config_mem_enabled(const struct sim_pci_config *cfg)
{
	return sim_pci_config_read16(cfg, SIM_PCI_COMMAND) &
	       SIM_PCI_COMMAND_MEMORY;
}

bool sim_pci_config_bus_master(const struct sim_pci_config *cfg)
{
	return sim_pci_config_read16(cfg, SIM_PCI_COMMAND) &
	       SIM_PCI_COMMAND_MASTER;
}

bool sim_pci_config_intx_disabled(const struct sim_pci_config *cfg)
{
	return sim_pci_config_read16(cfg, SIM_PCI_COMMAND) &
	       SIM_PCI_COMMAND_INTX_DISABLE;
}

void sim_pci_config_set_command(struct sim_pci_config *cfg, u16 set, u16 clear)
{
	u16 rw = static_cast<u16>(cfg->rw[SIM_PCI_COMMAND] |
				  (cfg->rw[SIM_PCI_COMMAND + 1] << 8));
	u16 cmd = sim_pci_config_read16(cfg, SIM_PCI_COMMAND);
	cmd = static_cast<u16>(((cmd & ~clear) | set) & rw) |
	      static_cast<u16>(cmd & ~rw);
	put16(cfg->regs, SIM_PCI_COMMAND, cmd);
}

void sim_pci_config_set_status_errors(struct sim_pci_config *cfg, u16 bits)
{
	u16 sts = sim_pci_config_read16(cfg, SIM_PCI_STATUS);
	put16(cfg->regs, SIM_PCI_STATUS,
	      static_cast<u16>(sts | (bits & SIM_PCI_STATUS_ERR_BITS)));
}

void sim_pci_config_flr(struct sim_pci_config *cfg)
{
	std::memcpy(cfg->regs, cfg->reset_image, SIM_PCI_CFG_SIZE);
	cfg->flrs++;
	if (cfg->reset_hook)
		cfg->reset_hook(cfg, cfg->hook_arg);
}
