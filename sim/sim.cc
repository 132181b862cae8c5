// SPDX-License-Identifier: GPL-2.0-only
/*
 * sim/: the simulated PCI function (config space, BARs, DMA engine, workload)
 * lives here. Until it lands, pci_core keeps the BAR and config storage
 * itself; this translation unit keeps the component in the build graph.
 */
namespace uvfio::sim {
/* Version of the simulated hardware model, for stream compatibility. */
extern const unsigned int model_version;
const unsigned int model_version = 0;
} // namespace uvfio::sim
