"""What vfioctl publishes for container runtimes and Kubernetes (docs/kubernetes.md).

* :mod:`vfioctl.cluster.cdi`: a Container Device Interface spec for the devices vfioctl has
  hidden, kept current after every change when the config asks (``[cdi] path``);
* :mod:`vfioctl.cluster.labels`: a Node Feature Discovery feature file (``features.d``);
* :mod:`vfioctl.cluster.kubevirt`: KubeVirt's ``permittedHostDevices`` for what a config hides.

Each module has one function that reads the host (``gather``) into plain data, and pure
generators from that data to the spec, the labels or the YAML.  This layer sits above the
engine, the journal, the config and the checks, and below ``guest`` and ``cli``: the engine
never calls it; the CLI commands and the libvirt hook call :func:`vfioctl.cluster.cdi.refresh`
after a change.  The grammar of CDI and Kubernetes names is in :mod:`vfioctl.base.names`.
"""

from __future__ import annotations
