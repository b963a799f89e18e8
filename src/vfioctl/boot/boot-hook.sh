#!/bin/sh
# vfioctl boot hook: installed by `vfioctl boot install` as /etc/vfioctl/boot-hook.sh.
#
# Keeps the configured PCI functions from their host drivers: writes
# driver_override for each one whose vendor:device still matches, and, when it
# is unbound, asks the PCI core to probe it again (an override alone binds
# nothing once the driver is loaded).  Run by the install commands of
# /etc/modprobe.d/vfioctl.conf before a host driver loads, and by
# /etc/udev/rules.d/61-vfioctl.rules when a function is added.  It never
# fails: a module load must not fail because of it.
#
# The functions come from /etc/vfioctl/boot-targets (generated from the config;
# every field was validated by vfioctl), one per line:
#   ENTRY ADDRESS VENDOR DEVICE SUBVENDOR SUBDEVICE DRIVER
# ENTRY is the address of the config entry the line belongs to: its own line
# comes first, and the other functions of its IOMMU group are claimed only
# while that entry's own function still has the configured IDs.  SUBVENDOR and
# SUBDEVICE are "-" when the config gives no subsystem.
#
# usage: boot-hook.sh [ADDRESS]     (no ADDRESS: every configured function)

PATH=/usr/sbin:/usr/bin:/sbin:/bin
sys=${VFIOCTL_SYSFS:-/sys}
kmsg=${VFIOCTL_KMSG:-/dev/kmsg}
targets=${VFIOCTL_TARGETS:-/etc/vfioctl/boot-targets}
only=${1:-}

log() {
    echo "vfioctl boot-hook: $*" 2>/dev/null >>"$kmsg" || echo "vfioctl boot-hook: $*" >&2
}

# is ADDRESS VENDOR DEVICE SUBVENDOR SUBDEVICE: is that function there, with these IDs?
is() {
    d=$sys/bus/pci/devices/$1
    [ -e "$d" ] || return 1
    if [ "$(cat "$d/vendor")" != "0x$2" ] || [ "$(cat "$d/device")" != "0x$3" ]; then
        log "$1 is not $2:$3 any more, left alone (vfioctl apply says more)"
        return 1
    fi
    if [ "$4" != "-" ] && { [ "$(cat "$d/subsystem_vendor")" != "0x$4" ] ||
                            [ "$(cat "$d/subsystem_device")" != "0x$5" ]; }; then
        log "$1 is not subsystem $4:$5 any more, left alone (vfioctl apply says more)"
        return 1
    fi
    return 0
}

# claim ADDRESS DRIVER: override, then bind it now if it is unbound
claim() {
    [ -z "$only" ] || [ "$only" = "$1" ] || return 0
    d=$sys/bus/pci/devices/$1
    cur=
    if [ -e "$d/driver" ]; then
        cur=$(readlink "$d/driver")
        cur=${cur##*/}
    fi
    [ "$cur" = "$2" ] && return 0
    if [ "$(cat "$d/driver_override" 2>/dev/null)" != "$2" ]; then
        echo "$2" 2>/dev/null >"$d/driver_override" || { log "$1: cannot write driver_override"; return 0; }
    fi
    if [ -n "$cur" ]; then
        log "$1 is bound to $cur: vfioctl-apply.service will move it to $2"
        return 0
    fi
    [ -d "$sys/bus/pci/drivers/$2" ] || modprobe -q "$2" || log "$1: cannot load $2"
    echo "$1" 2>/dev/null >"$sys/bus/pci/drivers_probe" || log "$1: probing for $2 failed"
    return 0
}

[ -r "$targets" ] || exit 0
ok_entry=
while read -r entry addr vendor device subvendor subdevice driver; do
    case "$entry" in
    "" | "#"*) continue ;;
    esac
    if [ "$addr" = "$entry" ]; then
        ok_entry=
        if is "$addr" "$vendor" "$device" "$subvendor" "$subdevice"; then
            ok_entry=$entry
            claim "$addr" "$driver"
        fi
    elif [ "$ok_entry" = "$entry" ]; then
        # another function of the entry's IOMMU group
        is "$addr" "$vendor" "$device" - - && claim "$addr" "$driver"
    fi
done <"$targets"
exit 0
