"""The topology's picture (SVG): what can be assigned, hostile names, runs of alike boxes merged."""

from pcitopo import TopoBuilder, endpoint, host_bridge, root_port

from vfioctl.pci.address import PciAddress
from vfioctl.pci.topology import read_topology
from vfioctl.report import topology as T

A = PciAddress.parse


def test_picture_answers_what_can_be_assigned(tree):
    from vfioctl.report.picture import boxes, render_svg

    view = T.build(read_topology(tree.host()), verdicts={A("03:01.0"): "ready"})
    svg = render_svg(view, title="lab")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    for words in ("What can I assign?", "assignable alone", "only with its group", "blocked",
                  "stays with the host", "does not isolate", "group 2 · only with its group (2 endpoints)",
                  "group 4 · assignable alone", "ready", "hidden (vfio-pci)", "hidden (pci-stub)"):
        assert words in svg, words
    # boxes: one per group with an endpoint; a lone root port is the "via" of the box below it
    assert [b.key for b in boxes(view)] == [("group", 0), ("group", 2), ("group", 4), ("group", 3)]  # tree order
    import xml.dom.minidom

    xml.dom.minidom.parseString(svg)  # well-formed


def test_picture_escapes_hostile_names(tree):
    from vfioctl.report.picture import render_svg

    class EvilIds:
        def vendor(self, v):
            return '<script>alert(1)</script> & "x"'

        def device(self, v, d):
            return "\x1b[31m</text><svg onload=x>"

        def class_name(self, c):
            return "]]>"

    svg = render_svg(T.build(read_topology(tree.host()), ids=EvilIds()))
    assert "<script>" not in svg and "<svg onload" not in svg and "\x1b" not in svg
    import xml.dom.minidom

    xml.dom.minidom.parseString(svg)


def test_picture_merges_runs_of_alike_boxes_and_keeps_a_pf_with_its_vfs(tmp_path):
    """Many boxes: a run of alike NVMe drives becomes one box; a PF's VFs go inside the PF's box."""
    from vfioctl.report.picture import COLLAPSE_ABOVE, boxes, render_svg

    b = TopoBuilder(tmp_path)
    host_bridge(b)
    g = 1
    for i in range(COLLAPSE_ABOVE + 5):
        port = f"0000:00:{1 + i // 8:02x}.{i % 8}"
        root_port(b, port, 1 + i, group=g)
        endpoint(b, f"0000:{1 + i:02x}:00.0", parent=port, group=g + 1, vendor=0x144D, device=0xA80A,
                 cls=0x010802, driver="nvme")
        g += 2
    view = T.build(read_topology(b.host()))
    got = boxes(view)
    assert len(got) < 5 and any(len(x.more) >= COLLAPSE_ABOVE for x in got)
    assert len(boxes(view, expand=True)) == COLLAPSE_ABOVE + 6
    svg = render_svg(view)
    assert f"{COLLAPSE_ABOVE + 5} functions" in svg and "each assignable alone" in svg
