"""Make the config hold from early boot: facts, pure generators, installation.

* :mod:`vfioctl.boot.facts`: what is measured on the host at install time;
* :mod:`vfioctl.boot.render`: the files, pure functions of the config and the facts
  (tested against golden files), every value validated or quoted for its format;
* :mod:`vfioctl.boot.installer`: writing them through the Host, the manifest, uninstall;
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

from vfioctl.base.lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:  # what the names are, for type checkers (loaded lazily below)
    from vfioctl.base.names import module_name
    from vfioctl.boot.facts import MODPROBE_PATH, BootFacts, Target, gather_facts
    from vfioctl.boot.installer import (
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

# Loaded on first use: `vfioctl check` reads the command-line helpers (vfioctl.boot.cmdline)
# and must not pay for the config planner that boot.facts imports.
_EXPORTS = {
    "module_name": ("vfioctl.base.names", "module_name"),
    "MODPROBE_PATH": ("vfioctl.boot.facts", "MODPROBE_PATH"),
    "BootFacts": ("vfioctl.boot.facts", "BootFacts"),
    "Target": ("vfioctl.boot.facts", "Target"),
    "gather_facts": ("vfioctl.boot.facts", "gather_facts"),
    "INITRAMFS_COMMANDS": ("vfioctl.boot.installer", "INITRAMFS_COMMANDS"),
    "MANIFEST_NAME": ("vfioctl.boot.installer", "MANIFEST_NAME"),
    "CommandRun": ("vfioctl.boot.installer", "CommandRun"),
    "InstallResult": ("vfioctl.boot.installer", "InstallResult"),
    "install": ("vfioctl.boot.installer", "install"),
    "manifest_path": ("vfioctl.boot.installer", "manifest_path"),
    "manifest_stale": ("vfioctl.boot.installer", "manifest_stale"),
    "read_manifest": ("vfioctl.boot.installer", "read_manifest"),
    "resolve_vfioctl": ("vfioctl.boot.installer", "resolve_vfioctl"),
    "uninstall": ("vfioctl.boot.installer", "uninstall"),
    "DRACUT_CONF": ("vfioctl.boot.render", "DRACUT_CONF"),
    "HOOK_PATH": ("vfioctl.boot.render", "HOOK_PATH"),
    "INITRAMFS_TOOLS_HOOK": ("vfioctl.boot.render", "INITRAMFS_TOOLS_HOOK"),
    "KNOWN_PATHS": ("vfioctl.boot.render", "KNOWN_PATHS"),
    "MKINITCPIO_CONF": ("vfioctl.boot.render", "MKINITCPIO_CONF"),
    "TARGETS_PATH": ("vfioctl.boot.render", "TARGETS_PATH"),
    "UDEV_PATH": ("vfioctl.boot.render", "UDEV_PATH"),
    "UNIT_NAME": ("vfioctl.boot.render", "UNIT_NAME"),
    "UNIT_PATH": ("vfioctl.boot.render", "UNIT_PATH"),
    "UNIT_TARGET": ("vfioctl.boot.render", "UNIT_TARGET"),
    "WANTS_LINK": ("vfioctl.boot.render", "WANTS_LINK"),
    "GeneratedFile": ("vfioctl.boot.render", "GeneratedFile"),
    "generate": ("vfioctl.boot.render", "generate"),
    "hook_script": ("vfioctl.boot.render", "hook_script"),
    "render_initramfs": ("vfioctl.boot.render", "render_initramfs"),
    "render_modprobe": ("vfioctl.boot.render", "render_modprobe"),
    "render_targets": ("vfioctl.boot.render", "render_targets"),
    "render_udev": ("vfioctl.boot.render", "render_udev"),
    "render_unit": ("vfioctl.boot.render", "render_unit"),
    "systemd_word": ("vfioctl.boot.render", "systemd_word"),
    "VFIO_MODULES": ("vfioctl.host.modules", "VFIO_MODULES"),
    "detect_initramfs": ("vfioctl.host.system", "initramfs_tool"),
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
