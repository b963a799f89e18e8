"""Validation of CDI specs and KubeVirt fragments against the schemas kept in tests/unit/data
(their sources: tests/unit/data/README.md).  Shared by the unit tests and the VM lab."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).parent / "data"


def _cdi_validator():
    import jsonschema
    from referencing import Registry
    from referencing.jsonschema import DRAFT7

    schema = json.loads((DATA / "cdi" / "schema.json").read_text())
    defs = json.loads((DATA / "cdi" / "defs.json").read_text())
    # schema.json refers to "defs.json#/definitions/...": serve it under that name
    registry = Registry().with_resource("defs.json", DRAFT7.create_resource(defs))
    return jsonschema.Draft7Validator(schema, registry=registry)


def validate_cdi(spec: dict) -> None:
    """Raise jsonschema.ValidationError unless *spec* is valid by the CDI JSON schema."""
    _cdi_validator().validate(spec)


def permitted_host_devices_schema() -> dict:
    return json.loads((DATA / "kubevirt" / "permittedHostDevices.schema.json").read_text())


def validate_permitted_host_devices(fragment: dict) -> None:
    """Raise unless *fragment* (the value of permittedHostDevices) is valid by KubeVirt's CRD
    schema AND uses only the fields it defines (the API server would prune others silently)."""
    import jsonschema

    schema = permitted_host_devices_schema()
    jsonschema.Draft4Validator(schema).validate(fragment)

    def only_defined(value, sch, where):
        if isinstance(value, dict):
            props = sch.get("properties", {})
            extra = set(value) - set(props)
            assert not extra, f"{where}: fields KubeVirt's CRD does not define: {sorted(extra)}"
            for k, v in value.items():
                only_defined(v, props[k], f"{where}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                only_defined(v, sch.get("items", {}), f"{where}[{i}]")

    only_defined(fragment, schema, "permittedHostDevices")
