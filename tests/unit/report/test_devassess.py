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
