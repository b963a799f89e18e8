"""Boot files: golden generators, the sh hook run against a fake sysfs, install/uninstall."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from vfioctl import boot
from vfioctl.base.errors import HostNotReady, Refused
from vfioctl.cli import main
from vfioctl.ops.config import parse_config

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "boot"
P = "/etc/vfioctl/vfioctl.toml"
VFIOCTL = "/usr/bin/vfioctl"

CONFIG = """
[[device]]
address = "0000:00:07.0"   # one of two e1000e twins
id = "8086:10d3"

[[device]]
address = "0000:01:01.0"   # an e1000 behind the bridge: its group holds 01:02.0 too
id = "8086:100e"
group = true

[[sriov]]
pf = "0000:00:04.0"
numvfs = 2
hide = true
"""

ALIASES = """\
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias pci:v00001B36d00000010sv*sd*bc01sc08i02* nvme
alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci
"""


def prepare(fake, config=CONFIG, osrelease="ID=debian\n", tools=("update-initramfs",)):
    r = fake.root
    (r / "lib/modules/6.1.0-test-amd64/modules.alias").write_text(ALIASES)
    (r / "etc/vfioctl").mkdir(parents=True, exist_ok=True)
    (r / "etc/vfioctl/vfioctl.toml").write_text(config)
    (r / "etc/os-release").write_text(osrelease)
    (r / "usr/bin").mkdir(parents=True, exist_ok=True)
    (r / "usr/sbin").mkdir(parents=True, exist_ok=True)
    (r / "usr/bin/vfioctl").write_text("#!/bin/sh\n")
    for t in tools:
        (r / "usr/sbin" / t).write_text("")
    fake.driver("vfio-pci")
    return fake.host()


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{name} differs from {path} (UPDATE_GOLDEN=1 regenerates after review)"


def facts_for(host, config_text=CONFIG):
    config = parse_config(config_text, P)
    return config, boot.gather_facts(host, config, VFIOCTL)


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


@pytest.mark.parametrize("osrelease, tools, expect", [
    ("ID=debian\n", (), "initramfs-tools"),
    ('ID=ubuntu\nID_LIKE="debian"\n', (), "initramfs-tools"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', (), "dracut"),
    ("ID=fedora\n", (), "dracut"),
    ("ID=arch\n", (), "mkinitcpio"),
    ("ID=debian\n", ("dracut",), "dracut"),  # the installed tool wins over the family
    ("ID=nixos\n", (), None),
])
def test_detect_initramfs(fake, osrelease, tools, expect):
    host = prepare(fake, osrelease=osrelease, tools=tools)
    assert boot.detect_initramfs(host) == expect


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


# ---------------------------------------------------------------- install / uninstall
def test_install_dry_run_shows_everything_and_writes_nothing(fake):
    host = prepare(fake)
    before = sorted(str(p) for p in fake.root.rglob("*"))
    r = boot.install(host, P, dry_run=True, vfioctl=VFIOCTL)
    assert sorted(str(p) for p in fake.root.rglob("*")) == before
    assert [f.path for f in r.files] == [
        boot.HOOK_PATH, boot.TARGETS_PATH, boot.MODPROBE_PATH, boot.UDEV_PATH, boot.UNIT_PATH, boot.WANTS_LINK,
        boot.INITRAMFS_TOOLS_HOOK]
    text = r.render()
    assert "would write /etc/modprobe.d/vfioctl.conf (mode 0644)" in text
    assert "    install e1000e /bin/sh /etc/vfioctl/boot-hook.sh" in text
    assert f"would write {boot.WANTS_LINK} -> ../vfioctl-apply.service" in text
    assert "run: update-initramfs -u -k all" in text


def test_install_then_uninstall_removes_exactly_those_files(fake):
    host = prepare(fake)
    (fake.root / "etc/modprobe.d").mkdir(parents=True)
    (fake.root / "etc/modprobe.d/other.conf").write_text("blacklist nouveau\n")
    r = boot.install(host, P, vfioctl=VFIOCTL)
    for f in r.files:
        real = fake.root / f.path.lstrip("/")
        if f.link:
            assert os.readlink(real) == "../vfioctl-apply.service"
        else:
            assert real.read_text() == f.content
            assert stat.S_IMODE(real.stat().st_mode) == f.mode
    assert (fake.root / "etc/systemd/system/multi-user.target.wants/vfioctl-apply.service").resolve() == \
        (fake.root / "etc/systemd/system/vfioctl-apply.service").resolve()
    m = json.loads((fake.root / "var/lib/vfioctl/boot-manifest.json").read_text())
    assert m["config"] == P and m["vfioctl"] == [VFIOCTL]
    assert [e["path"] for e in m["files"]] == [f.path for f in r.files]
    assert [c.ran for c in r.commands] == [False] * len(r.commands)  # not the live host
    assert not [w for w in host.writes if w[0].startswith("/sys/")]  # no sysfs write at install time

    u = boot.uninstall(host)
    assert u.removed == [f.path for f in r.files]
    for f in r.files:
        assert not os.path.lexists(fake.root / f.path.lstrip("/"))
    assert not (fake.root / "var/lib/vfioctl/boot-manifest.json").exists()
    assert (fake.root / "etc/modprobe.d/other.conf").read_text() == "blacklist nouveau\n"
    assert "the initramfs still holds the boot hook until it is rebuilt" in u.notes
    assert boot.uninstall(host).notes[0].startswith("no boot files installed")


def test_install_twice_is_stable_and_removes_stale_files(fake):
    host = prepare(fake)
    boot.install(host, P, vfioctl=VFIOCTL)
    (fake.root / "usr/sbin/update-initramfs").unlink()
    (fake.root / "usr/sbin/dracut").write_text("")
    r = boot.install(host, P, vfioctl=VFIOCTL)
    assert r.removed == [boot.INITRAMFS_TOOLS_HOOK]
    assert not (fake.root / boot.INITRAMFS_TOOLS_HOOK.lstrip("/")).exists()
    assert (fake.root / boot.DRACUT_CONF.lstrip("/")).read_text().count('force_drivers+=" vfio vfio_iommu_type1 vfio_pci "') == 1
    assert "run: dracut -f --regenerate-all" in r.render()


def test_uninstall_keeps_a_file_changed_since(fake):
    host = prepare(fake)
    boot.install(host, P, vfioctl=VFIOCTL)
    udev = fake.root / boot.UDEV_PATH.lstrip("/")
    udev.write_text(udev.read_text() + "# my edit\n")
    u = boot.uninstall(host)
    assert udev.exists()
    assert boot.UDEV_PATH not in u.removed
    assert f"{boot.UDEV_PATH} was changed since vfioctl wrote it: left in place" in u.notes


def test_install_refuses_to_overwrite_a_foreign_file(fake):
    host = prepare(fake)
    f = fake.root / "etc/modprobe.d/vfioctl.conf"
    f.parent.mkdir(parents=True)
    f.write_text("# someone else's\n")
    with pytest.raises(Refused) as ei:
        boot.install(host, P, vfioctl=VFIOCTL)
    assert "/etc/modprobe.d/vfioctl.conf exists and was not written by vfioctl" in str(ei.value)
    assert f.read_text() == "# someone else's\n"
    assert not (fake.root / boot.HOOK_PATH.lstrip("/")).exists()


def test_install_refuses_a_missing_vfioctl(fake):
    host = prepare(fake)
    with pytest.raises(HostNotReady) as ei:
        boot.install(host, P, vfioctl="/opt/nowhere/vfioctl")
    assert "/opt/nowhere/vfioctl does not exist on the captured host" in str(ei.value)


def test_resolve_vfioctl_default_is_this_installation():
    from vfioctl.host.core import Host

    argv = boot.resolve_vfioctl(Host("/"))
    assert argv[0].startswith("/") and os.path.exists(argv[0])


def test_manifest_stale_after_config_edit(fake):
    host = prepare(fake)
    boot.install(host, P, vfioctl=VFIOCTL)
    assert boot.manifest_stale(host, P) is None
    (fake.root / "etc/vfioctl/vfioctl.toml").write_text(CONFIG + "\n# edited\n")
    assert "changed since `vfioctl boot install`" in boot.manifest_stale(host, P)


def test_cli_boot_install_json_and_uninstall(fake, capsys):
    prepare(fake)
    root = str(fake.root)
    assert main(["--root", root, "boot", "install", "--dry-run", "--json", "--vfioctl", VFIOCTL]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dry_run"] is True
    assert data["files"][2]["path"] == boot.MODPROBE_PATH and "install e1000e" in data["files"][2]["content"]
    assert data["commands"][-1] == {"command": "update-initramfs -u -k all", "ran": False, "rc": None, "output": ""}
    assert main(["--root", root, "boot", "install", "--vfioctl", VFIOCTL]) == 0
    out = capsys.readouterr().out
    assert "wrote /etc/udev/rules.d/61-vfioctl.rules (mode 0644)" in out
    assert "    ACTION" not in out  # content only with --dry-run
    assert main(["--root", root, "boot", "uninstall", "--json"]) == 0
    assert boot.UNIT_PATH in json.loads(capsys.readouterr().out)["removed"]


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


@pytest.mark.parametrize("path", ["/etc/vfioctl/x.toml\nExecStartPre=/bin/sh -c id", "/etc/a\rb.toml",
                                  "/etc/a\tb.toml", "relative.toml"])
def test_config_paths_with_control_characters_are_refused(fake, path):
    from vfioctl.base.errors import ConfigError

    host = prepare(fake)
    with pytest.raises(ConfigError):
        boot.install(host, path, vfioctl=VFIOCTL, dry_run=True)
    assert not (fake.root / "etc/systemd").exists()


def test_vfioctl_path_with_a_newline_is_refused(fake):
    from vfioctl.base.errors import InvalidInput

    host = prepare(fake)
    with pytest.raises(InvalidInput):
        boot.install(host, P, vfioctl="/usr/bin/vfioctl\nExecStartPre=/bin/id", dry_run=True)


def test_cli_config_path_injection_exits_65_and_writes_nothing(fake, capsys):
    prepare(fake)
    before = sorted(str(p) for p in fake.root.rglob("*"))
    rc = main(["--root", str(fake.root), "boot", "install", "--config", "/etc/x\n/bin/sh", "--vfioctl", VFIOCTL])
    err = capsys.readouterr().err
    assert rc == 65 and err.count("\n") == 1 and "control characters" in err
    assert sorted(str(p) for p in fake.root.rglob("*")) == before


@pytest.mark.parametrize("evil", ["/etc/../../../tmp/victim", "/tmp/victim", "../victim", "/etc/vfioctl/../x"])
def test_manifest_naming_other_files_is_refused_and_nothing_removed(fake, tmp_path, evil):
    host = prepare(fake)
    victim = fake.root / "tmp/victim"
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_text("precious")
    outside = tmp_path / "victim"
    outside.write_text("precious")
    m = fake.root / "var/lib/vfioctl"
    m.mkdir(parents=True, exist_ok=True)
    m.chmod(0o700)
    (m / "boot-manifest.json").write_text(json.dumps({"files": [{"path": evil, "sha256": "0" * 64}]}))
    with pytest.raises(Refused, match="not a file `vfioctl boot install` writes"):
        boot.uninstall(host)
    with pytest.raises(Refused):
        boot.install(host, P, vfioctl=VFIOCTL)
    assert victim.read_text() == "precious" and outside.read_text() == "precious"


def test_hook_script_passes_shellcheck():
    exe = shutil.which("shellcheck")
    assert exe, "shellcheck is not installed: apt-get install -y shellcheck (tests/run-all.sh installs it)"
    p = subprocess.run([exe, "-s", "sh", "-"], input=boot.hook_script(), capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
