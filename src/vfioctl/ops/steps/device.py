"""Steps that change a PCI function's driver: modules, driver_override, unbind, probe,
bind, dynamic IDs, the group's device node, reset method and function reset."""

from __future__ import annotations

from dataclasses import dataclass, field

from vfioctl.base.errors import KernelError
from vfioctl.ops.steps.base import (
    Check,
    DeviceWrite,
    Exec,
    Step,
    SysfsWrite,
    _ensure_bound,
    _modprobe,
    _present,
    _unbind_if_on,
    _wait_driver,
    _write_override,
)
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PCI_DEVICES, PCI_DRIVERS


# ====================================================================== modules
@dataclass
class LoadModule(Step):
    """``modprobe MODULE`` so that *driver* registers.  Not undone: a loaded module is harmless."""

    module: str
    driver: str
    action = "modprobe"

    @property
    def value(self) -> str:
        return self.module

    def describe(self) -> str:
        return f"load module {self.module} (modprobe {self.module})"

    def expectation(self) -> str:
        return f"driver {self.driver} is registered"

    def do(self, x: Exec) -> None:
        _modprobe(x, self.module)

    def verify(self, x: Exec) -> None:
        x.wait(self.expectation(), lambda: x.host.is_dir(f"{PCI_DRIVERS}/{self.driver}"), lambda: "it missing")


# ====================================================================== binding
@dataclass
class SetOverride(SysfsWrite):
    """Write ``driver_override`` (None clears it)."""

    address: PciAddress
    driver: str | None
    previous: str | None

    @property
    def path(self) -> str:
        return f"{PCI_DEVICES}/{self.address}/driver_override"

    @property
    def value(self) -> str:
        return self.driver or ""


    def expectation(self) -> str:
        return f"{self.address} driver_override is {self.driver or 'empty'}"

    def do(self, x: Exec) -> None:
        _present(x, self.address, f"writing {self.path}")
        _write_override(x, self.address, self.driver)

    def verify(self, x: Exec) -> None:
        x.wait(self.expectation(), lambda: x.dev(self.address).driver_override == self.driver,
               lambda: f"driver_override {x.dev(self.address).driver_override or 'empty'}")

    def undo(self, x: Exec) -> None:
        dev = x.dev(self.address)
        if dev.exists() and dev.driver_override != self.previous:
            _write_override(x, self.address, self.previous)


@dataclass
class Unbind(SysfsWrite):
    """Unbind *address* from *driver*; undo binds it back (first restoring the override
    *override_before* that would otherwise refuse the driver)."""

    address: PciAddress
    driver: str
    module: str | None = None
    override_before: str | None = None

    @property
    def path(self) -> str:
        return f"{PCI_DRIVERS}/{self.driver}/unbind"

    @property
    def value(self) -> str:
        return str(self.address)


    def expectation(self) -> str:
        return f"{self.address} driver is none"

    def do(self, x: Exec) -> None:
        dev = _present(x, self.address, f"writing {self.path}")
        if dev.driver == self.driver:
            x.host.write(self.path, str(self.address))

    def verify(self, x: Exec) -> None:
        _wait_driver(x, self.address, None)

    def undo(self, x: Exec) -> None:
        _ensure_bound(x, self.address, self.driver, self.module, self.override_before)


@dataclass
class Probe(DeviceWrite):
    """``drivers_probe``: the PCI core binds the driver the override (or the ID tables) allow.
    With *expect* None the kernel chooses and nothing is verified or undone."""

    address: PciAddress
    expect: str | None

    @property
    def path(self) -> str:
        return "/sys/bus/pci/drivers_probe"

    @property
    def value(self) -> str:
        return str(self.address)


    def expectation(self) -> str | None:
        return f"{self.address} driver is {self.expect}" if self.expect else None

    def verify(self, x: Exec) -> None:
        if self.expect:
            _wait_driver(x, self.address, self.expect)

    def undo(self, x: Exec) -> None:
        if self.expect and _unbind_if_on(x, self.address, self.expect):
            _wait_driver(x, self.address, None)


@dataclass
class Bind(SysfsWrite):
    """``drivers/DRIVER/bind``: bind explicitly (the driver must be registered)."""

    address: PciAddress
    driver: str

    @property
    def path(self) -> str:
        return f"{PCI_DRIVERS}/{self.driver}/bind"

    @property
    def value(self) -> str:
        return str(self.address)


    def expectation(self) -> str:
        return f"{self.address} driver is {self.driver}"

    def do(self, x: Exec) -> None:
        dev = _present(x, self.address, f"writing {self.path}")
        if dev.driver != self.driver:
            x.host.write(self.path, str(self.address))

    def verify(self, x: Exec) -> None:
        _wait_driver(x, self.address, self.driver)

    def undo(self, x: Exec) -> None:
        _unbind_if_on(x, self.address, self.driver)


@dataclass
class NewId(DeviceWrite):
    """``new_id``: for kernels without driver_override (before 3.16), the driver takes every
    unbound device with this vendor:device."""

    address: PciAddress
    driver: str
    id: str  # "vvvv dddd"
    note: str = field(default="no driver_override on this kernel: new_id binds every unbound device with this ID",
                      kw_only=True)

    @property
    def path(self) -> str:
        return f"{PCI_DRIVERS}/{self.driver}/new_id"

    @property
    def value(self) -> str:
        return self.id


    def expectation(self) -> str:
        return f"{self.address} driver is {self.driver}"

    def verify(self, x: Exec) -> None:
        _wait_driver(x, self.address, self.driver)

    def undo(self, x: Exec) -> None:
        x.host.write(f"{PCI_DRIVERS}/{self.driver}/remove_id", self.id)
        _unbind_if_on(x, self.address, self.driver)


@dataclass
class RemoveId(SysfsWrite):
    """``remove_id``: take back a dynamic ID vfioctl added with new_id."""

    address: PciAddress
    driver: str
    id: str

    @property
    def path(self) -> str:
        return f"{PCI_DRIVERS}/{self.driver}/remove_id"

    @property
    def value(self) -> str:
        return self.id


    def do(self, x: Exec) -> None:
        if x.host.is_dir(f"{PCI_DRIVERS}/{self.driver}"):
            x.host.write(self.path, self.id)


@dataclass
class CheckGroupNode(Check):
    """The device's IOMMU group has its /dev/vfio/N: the group is usable by VFIO."""

    address: PciAddress
    group: int | None

    def expectation(self) -> str:
        g = self.group if self.group is not None else "N"
        return f"/dev/vfio/{g} exists" + ("" if self.group is not None else f" (the group of {self.address})")

    def verify(self, x: Exec) -> None:
        def node() -> str | None:
            g = x.dev(self.address).iommu_group if self.group is None else self.group
            return None if g is None else f"/dev/vfio/{g}"

        x.wait(self.expectation(), lambda: bool(node()) and x.host.exists(node() or "/"), lambda: "it missing")


# ====================================================================== reset
@dataclass
class SetResetMethod(DeviceWrite):
    """``reset_method``: the kernel's reset methods to use, in order (5.15+); None or
    "default" puts back the kernel's own list (drivers/pci/pci.c reset_method_store)."""

    address: PciAddress
    methods: tuple[str, ...]
    previous: tuple[str, ...]
    #: when the kernel refuses *methods* (EINVAL: a method it no longer accepts), put back its
    #: default list instead (what a restore wants: the device back as the kernel sees fit)
    or_default: bool = False

    @property
    def path(self) -> str:
        return f"{PCI_DEVICES}/{self.address}/reset_method"

    @property
    def value(self) -> str:
        return " ".join(self.methods)

    def expectation(self) -> str:
        if self.methods == ("default",):
            return f"{self.address} reset_method is the kernel's default list"
        return f"{self.address} reset_method is {self.value}" + (" (or the kernel's default)" if self.or_default else "")

    def do(self, x: Exec) -> None:
        try:
            super().do(x)
        except KernelError as err:
            if not self.or_default or err.fields.get("errno") != "EINVAL":
                raise
            x.memo[id(self)] = "default"
            x.host.write(self.path, "default")

    def _wanted(self, x: Exec) -> bool:
        now = tuple(x.dev(self.address).reset_methods)
        if self.methods == ("default",) or x.memo.get(id(self)) == "default":
            return bool(now)  # the kernel's own list: whatever it probes now, never empty
        return now == self.methods

    def verify(self, x: Exec) -> None:
        x.wait(self.expectation(), lambda: self._wanted(x),
               lambda: f"reset_method {' '.join(x.dev(self.address).reset_methods) or '(none)'}")

    def undo(self, x: Exec) -> None:
        dev = x.dev(self.address)
        if dev.exists() and tuple(dev.reset_methods) != self.previous and self.previous:
            x.host.write(self.path, " ".join(self.previous))


@dataclass
class ResetFunction(DeviceWrite):
    """``reset``: the kernel resets the function with the first method that works, saving and
    restoring its config space around it (drivers/pci/pci.c pci_reset_function).  Cannot be
    undone; verified by the write's success and the device still being on *driver*."""

    address: PciAddress
    driver: str | None

    @property
    def path(self) -> str:
        return f"{PCI_DEVICES}/{self.address}/reset"

    @property
    def value(self) -> str:
        return "1"


    def expectation(self) -> str:
        return f"{self.address} is still present on driver {self.driver or 'none'}"

    def verify(self, x: Exec) -> None:
        _present(x, self.address, "verifying the reset")
        _wait_driver(x, self.address, self.driver, self.expectation())
