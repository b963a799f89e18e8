"""What vfioctl publishes for container runtimes and Kubernetes (docs/kubernetes.md).

* :mod:`vfioctl.cluster.cdi`: a Container Device Interface spec for the devices vfioctl has
  hidden, kept current after every change when the config asks (``[cdi] path``);
* :mod:`vfioctl.cluster.labels`: a Node Feature Discovery feature file (``features.d``);
* :mod:`vfioctl.cluster.kubevirt`: KubeVirt's ``permittedHostDevices`` for what a config hides.

Each module has one function that reads the host (``gather``) into plain data, and pure
generators from that data to the spec, the labels or the YAML.  This layer sits above the
engine, the journal, the config and the checks, and below ``guest`` and ``cli``: the engine
never calls it; the CLI commands and the libvirt hook call :func:`vfioctl.cluster.cdi.refresh`
after a change.
"""

from __future__ import annotations

import re

#: a Kubernetes label name or a qualified name's name part: 63 characters at most, letters,
#: digits, '-', '_', '.', first and last a letter or digit (k8s.io/apimachinery validation)
_K8S_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def is_k8s_name(text: object) -> bool:
    """The name part of a Kubernetes label key, annotation key or extended resource name."""
    return isinstance(text, str) and _K8S_NAME.fullmatch(text) is not None


def is_label_value(text: object) -> bool:
    """A Kubernetes label value: empty, or a name of at most 63 characters."""
    return text == "" or is_k8s_name(text)
