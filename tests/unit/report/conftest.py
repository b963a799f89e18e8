"""Fixtures of the report tests."""

import pytest
from pciviews import topo_tree


@pytest.fixture
def tree(tmp_path):
    """Host bridge; an isolating root port with a GPU+audio; a root port without ACS with a NIC
    that has two VFs; a PCIe-to-PCI bridge with a conventional NIC behind it."""
    return topo_tree(tmp_path)
