"""The error hierarchy: who must act (the class), the exit code, the JSON form, and OSErrors translated."""

import errno
import os

import pytest

from vfioctl.base import errors as E


def test_every_error_is_a_vfioctl_error_with_a_documented_exit_code():
    codes = {name: getattr(E, name).exit_code for name in E.__all__}
    assert all(issubclass(getattr(E, name), E.VfioctlError) for name in E.__all__)
    assert codes["VfioctlError"] == 70 and codes["Interrupted"] == 130
    # each code is one of the table in the module's docstring
    for code in codes.values():
        assert f"\n{code} " in E.__doc__ or f"\n{code}  " in E.__doc__, code


def test_the_python_bases_let_callers_catch_what_they_know():
    assert issubclass(E.InvalidInput, ValueError) and issubclass(E.NotFound, LookupError)
    assert issubclass(E.KernelError, OSError) and issubclass(E.VfioctlPermissionError, PermissionError)
    assert issubclass(E.Interrupted, KeyboardInterrupt) and issubclass(E.InUse, E.Refused)


def test_to_dict_keeps_plain_fields_and_stringifies_the_rest():
    err = E.Refused("no", path="/x", n=3, ok=True, what=object, items=[1])
    d = err.to_dict()
    assert d["error"] == "Refused" and d["message"] == "no" and str(err) == "no"
    assert d["path"] == "/x" and d["n"] == 3 and d["ok"] is True and d["items"] == [1]
    assert d["what"] == str(object)


def test_valid_passes_the_value_or_refuses_with_the_message():
    assert E.valid("vfio-pci", True, "unused") == "vfio-pci"
    with pytest.raises(E.InvalidInput) as err:
        E.valid("bad", False, "--driver 'bad' is not a vfio driver")
    assert str(err.value) == "--driver 'bad' is not a vfio driver" and err.value.exit_code == 65


@pytest.mark.parametrize("code,cls,words", [
    (errno.ENOENT, E.NotFound, "does not exist"),
    (errno.ENOTDIR, E.NotFound, "does not exist"),
    (errno.EBUSY, E.Busy, "Device or resource busy (EBUSY)"),
    (errno.EAGAIN, E.Busy, "EAGAIN"),
    (errno.ELOOP, E.InvalidInput, "symbolic link loop"),
    (errno.EISDIR, E.InvalidInput, "it is a folder"),
    (errno.EFBIG, E.InvalidInput, "too large"),
    (errno.EIO, E.KernelError, "Input/output error (EIO)"),
    (errno.EINVAL, E.KernelError, "EINVAL"),
])
def test_from_oserror_says_who_acts(code, cls, words):
    err = E.from_oserror(OSError(code, os.strerror(code)), "write", "/sys/x")
    assert type(err) is cls and words in str(err) and str(err).startswith("cannot write /sys/x: ")
    assert err.fields["path"] == "/sys/x" and err.fields["errno"] == errno.errorcode[code]


def test_enotdir_while_creating_is_a_file_in_the_way_not_a_missing_path():
    made = E.from_oserror(OSError(errno.ENOTDIR, "x"), "write the spec", "/etc/cdi/f/x.json", creating=True)
    assert isinstance(made, E.InvalidInput) and made.exit_code == 65
    assert "a file is already there where its path needs a folder" in made.message
    read = E.from_oserror(OSError(errno.ENOTDIR, "x"), "read", "/etc/cdi/f/x.json", reading=True)
    assert isinstance(read, E.NotFound) and "does not exist" in read.message


def test_einval_while_reading_is_a_file_that_is_not_regular():
    err = E.from_oserror(OSError(errno.EINVAL, "x"), "read", "/etc/x", reading=True)
    assert type(err) is E.InvalidInput and "not a regular file" in str(err)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS])
def test_permission_errors_advise_by_who_runs(code):
    err = E.from_oserror(OSError(code, os.strerror(code)), "write", "/sys/x")
    assert type(err) is E.VfioctlPermissionError
    assert ("run as root" in str(err)) == (os.geteuid() != 0)
    assert ("lockdown" in str(err)) == (os.geteuid() == 0)


def test_an_oserror_without_errno_keeps_its_text():
    err = E.from_oserror(OSError("strange"), "read", "/x")
    assert type(err) is E.KernelError and "strange" in str(err)
