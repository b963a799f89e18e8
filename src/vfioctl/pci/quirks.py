"""The PCI quirks that shape IOMMU groups, as tables.  Pure data.

From drivers/pci/quirks.c as in Linux 6.1 (each table names its quirk function):
the DMA-alias quirks (a function that DMAs with another function's requester ID),
the bridge flags that change the alias walk, and the ``pci_dev_acs_enabled``
table (devices that isolate, or do not, whatever their ACS capability says).
:mod:`vfioctl.iommu.replay` applies them the way the kernel does.  Keys are
(vendor, device) as ints.
"""

from __future__ import annotations


def devfn(slot: int, fn: int) -> int:
    return (slot << 3) | fn


#: quirk_dma_func0_alias: the device DMAs with function 0's requester ID
DMA_FUNC0 = frozenset({
    (0x1180, 0xE832), (0x1180, 0xE476),      # Ricoh (RH bugzilla 605888)
    (0x6766, 0x3D40), (0x6766, 0x3D41),      # Glenfly
})
#: quirk_dma_func1_alias: the device DMAs with function 1's requester ID
DMA_FUNC1 = frozenset(
    {(0x1B4B, d) for d in (0x9120, 0x9123, 0x9125, 0x9128, 0x9130, 0x9170, 0x9172, 0x917A,
                           0x9182, 0x9183, 0x91A0, 0x9215, 0x9220, 0x9230, 0x9235)}  # Marvell SATA
    | {(0x1103, 0x0642), (0x1103, 0x0645)}   # HighPoint (PCI_VENDOR_ID_TTI)
    | {(0x197B, 0x2392)}                     # JMicron JMB388 ESD
    | {(0x1C28, 0x0122)}                     # Lite-On / Plextor M6E (Marvell 88SS9183)
)
#: quirk_fixed_dma_alias (fixed_dma_alias_tbl): (vendor, device, subvendor, subdevice) -> devfn
DMA_FIXED = {
    (0x9005, 0x0285, 0x9005, 0x02BB): devfn(1, 0),  # Adaptec 3405
    (0x9005, 0x0285, 0x9005, 0x02BC): devfn(1, 0),  # Adaptec 3805
}
#: quirk_mic_x200_dma_alias
DMA_MIC_X200 = frozenset({(0x8086, 0x2260), (0x8086, 0x2264)})
#: quirk_pex_vca_alias: 5 devfns from function 0 of every slot
DMA_VCA = frozenset({(0x8086, d) for d in (0x2954, 0x2955, 0x2956, 0x2958, 0x2959, 0x295A)})
#: quirk_plx_ntb_dma_alias: all 256 devfns
DMA_PLX_NTB = frozenset({(0x10B5, 0x87B0), (0x10B5, 0x87B1)})
#: quirk_use_pcie_bridge_dma_alias: PCIe-to-PCI bridges without a PCIe capability
PCIE_BRIDGE_ALIAS = frozenset({
    (0x1B21, 0x1080),  # ASMedia ASM1083/1085
    (0x10E3, 0x8113),  # Tundra 8113
    (0x1283, 0x8892), (0x1283, 0x8893),  # ITE 8892/8893
    (0x8086, 0x244E),  # Intel 82801
})
#: quirk_bridge_cavm_thrx2_pcie_root: PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT (the alias walk stops here)
XLATE_ROOT = frozenset({(0x14E4, 0x9000), (0x14E4, 0x9084)})

#: pci_quirk_intel_pch_acs_ids (Intel PCH root ports with ACS-like controls, no ACS capability)
INTEL_PCH_ACS_IDS = frozenset(
    list(range(0x3B42, 0x3B52)) + list(range(0x1C10, 0x1C20)) + list(range(0x1E10, 0x1E20))
    + list(range(0x8C10, 0x8C20)) + list(range(0x9C10, 0x9C1C)) + list(range(0x9C90, 0x9C9C))
    + [0x1D10, 0x1D12, 0x1D14, 0x1D16, 0x1D18, 0x1D1A, 0x1D1C, 0x1D1E]
    + list(range(0x8D10, 0x8D1F))
    + [0x8C90, 0x8C92, 0x8C94, 0x8C96, 0x8C98, 0x8C9A, 0x8C9C, 0x8C9E]
)
#: pci_quirk_intel_spt_pch_acs_match: ACS control bits in a dword at offset 8
INTEL_SPT_IDS = frozenset(
    list(range(0xA110, 0xA120)) + list(range(0xA167, 0xA16B))
    + list(range(0xA290, 0xA2A0)) + list(range(0xA2E7, 0xA2EF)) + list(range(0x9D10, 0x9D1C))
)
#: AMD southbridge functions (pci_quirk_amd_sb_acs), only with an AMD IOMMU (ACPI IVRS table)
AMD_SB = frozenset({(0x1002, d) for d in (0x4385, 0x439C, 0x4383, 0x439D, 0x4384, 0x4399)}
                    | {(0x1022, 0x780F), (0x1022, 0x7809)})
#: pci_quirk_mf_endpoint_acs: multifunction devices whose vendors say functions cannot talk
MF_ENDPOINT = frozenset(
    {(0x1924, d) for d in (0x0903, 0x0923, 0x0A03)}  # Solarflare
    | {(0x8086, d) for d in (
        0x10C6, 0x10DB, 0x10DD, 0x10E1, 0x10F1, 0x10F7, 0x10F8, 0x10F9, 0x10FA, 0x10FB, 0x10FC,
        0x1507, 0x1514, 0x151C, 0x1529, 0x152A, 0x154D, 0x154F, 0x1551, 0x1558,   # 82598/82599/X540
        0x1509, 0x150E, 0x150F, 0x1510, 0x1511, 0x1516, 0x1527,                    # 82580
        0x10C9, 0x10E6, 0x10E7, 0x10E8, 0x150A, 0x150D, 0x1518, 0x1526,            # 82576
        0x10A7, 0x10A9, 0x10D6,                                                    # 82575
        0x1521, 0x1522, 0x1523, 0x1524,                                            # I350
        0x105E, 0x105F, 0x1060, 0x10D9,                                            # 82571
        0x15B7, 0x15B8)}                                                           # I219
    | {(0x19A2, 0x0710), (0x10DF, 0x0720)}  # Emulex BE3-R, Skyhawk-R
    | {(0x177D, d) for d in (0xA026, 0xA059, 0xA060)}  # Cavium
    | {(0x14E4, d) for d in (0x16D7, 0x1750, 0x1751, 0x1752, 0x1760, 0x1761, 0x1762, 0x1763)}  # Broadcom
    | {(0x1D17, d) for d in (0x3038, 0x3104, 0x9083)}  # Zhaoxin
)
#: root ports that isolate without an ACS capability, all answering SV|RR|CR|UF
RP_SV_RR_CR_UF = {
    **{(0x17CB, d): "pci_quirk_qcom_rp_acs" for d in (0x0400, 0x0401, 0x0115)},  # Qualcomm
    (0x1DBF, 0x0401): "pci_quirk_qcom_rp_acs",  # HXT SD4800
    (0x10E8, 0xE004): "pci_quirk_xgene_acs",    # APM X-Gene
    **{(0x1DEF, d): "pci_quirk_xgene_acs" for d in range(0xE005, 0xE00D)},  # Ampere
    (0x14E4, 0xD714): "pci_quirk_brcm_acs",     # Broadcom iProc
    **{(0x0014, d): "pci_quirk_loongson_acs" for d in (
        0x3C09, 0x3C19, 0x3C29, 0x7A09, 0x7A19, 0x7A29, 0x7A39, 0x7A49, 0x7A59, 0x7A69)},
    **{(0x1957, d): "pci_quirk_nxp_rp_acs" for d in (
        0x8D81, 0x8DA1, 0x8D83, 0x8D80, 0x8DA0, 0x8D82, 0x8D90, 0x8DB0, 0x8D92, 0x8D91, 0x8DB1, 0x8D93,
        0x8D89, 0x8DA9, 0x8D8B, 0x8D88, 0x8DA8, 0x8D8A, 0x8D98, 0x8DB8, 0x8D9A, 0x8D99, 0x8DB9, 0x8D9B)},
}
ZHAOXIN_PORTS = frozenset(list(range(0x0710, 0x071F)) + [0x0721] + list(range(0x0723, 0x0753)))
WANGXUN = frozenset(list(range(0x0100, 0x0110)) + [0x1001, 0x2001, 0x5010, 0x5025, 0x5040, 0x5110, 0x5125, 0x5140])

#: what we know about but cannot model: (vendor, device or None, class >> 8 or None) -> why
NOT_MODELLED = {
    (0x11F8, None, 0x0680): "Microsemi Switchtec NTB functions add DMA aliases read from the device's BAR "
                            "(quirk_switchtec_ntb_dma_alias)",
    (0x1A03, 0x1150, None): "newer kernels mark the ASPEED AST1150 bridge PCI_DEV_FLAGS_PCI_BRIDGE_NO_ALIAS "
                            "(devices behind it then do not alias to it)",
}
