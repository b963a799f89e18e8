"""Rendering the boot files: golden generators, the sh hook run against a fake sysfs, hostile values in the
unit; installing them: test_installer.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from bootsetup import VFIOCTL, P, facts_for, prepare

from vfioctl import boot
from vfioctl.ops.config import parse_config

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "boot"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{name} differs from {path} (UPDATE_GOLDEN=1 regenerates after review)"


# ---------------------------------------------------------------- golden files
def test_golden_generated_files(fake):
    host = prepare(fake)
    config, facts = facts_for(host)
    golden("boot-hook.sh", boot.hook_script())
    golden("boot-targets", boot.render_targets(config, facts))
    golden("vfioctl.conf", boot.render_modprobe(config, facts))
    golden("61-vfioctl.rules", boot.render_udev(config, facts))
    golden("vfioctl-apply.service", boot.render_unit(config, VFIOCTL))


@pytest.mark.parametrize("tool, name", [
    ("initramfs-tools", "initramfs-tools-hook"),
    ("dracut", "dracut.conf"),
    ("mkinitcpio", "mkinitcpio.conf"),
])
def test_golden_initramfs(fake, tool, name):
    host = prepare(fake)
    config, facts = facts_for(host)
    facts.initramfs = tool
    files = boot.render_initramfs(config, facts)
    assert len(files) == 1
    golden(name, files[0].content)
    assert files[0].mode == (0o755 if tool == "initramfs-tools" else 0o644)


def test_modprobe_lines_have_the_modprobe_d_syntax(fake):
    host = prepare(fake)
    config, facts = facts_for(host)
    text = boot.render_modprobe(config, facts)
    lines = [x for x in text.splitlines() if x and not x.startswith("#")]
    assert lines == [
        "install e1000 /bin/sh /etc/vfioctl/boot-hook.sh ; /sbin/modprobe --ignore-install e1000 $CMDLINE_OPTS",
        "install e1000e /bin/sh /etc/vfioctl/boot-hook.sh ; /sbin/modprobe --ignore-install e1000e $CMDLINE_OPTS",
        "options vfio_pci ids=8086:100e",
    ]


def test_udev_rules_match_address_and_ids(fake):
    host = prepare(fake)
    config, facts = facts_for(host)
    rules = [x for x in boot.render_udev(config, facts).splitlines() if x and not x.startswith("#")]
    assert rules[0] == ('ACTION=="add", SUBSYSTEM=="pci", KERNEL=="0000:00:07.0", ATTR{vendor}=="0x8086", '
                        'ATTR{device}=="0x10d3", RUN+="/bin/sh /etc/vfioctl/boot-hook.sh %k"')
    assert [r.split('KERNEL=="')[1][:12] for r in rules] == ["0000:00:07.0", "0000:01:01.0", "0000:01:02.0"]


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is not installed: `apt-get install -y systemd` (this test must not be skipped)"
    vfioctl = shutil.which("vfioctl") or str(Path(os.sys.executable).with_name("vfioctl"))
    assert os.path.exists(vfioctl)
    unit = tmp_path / boot.UNIT_NAME
    unit.write_text(boot.render_unit(parse_config("", P), vfioctl))
    p = subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "vfioctl-apply" not in p.stderr, p.stderr  # no warning about our unit
    text = unit.read_text()
    assert "Type=oneshot" in text and "RemainAfterExit=yes" in text
    assert f"ExecStart={vfioctl} apply --boot --config {P}" in text
    # the check is real: a broken unit fails it
    bad = tmp_path / "bad.service"
    bad.write_text(text.replace("Type=oneshot", "Type=oneshoot"))
    p = subprocess.run([exe, "verify", str(bad)], capture_output=True, text=True, cwd=tmp_path)
    assert "oneshoot" in p.stderr


# ---------------------------------------------------------------- the hook, run by sh
def run_hook(fake, host, *args, shell=("/bin/sh",)):
    config, facts = facts_for(host)
    script = fake.root / "hook.sh"
    script.write_text(boot.hook_script())
    targets = fake.root / "boot-targets"
    targets.write_text(boot.render_targets(config, facts))
    kmsg = fake.root / "kmsg"
    kmsg.write_text("")
    env = {"VFIOCTL_SYSFS": str(fake.root / "sys"), "VFIOCTL_KMSG": str(kmsg), "PATH": "/usr/bin:/bin",
           "VFIOCTL_TARGETS": str(targets)}
    p = subprocess.run([*shell, str(script), *args], env=env, capture_output=True, text=True, timeout=30)
    return p, kmsg.read_text()


def attr(fake, addr, name):
    return (fake.root / "sys/bus/pci/devices" / addr / name).read_text().strip()


# dash (Debian's /bin/sh) and busybox sh (the initramfs's)
SHELLS = [("/bin/sh",)] + ([(shutil.which("busybox"), "sh")] if shutil.which("busybox") else [])


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: " ".join(os.path.basename(x) for x in s))
def test_hook_overrides_and_probes_an_unbound_device(fake, shell):
    host = prepare(fake)
    fake.unbind("0000:00:07.0")
    p, log = run_hook(fake, host, "0000:00:07.0", shell=shell)
    assert p.returncode == 0, p.stderr
    assert attr(fake, "0000:00:07.0", "driver_override") == "vfio-pci"
    assert (fake.root / "sys/bus/pci/drivers_probe").read_text().strip() == "0000:00:07.0"
    # the twin and the other entries were not touched (ADDRESS given)
    assert attr(fake, "0000:00:02.0", "driver_override") == "(null)"
    assert attr(fake, "0000:01:01.0", "driver_override") == "(null)"
    assert log == ""


def test_hook_without_address_covers_every_target_and_leaves_bound_ones_to_apply(fake):
    host = prepare(fake)
    p, log = run_hook(fake, host)
    assert p.returncode == 0
    for a in ("0000:00:07.0", "0000:01:01.0", "0000:01:02.0"):
        assert attr(fake, a, "driver_override") == "vfio-pci"
    assert attr(fake, "0000:00:02.0", "driver_override") == "(null)"
    assert (fake.root / "sys/bus/pci/drivers_probe").read_text() == ""  # all were bound: no probe
    assert "0000:00:07.0 is bound to e1000e: vfioctl-apply.service will move it to vfio-pci" in log


def test_hook_leaves_a_changed_device_alone(fake):
    host = prepare(fake)
    fake.unbind("0000:00:07.0")
    (fake.root / "sys/bus/pci/devices/0000:00:07.0/device").write_text("0x1533\n")
    p, log = run_hook(fake, host)
    assert p.returncode == 0
    assert attr(fake, "0000:00:07.0", "driver_override") == "(null)"
    assert "0000:00:07.0 is not 8086:10d3 any more, left alone" in log


def test_hook_companion_needs_the_entry_to_match(fake):
    host = prepare(fake)
    (fake.root / "sys/bus/pci/devices/0000:01:01.0/device").write_text("0x10d3\n")
    p, _ = run_hook(fake, host, "0000:01:02.0")
    assert p.returncode == 0
    assert attr(fake, "0000:01:02.0", "driver_override") == "(null)"


def test_hook_already_on_vfio_writes_nothing(fake):
    host = prepare(fake)
    fake.unbind("0000:00:07.0")
    fake.bind("0000:00:07.0", "vfio-pci")
    p, log = run_hook(fake, host, "0000:00:07.0")
    assert p.returncode == 0 and log == ""
    assert attr(fake, "0000:00:07.0", "driver_override") == "(null)"


def test_hook_never_fails(fake):
    host = prepare(fake)
    fake.unbind("0000:00:07.0")
    ov = fake.root / "sys/bus/pci/devices/0000:00:07.0/driver_override"
    ov.unlink()
    ov.mkdir()  # writing to it fails, even as root
    p, log = run_hook(fake, host, "0000:00:07.0")
    assert p.returncode == 0
    assert "0000:00:07.0: cannot write driver_override" in log


# ---------------------------------------------------------------- hostile values
def _systemd_split(line: str) -> list[str]:
    """How systemd splits and unescapes an ExecStart= command line (systemd.syntax(7),
    systemd.service(5)): words on whitespace, double quotes with C escapes, %% and $$."""
    words, cur, i, quoted, started = [], "", 0, False, False
    while i < len(line):
        c = line[i]
        if quoted:
            if c == "\\":
                cur += line[i + 1]
                i += 2
                continue
            if c == '"':
                quoted = False
            else:
                cur += c
        elif c == '"':
            quoted, started = True, True
        elif c.isspace():
            if started or cur:
                words.append(cur)
            cur, started = "", False
        else:
            cur += c
        i += 1
    if started or cur:
        words.append(cur)
    return [w.replace("%%", "%").replace("$$", "$") for w in words]


@pytest.mark.parametrize("path", ["/etc/vfio ctl/my conf.toml", "/etc/100%/x%n.toml", "/etc/$HOME/a\\b\"q.toml",
                                  "/etc/vfioctl/vfioctl.toml"])
def test_unit_quotes_the_config_path_for_systemd(tmp_path, path):
    unit = boot.render_unit(parse_config("", path), ["/usr/bin/vfio ctl%", "-X"])
    exec_line = next(x for x in unit.splitlines() if x.startswith("ExecStart="))[len("ExecStart="):]
    assert _systemd_split(exec_line) == ["/usr/bin/vfio ctl%", "-X", "apply", "--boot", "--config", path]
    desc = next(x for x in unit.splitlines() if x.startswith("Description="))
    assert desc.count("%") == 2 * path.count("%")
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is not installed: `apt-get install -y systemd`"
    f = tmp_path / boot.UNIT_NAME
    f.write_text(unit)
    p = subprocess.run([exe, "verify", str(f)], capture_output=True, text=True, cwd=tmp_path)
    # the program does not exist here: only that complaint is allowed
    assert all("is not executable" in x or "No such file" in x or not x.strip() or "vfio ctl" in x
               for x in p.stderr.splitlines()), p.stderr


def test_hook_script_passes_shellcheck():
    exe = shutil.which("shellcheck")
    assert exe, "shellcheck is not installed: apt-get install -y shellcheck (tests/run-all.sh installs it)"
    p = subprocess.run([exe, "-s", "sh", "-"], input=boot.hook_script(), capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
