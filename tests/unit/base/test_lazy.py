"""The lazy re-exports of the package faces: a name is imported from its owner on first use, once."""

import sys
import types

import pytest

import vfioctl
from vfioctl import boot
from vfioctl.base.lazy import lazy_exports


def test_a_name_is_loaded_from_its_module_and_kept():
    ns: dict[str, object] = {}
    get = lazy_exports("pkg", ns, {"join": "os.path", "sep_of_os": ("os", "sep")})
    import os

    assert get("join") is os.path.join and ns["join"] is os.path.join
    assert get("sep_of_os") == os.sep and ns["sep_of_os"] == os.sep  # (module, attribute): another name


def test_a_submodule_is_imported_by_name():
    get = lazy_exports("vfioctl", {}, {}, ("engine",))
    assert get("engine") is sys.modules["vfioctl.engine"]


def test_an_unknown_name_is_an_attribute_error_naming_the_package():
    get = lazy_exports("some.pkg", {}, {"a": "os"})
    with pytest.raises(AttributeError, match="module 'some.pkg' has no attribute 'b'"):
        get("b")
    with pytest.raises(AttributeError):
        getattr(vfioctl, "no_such_name")
    with pytest.raises(AttributeError, match="module 'vfioctl.boot' has no attribute"):
        getattr(boot, "no_such_name")


def test_the_faces_export_what_they_list():
    for name in vfioctl.__all__:
        assert getattr(vfioctl, name) is not None, name
    for name in boot.__all__:
        assert getattr(boot, name) is not None, name
    assert isinstance(vfioctl.engine, types.ModuleType)
    assert boot.detect_initramfs.__name__ == "initramfs_tool"  # exported under another name
    assert issubclass(vfioctl.InUse, vfioctl.Refused) and vfioctl.VfioctlError.__module__ == "vfioctl.base.errors"
