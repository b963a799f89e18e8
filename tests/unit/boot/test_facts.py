"""Boot facts: what the early-boot files are made from (targets, host modules, IDs)."""

from __future__ import annotations

from bootsetup import facts_for, prepare


# ---------------------------------------------------------------- facts
def test_facts_targets_host_modules_and_ids(fake):
    host = prepare(fake)
    config, facts = facts_for(host)
    assert {str(k): [str(t.address) for t in v] for k, v in facts.targets.items()} == {
        "0000:00:07.0": ["0000:00:07.0"],
        "0000:01:01.0": ["0000:01:01.0", "0000:01:02.0"],  # the bridge 00:05.0 is not taken
    }
    assert {m: [str(a) for a in v] for m, v in facts.host_modules.items()} == {
        "e1000": ["0000:01:01.0", "0000:01:02.0"], "e1000e": ["0000:00:07.0"]}
    # 8086:10d3 is also the host's own 00:02.0: never by ID.  Both 8086:100e are configured.
    assert facts.unique_ids == ["8086:100e"]
    assert facts.initramfs == "initramfs-tools"


def test_ids_option_when_every_twin_is_configured(fake):
    host = prepare(fake)
    _, facts = facts_for(host, '[[device]]\naddress="00:02.0"\nid="8086:10d3"\n'
                               '[[device]]\naddress="00:07.0"\nid="8086:10d3"\n')
    assert facts.unique_ids == ["8086:10d3"]


def test_no_ids_option_for_ids_a_pf_can_create(fake):
    host = prepare(fake)
    # the nvme PF's VFs would carry 1b36:0010 too
    _, facts = facts_for(host, '[[device]]\naddress="00:04.0"\nid="1b36:0010"\n')
    assert facts.unique_ids == []
    assert list(facts.host_modules) == ["nvme"]


def test_no_ids_option_when_another_file_sets_it(fake):
    host = prepare(fake)
    (fake.root / "etc/modprobe.d").mkdir(parents=True)
    (fake.root / "etc/modprobe.d/gpu.conf").write_text("options vfio-pci ids=10de:1b80\n")
    _, facts = facts_for(host)
    assert facts.unique_ids == []
    assert any("/etc/modprobe.d/gpu.conf already sets vfio-pci ids=" in n for n in facts.notes)


def test_builtin_host_driver_is_not_intercepted(fake):
    host = prepare(fake)
    (fake.root / "lib/modules/6.1.0-test-amd64/modules.builtin").write_text(
        "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko\n")
    _, facts = facts_for(host)
    assert "e1000e" not in facts.host_modules
    assert any("host driver e1000e is built into the kernel" in n for n in facts.notes)


def test_current_driver_counts_when_modules_alias_is_missing(fake):
    host = prepare(fake)
    (fake.root / "lib/modules/6.1.0-test-amd64/modules.alias").unlink()
    _, facts = facts_for(host, '[[device]]\naddress="00:07.0"\nid="8086:10d3"\n')
    assert list(facts.host_modules) == ["e1000e"]
