"""Make the config hold from early boot: facts, pure generators, installation.

* :mod:`vfioctl.boot.facts`: what is measured on the host at install time;
* :mod:`vfioctl.boot.render`: the files, pure functions of the config and the facts
  (tested against golden files), every value validated or quoted for its format;
* :mod:`vfioctl.boot.install`: writing them through the Host, the manifest, uninstall;
* ``boot-hook.sh``: the static hook (package data), which reads its targets from the
  generated ``/etc/vfioctl/boot-targets``.

Why these files, together (docs/boot.md has the long form): the hook writes
``driver_override`` for each configured function whose IDs still match and probes
it when unbound (sh: it runs from modprobe, udev and the initramfs); modprobe.d's
``install <host driver>`` runs it before the host driver loads (no softdep beside
it: kmod then skips the install command, seen on the lab kernel); a udev rule runs
it when a configured function appears; ``vfioctl-apply.service`` converges the
rest once udev settled; the initramfs configuration carries all of it.
"""

from vfioctl.base.names import module_name
from vfioctl.boot.facts import MODPROBE_PATH, BootFacts, Target, gather_facts
from vfioctl.boot.install import (
    INITRAMFS_COMMANDS,
    MANIFEST_NAME,
    CommandRun,
    InstallResult,
    install,
    manifest_path,
    manifest_stale,
    read_manifest,
    resolve_vfioctl,
    uninstall,
)
from vfioctl.boot.render import (
    DRACUT_CONF,
    HOOK_PATH,
    INITRAMFS_TOOLS_HOOK,
    KNOWN_PATHS,
    MKINITCPIO_CONF,
    TARGETS_PATH,
    UDEV_PATH,
    UNIT_NAME,
    UNIT_PATH,
    UNIT_TARGET,
    WANTS_LINK,
    GeneratedFile,
    generate,
    hook_script,
    render_initramfs,
    render_modprobe,
    render_targets,
    render_udev,
    render_unit,
    systemd_word,
)
from vfioctl.host.modules import VFIO_MODULES
from vfioctl.host.system import initramfs_tool as detect_initramfs

__all__ = [
    "BootFacts", "Target", "gather_facts", "GeneratedFile", "generate", "hook_script", "render_targets",
    "render_modprobe", "render_udev", "render_unit", "render_initramfs", "systemd_word", "install", "uninstall",
    "InstallResult", "CommandRun", "read_manifest", "manifest_path", "manifest_stale", "resolve_vfioctl",
    "HOOK_PATH", "TARGETS_PATH", "MODPROBE_PATH", "UDEV_PATH", "UNIT_NAME", "UNIT_PATH", "UNIT_TARGET",
    "WANTS_LINK", "INITRAMFS_TOOLS_HOOK", "DRACUT_CONF", "MKINITCPIO_CONF", "KNOWN_PATHS", "INITRAMFS_COMMANDS",
    "MANIFEST_NAME", "VFIO_MODULES", "detect_initramfs", "module_name",
]
