"""Predicting the kernel's IOMMU groups from config space, and comparing them with the
kernel's own: a difference points at something the replay cannot see (a quirk this
project does not know), and `check` reports it."""

from __future__ import annotations

from vfioctl.base.errors import HostNotReady
from vfioctl.base.record import factory, frozen
from vfioctl.iommu.replay import Join, _Kernel
from vfioctl.pci.address import PciAddress
from vfioctl.pci.topology import Topology

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable


@frozen
class Prediction:
    """The groups the kernel would form.  ``groups`` is empty unless ``complete``."""

    groups: dict[int, tuple[PciAddress, ...]]
    complete: bool
    #: (device, the fact that was missing) for every device that could not be placed
    undecided: tuple[tuple[PciAddress, str], ...]
    joins: dict[PciAddress, Join] = factory(default_factory=dict)
    #: what the replay assumed or could not model on this host
    caveats: tuple[str, ...] = ()
    #: function -> the fact missing from its config read (the owners of what ``undecided`` needs)
    missing: dict[PciAddress, str] = factory(default_factory=dict)

    def why_incomplete(self) -> str:
        """One line: which functions could not be placed, and which config reads fell short."""
        if self.complete:
            return ""
        devs = [a for a, _ in self.undecided]
        shown = _addrs(devs[:4]) + (f" and {len(devs) - 4} more" if len(devs) > 4 else "")
        owners = sorted(self.missing)
        first = self.missing[owners[0]] if owners else self.undecided[0][1]
        return (f"{len(devs)} function(s) ({shown}) depend on config space that was not read: "
                f"{_addrs(owners)}: {first}")

    def group_of(self, addr: PciAddress) -> int | None:
        for k, members in self.groups.items():
            if addr in members:
                return k
        return None


class CannotPredict(HostNotReady):
    """Config space too short (a non-root read) to replay the kernel's grouping.  User acts."""


def predict(topology: Topology) -> Prediction:
    """Replay the kernel's grouping from config space; never raises for missing facts
    (they make the prediction incomplete, with the reasons in ``undecided``)."""
    k = _Kernel(topology)
    on = topology.iommu_enabled
    undecided = k.run(lambda a: (not on) or topology.functions[a].iommu_group is not None)
    if any(a.domain >= 0x10000 for a in topology.functions):
        k.caveat("a VMD domain is present: its devices DMA as the VMD endpoint (pci_real_dma_dev); not modelled")
    if topology.ivrs:
        k.caveat("AMD IOMMU: aliases the IVRS table declares are not modelled")
    groups: dict[int, tuple[PciAddress, ...]] = {}
    if not undecided:
        by: dict[int, list[PciAddress]] = {}
        for a, g in k.group.items():
            by.setdefault(g, []).append(a)
        groups = {g: tuple(sorted(m)) for g, m in sorted(by.items())}
    return Prediction(groups, not undecided, tuple(undecided), dict(k.joins), tuple(k.caveats), dict(k.missing))


def predict_groups(topology: Topology) -> dict[int, list[PciAddress]]:
    """The groups the kernel would form, keyed by the number the replay gives them
    (the kernel's own numbers usually match on a freshly booted host).  Raises
    CannotPredict when config space is too short (read as non-root) to decide."""
    p = predict(topology)
    if not p.complete:
        raise CannotPredict(f"cannot predict the IOMMU groups: {p.why_incomplete()}")
    return {g: list(m) for g, m in p.groups.items()}


# ============================================================== compare
@frozen
class GroupDifference:
    """One place where the kernel's groups and the prediction disagree."""

    #: "kernel-merges" (the kernel groups what we predict apart), "kernel-splits" (the kernel
    #: separates what we predict together), "only-kernel", "only-predicted"
    kind: str
    kernel_groups: tuple[int, ...]
    predicted_groups: tuple[int, ...]
    devices: tuple[PciAddress, ...]
    text: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "kernel_groups": list(self.kernel_groups),
                "predicted_groups": list(self.predicted_groups),
                "devices": [str(a) for a in self.devices], "text": self.text}


def compare(predicted: dict[int, list[PciAddress]] | dict[int, tuple[PciAddress, ...]],
            kernel: dict[int, list[PciAddress]]) -> list[GroupDifference]:
    """Which groups differ, and how.  Groups are matched by membership, not by number."""
    pg = {a: k for k, ms in predicted.items() for a in ms}
    kg = {a: k for k, ms in kernel.items() for a in ms}
    out: list[GroupDifference] = []
    for k, ms in sorted(kernel.items()):
        keys = sorted({pg[a] for a in ms if a in pg})
        if len(keys) > 1:
            out.append(GroupDifference(
                "kernel-merges", (k,), tuple(keys), tuple(sorted(ms)),
                f"kernel group {k} ({_addrs(ms)}) holds what the rules predict as {len(keys)} groups "
                f"({'; '.join(_addrs(predicted[p]) for p in keys)}): a DMA-alias quirk or a missing ACS quirk"))
    for p, pms in sorted(predicted.items()):
        keys = sorted({kg[a] for a in pms if a in kg})
        if len(keys) > 1:
            out.append(GroupDifference(
                "kernel-splits", tuple(keys), (p,), tuple(sorted(pms)),
                f"the rules predict {_addrs(pms)} in one group; the kernel has {len(keys)} "
                f"(groups {', '.join(str(k) for k in keys)}): an ACS quirk not modelled here, or pcie_acs_override"))
    only_k = sorted(a for a in kg if a not in pg)
    if only_k:
        out.append(GroupDifference("only-kernel", tuple(sorted({kg[a] for a in only_k})), (), tuple(only_k),
                                   f"{_addrs(only_k)} have a kernel group but no predicted one"))
    only_p = sorted(a for a in pg if a not in kg)
    if only_p:
        out.append(GroupDifference("only-predicted", (), tuple(sorted({pg[a] for a in only_p})), tuple(only_p),
                                   f"{_addrs(only_p)} are predicted in a group but the kernel gave them none"))
    return out


def _addrs(ms: Iterable[PciAddress]) -> str:
    return ", ".join(str(a) for a in sorted(ms))
