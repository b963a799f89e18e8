"""Planning a hide: the reset-method choice journaled and restored, refused before any write."""

from __future__ import annotations

import json

import pytest
from fakestate import attr, drv

from vfioctl import engine
from vfioctl.base.errors import InvalidInput


# ---------------------------------------------------------------- reset method choice
def test_hide_with_a_reset_method_is_journaled_and_restored(fake, host):
    # a function on a root bus lists no "bus" (pci_parent_bus_reset): flr and pm
    (fake._devdir("0000:00:07.0") / "reset_method").write_text("flr pm\n")
    res = engine.hide(host, ["00:07.0"], reset_method=["pm"])
    assert res.changed
    assert attr(fake, "0000:00:07.0", "reset_method") == "pm"
    j = json.loads((fake.root / "var/lib/vfioctl/state.json").read_text())
    assert j["devices"]["0000:00:07.0"]["original_reset_method"] == ["flr", "pm"]
    engine.restore(host, ["00:07.0"])
    assert attr(fake, "0000:00:07.0", "reset_method") == "flr pm"
    assert drv(fake, "0000:00:07.0") == "e1000e"


def test_a_reset_method_the_kernel_does_not_offer_is_refused_before_any_write(fake, host):
    with pytest.raises(InvalidInput, match="does not offer reset method pm.*it offers: flr bus"):
        engine.hide(host, ["00:07.0"], reset_method=["pm"])
    with pytest.raises(InvalidInput, match="each once"):
        engine.hide(host, ["00:07.0"], reset_method=["bus", "bus"])
    assert host.writes == []


def test_reset_method_of_an_already_hidden_device_is_changed_alone(fake, host):
    (fake._devdir("0000:00:07.0") / "reset_method").write_text("flr pm\n")  # a root bus: no "bus"
    engine.hide(host, ["00:07.0"])
    res = engine.hide(host, ["00:07.0"], reset_method=["flr"])
    assert res.changed and attr(fake, "0000:00:07.0", "reset_method") == "flr"
    engine.restore(host, ["00:07.0"])
    assert attr(fake, "0000:00:07.0", "reset_method") == "flr pm"
