"""Planning a whole config over one state read from the fake host: what the state must hold, the
hardware check before anything, address and selector entries, groups planned once, and --prune
giving back what the config no longer names."""

from __future__ import annotations

import pytest

from vfioctl.base.errors import InUse, Refused
from vfioctl.ops.config import parse_config
from vfioctl.ops.configplan import concrete_entries, config_needs, config_plan
from vfioctl.ops.journal import Journal
from vfioctl.ops.state import read_state
from vfioctl.pci.address import PciAddress

A = PciAddress.parse
P = "/etc/vfioctl/vfioctl.toml"


def plan_for(fake, text, *, prune=False, record=None, force_platform=False):
    config = parse_config(text, P)
    needs = config_needs(config)
    host = fake.host()
    with Journal(host, lock_timeout=1) as j:
        if record:
            j.record_device(record)
        state = read_state(host, j, needs.focus, **needs.kwargs())
    return config_plan(state, config, prune=prune, force_platform=force_platform), state, config


def test_needs_of_address_entries_selectors_and_console_hand_offs():
    c = parse_config('[[device]]\naddress = "00:07.0"\nid = "8086:10d3"\n\n'
                     '[[device]]\naddress = "00:01.0"\nid = "1234:1111"\ntake_console = true\n', P)
    needs = config_needs(c)
    assert needs.focus == [A("00:07.0"), A("00:01.0")] and needs.consoles == [A("00:01.0")]
    assert needs.units and not needs.display_consoles
    c = parse_config('[[device]]\nmatch = { class = "nvme" }\n', P)
    assert config_needs(c).focus is None  # a selector chooses among every device
    assert config_needs(c).kwargs() == {"consoles": [], "display_consoles": False, "units": [], "machine_id": False,
                                        "vf_net": []}


def test_hardware_that_changed_refuses_the_whole_config(fake):
    with pytest.raises(Refused) as err:
        plan_for(fake, '[[device]]\naddress = "00:07.0"\nid = "10de:2335"\n')
    assert "hardware does not match the config, nothing applied" in str(err.value) and P in str(err.value)


def test_an_address_entry_is_planned_as_a_hide(fake):
    plan, _, _ = plan_for(fake, '[[device]]\naddress = "00:07.0"\nid = "8086:10d3"\n')
    assert plan.action == "apply" and [c.address for c in plan.changes] == ["0000:00:07.0"]
    assert [type(s).__name__ for s in plan.steps][-1] == "JournalCommit"


def test_an_entry_naming_the_platform_is_refused_unless_force_platform(fake):
    """`apply` refuses the host bridge and the LPC bridge as `hide` does; --force-platform (only
    it) plans them, with the plan's note saying what was taken."""
    fake.driver("vfio-pci")
    bridge = '[[device]]\naddress = "00:00.0"\nid = "8086:29c0"\n'
    lpc = '[[device]]\naddress = "00:1f.0"\nid = "8086:2918"\ngroup = true\n'
    for text, what in ((bridge, "a host bridge"), (lpc, "an ISA/LPC bridge")):
        with pytest.raises(InUse, match=f"this is the machine itself: .*it is {what} .*--force-platform") as err:
            plan_for(fake, text)
        assert err.value.exit_code == 69
    plan, _, _ = plan_for(fake, bridge, force_platform=True)
    assert [c.address for c in plan.changes] == ["0000:00:00.0"]
    assert [n for n in plan.notes if n.startswith("--force-platform: 0000:00:00.0: it is a host bridge")]
    plan, _, _ = plan_for(fake, lpc, force_platform=True)
    assert "0000:00:1f.0" in [c.address for c in plan.changes]
    assert [n for n in plan.notes if n.startswith("--force-platform: 0000:00:1f.0: it is an ISA/LPC bridge")]


def test_a_group_entry_takes_its_members_once_even_when_they_are_named_too(fake):
    plan, _, _ = plan_for(fake, '[[device]]\naddress = "01:01.0"\nid = "8086:100e"\ngroup = true\n\n'
                                '[[device]]\naddress = "01:02.0"\nid = "8086:100e"\n')
    assert sorted(c.address for c in plan.changes) == ["0000:01:01.0", "0000:01:02.0"]
    assert len([s for s in plan.steps if type(s).__name__ == "JournalRecord"]) == 1


def test_a_selector_becomes_one_entry_per_device_it_chooses(fake):
    c = parse_config('[[device]]\nmatch = { id = "8086:10d3" }\ncount = 1\n', P)
    state = read_state(fake.host(), None, None, in_use=True)
    entries, _ = concrete_entries(state, c)
    assert len(entries) == 1 and str(entries[0].address) in ("0000:00:02.0", "0000:00:07.0")
    assert entries[0].id == ("8086", "10d3") and entries[0].match is not None


def test_a_selector_that_cannot_find_its_count_refuses_the_whole_config(fake):
    c = parse_config('[[device]]\nmatch = { id = "dead:beef" }\ncount = 1\n', P)
    state = read_state(fake.host(), None, None, in_use=True)
    with pytest.raises(Refused) as err:
        concrete_entries(state, c)
    assert "needs 1 free device(s) matching id dead:beef, found 0" in str(err.value)
    assert "nothing was changed" in str(err.value)


def test_prune_gives_back_what_the_config_no_longer_names(fake, host):
    from vfioctl import engine

    engine.hide(host, ["00:07.0"])
    plan, _, _ = plan_for(fake, "", prune=True)
    assert [(c.address, c.after) for c in plan.changes] == [("0000:00:07.0", "e1000e")]
    plan, _, _ = plan_for(fake, "")
    assert plan.empty
