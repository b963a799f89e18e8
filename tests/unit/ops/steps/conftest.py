"""The steps' tests act on the fake host with its simulated PCI core, the journal locked."""

import pytest

from vfioctl.ops.journal import Journal
from vfioctl.ops.steps.base import Exec


@pytest.fixture
def x(host):
    """What a step acts on: the fake host (simulated kernel) and its journal, locked."""
    with Journal(host, lock_timeout=1) as journal:
        yield Exec(host, journal)
