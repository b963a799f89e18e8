"""assess on a fake host: the verdicts, the boot GPU with its console."""

from __future__ import annotations

from fakestate import console_host

from vfioctl.report.devassess import assess_devices


# ---------------------------------------------------------------- assess
def test_assess_verdicts(fake, host):
    res = {str(a.address): a for a in assess_devices(host, ["00:07.0", "01:01.0", "00:01.0"])}
    assert res["0000:00:07.0"].verdict in ("ready", "caveats")
    assert res["0000:01:01.0"].get("iommu-group").status == "warn"
    assert res["0000:00:01.0"].get("console").status == "warn"  # boot VGA, no console on it


def test_assess_boot_gpu_with_its_console_is_blocked_unless_handed_over(fake):
    h, _ = console_host(fake)
    a = assess_devices(h, ["00:01.0"])[0]
    assert a.verdict == "blocked" and "--take-console" in a.get("console").fix
    a = assess_devices(h, ["00:01.0"], take_console=True)[0]
    assert a.get("console").status == "warn"


def test_assess_walks_the_processes_once_and_names_each_group_s_holders_as_before(fake, host, monkeypatch):
    from vfioctl.report import devassess
    from vfioctl.usage.holders import Holder

    held = [Holder(4242, "qemu-system-x86", "web1", 7), Holder(17, "qemu", None, 3),
            Holder(5, "qemu", "db", 7)]
    calls = []

    def group_holders(h, groups=None):
        calls.append(groups)
        return sorted((x for x in held if groups is None or x.group in groups), key=lambda x: (x.group, x.pid))

    monkeypatch.setattr(devassess, "group_holders", group_holders)
    by_group = devassess.holders_by_group(host)
    for g in (3, 7, 9):
        assert by_group.get(g, []) == [x.describe() for x in group_holders(host, {g})]
    calls.clear()
    devassess.assess_devices(host, [])
    assert calls == [None]  # one walk for every device assessed
