"""A function's device nodes from /sys/dev, and the processes the open-nodes scan found."""

from __future__ import annotations

import json
import os

from vfioctl.host.core import Host
from vfioctl.usage import nodes


def test_nodes_below_a_function_by_their_sys_dev_links(fake):
    d = fake._devdir("0000:00:01.0") / "drm/renderD128"
    d.mkdir(parents=True)
    (d / "uevent").write_text("MAJOR=226\nMINOR=128\nDEVNAME=dri/renderD128\n")
    link = fake.root / "sys/dev/char/226:128"
    link.parent.mkdir(parents=True)
    link.symlink_to(os.path.relpath(d, link.parent))
    (fake.root / "sys/dev/char/not-a-devno").symlink_to("../../devices/pci0000:00/0000:00:01.0")
    host = Host(fake.root)
    assert nodes.function_nodes(host, "0000:00:01.0") == {"c:226:128": "/dev/dri/renderD128"}
    assert nodes.function_nodes(host, "0000:00:02.0") == {}


def test_process_uses_need_a_scan_answer(fake):
    host = Host(fake.root)
    want = {"c:226:128": "/dev/dri/renderD128"}
    [u] = nodes.process_uses(host, "0000:00:01.0", want)
    assert not u.known and "gave no answer" in u.text
    (fake.root / ".vfioctl").mkdir()
    (fake.root / ".vfioctl/probes.json").write_text(json.dumps({"open-nodes": {
        "opens": [[1, "a", "/dev/dri/renderD128", "c:226:128", "fd"], "junk", [2, "b", "/x", "c:9:9", "fd"]],
        "complete": False, "why": "the scan stopped after 5.0 s", "unreadable": 0}}))
    got = nodes.process_uses(Host(fake.root), "0000:00:01.0", want)
    assert [(u.kind, u.pid) for u in got] == [("process", 1), ("not-known", None)]
    assert "stopped after 5.0 s" in got[1].text
