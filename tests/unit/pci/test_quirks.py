"""The kernel's quirk tables, as in 6.1."""

def test_quirk_tables_as_in_6_1():
    from vfioctl.pci import quirks as Q

    # pci_quirk_intel_pch_acs_ids: Ibexpeak, Cougarpoint, Pantherpoint, Lynxpoint-H 16 each;
    # Lynxpoint-LP, Wildcat 12 each; Patsburg 8; Wellsburg 15; 9 series 8
    assert len(Q.INTEL_PCH_ACS_IDS) == 119
    assert (0x8086, 0x10C9) in Q.MF_ENDPOINT and (0x1B4B, 0x9230) in Q.DMA_FUNC1
    assert Q.devfn(0x1F, 7) == 0xFF
