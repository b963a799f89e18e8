# -*- coding: utf-8 -*-
# Copyright: vfioctl contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

from ansible_collections.vfioctl.vfio.plugins.modules import config

TWIN = "0000:00:07.0"
PATH = "/etc/vfioctl/vfioctl.toml"
TWIN_TOML = '[[device]]\naddress = "0000:00:07.0"\nid = "8086:10d3"\n'


def _file(fake):
    p = fake.root / PATH.lstrip("/")
    return p.read_text() if p.exists() else None


def test_check_mode_writes_neither_file_nor_sysfs(fake, host, run_module):
    r = run_module(config, {"content": TWIN_TOML}, check=True, diff=True)
    assert r["changed"] is True and r["file_changed"] is True, r
    assert _file(fake) is None
    assert host.writes == []
    assert fake.current_driver(TWIN) == "e1000e"
    assert [c["address"] for c in r["plan"]["changes"]] == [TWIN]
    file_diff, drivers_diff = r["diff"]
    assert file_diff["before"] == "" and file_diff["after"] == TWIN_TOML
    assert drivers_diff["before"] == f"{TWIN}: e1000e\n" and drivers_diff["after"] == f"{TWIN}: vfio-pci\n"


def test_write_apply_idempotent_prune(fake, host, run_module):
    r = run_module(config, {"content": TWIN_TOML})
    assert r["changed"] is True, r
    assert _file(fake) == TWIN_TOML
    assert fake.current_driver(TWIN) == "vfio-pci"
    assert r["config"]["devices"][0]["address"] == TWIN

    again = run_module(config, {"content": TWIN_TOML})
    assert again["changed"] is False and again["file_changed"] is False
    assert run_module(config, {}, check=True)["changed"] is False  # the file in place, nothing to do

    empty = "# nothing hidden\n"
    r = run_module(config, {"content": empty})
    assert r["changed"] is True and r["file_changed"] is True
    assert fake.current_driver(TWIN) == "vfio-pci"  # without prune, left hidden
    r = run_module(config, {"content": empty, "prune": True})
    assert r["changed"] is True and r["file_changed"] is False
    assert fake.current_driver(TWIN) == "e1000e"


def test_write_only(fake, host, run_module):
    r = run_module(config, {"content": TWIN_TOML, "apply": False})
    assert r["changed"] is True and "plan" not in r
    assert _file(fake) == TWIN_TOML
    assert fake.current_driver(TWIN) == "e1000e"


def test_bad_config_is_not_written(fake, host, run_module):
    r = run_module(config, {"content": '[[device]]\naddress = "0000:00:07.0"\n'})
    assert r["failed"] and r["exit_code"] == 65
    assert "missing required key 'id'" in r["msg"] and PATH in r["msg"]
    assert _file(fake) is None
    r = run_module(config, {"content": "[[device]\n"})
    assert r["failed"] and "TOML syntax error" in r["msg"]


def test_hardware_mismatch_refused_before_writing(fake, host, run_module):
    r = run_module(config, {"content": TWIN_TOML.replace("10d3", "10d4")})
    assert r["failed"] and r["exit_code"] == 69
    assert "expected 8086:10d4 at 0000:00:07.0, found 8086:10d3" in r["msg"]
    assert _file(fake) is None and host.writes == []


def test_src_and_missing_file(fake, host, run_module):
    src = fake.root / "root/vfio.toml"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(TWIN_TOML)
    r = run_module(config, {"src": "/root/vfio.toml", "apply": False})
    assert r["changed"] and _file(fake) == TWIN_TOML
    r = run_module(config, {"path": "/etc/vfioctl/other.toml"})
    assert r["failed"] and r["exit_code"] == 66 and "does not exist" in r["msg"]
    r = run_module(config, {"src": "/root/none.toml"})
    assert r["failed"] and r["exit_code"] == 66
    assert "mutually exclusive" in run_module(config, {"src": "/a", "content": "x"})["msg"]


def test_boot_install_only_when_out_of_date(fake, host, run_module):
    exe = fake.root / "usr/bin/vfioctl"
    exe.parent.mkdir(parents=True, exist_ok=True)
    exe.write_text("#!/bin/sh\n")
    args = {"content": TWIN_TOML, "boot_install": True, "vfioctl_command": "/usr/bin/vfioctl"}
    r = run_module(config, args, check=True)
    assert r["changed"] is True and r["boot_changed"] is True, r
    assert r["boot"]["dry_run"] is True and r["boot"]["files"]
    manifest = fake.root / "var/lib/vfioctl/boot-manifest.json"
    assert not manifest.exists() and _file(fake) is None

    r = run_module(config, args)
    assert r["changed"] is True and r["boot_changed"] is True, r
    assert manifest.exists()
    written = [f["path"] for f in r["boot"]["files"]]
    assert written and all((fake.root / p.lstrip("/")).exists() or (fake.root / p.lstrip("/")).is_symlink()
                           for p in written)

    r = run_module(config, args)
    assert r["changed"] is False and r["boot_changed"] is False, r
    r = run_module(config, dict(args, vfioctl_command="/opt/none/vfioctl"))
    assert r["failed"] and "/opt/none/vfioctl does not exist" in r["msg"]
