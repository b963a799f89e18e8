"""modules.dep and modules.builtin are read in linear time: a 60,000-line or 1,000,000-line
file, or one line of 120,000 characters, made `check` run past 30 s (the module-name pattern
backtracked quadratically on each long line)."""

from __future__ import annotations

import time

import pytest

from vfioctl.host.modules import module_index, module_state

REL = "6.1.0-test-amd64"


@pytest.mark.parametrize("name", ["modules.dep", "modules.builtin"])
@pytest.mark.parametrize("text", [
    "".join(f"kernel/drivers/{'a' * 500}{i}\n" for i in range(60000)),
    "".join(f"k/{i}.ko:\n" for i in range(1_000_000)),
    "a" * 120000 + "\n",
    ("b" * 2000 + ".ko.x ") * 60 + "\n",
], ids=["60k-long-lines", "1M-lines", "one-120k-line", "ko-lookalikes"])
def test_module_indexes_read_in_linear_time(fake, name, text):
    (fake.root / "lib/modules" / REL / name).write_text(text)
    h = fake.host()
    t = time.monotonic()
    idx = module_index(h, name)
    assert time.monotonic() - t < 5
    assert len(idx) in (0, 1_000_000)


def test_module_names_are_still_read(fake):
    (fake.root / "lib/modules" / REL / "modules.dep").write_text(
        "kernel/drivers/vfio/pci/vfio-pci.ko.xz: kernel/drivers/vfio/vfio.ko\nkernel/x/e1000e.ko:\nnot a module\n")
    h = fake.host()
    assert module_index(h, "modules.dep") == {"vfio_pci": "kernel/drivers/vfio/pci/vfio-pci.ko.xz",
                                              "e1000e": "kernel/x/e1000e.ko"}
    assert module_state(h, "vfio_pci")[0] == "loadable"
