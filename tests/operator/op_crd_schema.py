"""Loads the CRDs of crds/ and validates custom resources against their openAPIV3Schema
with jsonschema and their CEL rules with cel-python, the way the API server would."""
import copy
import os

import celpy
import jsonschema
import yaml

import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("LORAX_BUILD_DIR", REPO / "build"))

CRD_FILES = {"LoraxDeployment": REPO / "crds" / "loraxdeployment.yaml", "Adapter": REPO / "crds" / "adapter.yaml"}


def load_crd(kind):
    return yaml.safe_load(CRD_FILES[kind].read_text())


def _close(schema):
    """additionalProperties: false wherever the schema lists properties: the API server
    would silently prune unknown fields, which in our own objects means a bug."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields") \
                and set(schema["properties"]) != {"apiVersion", "kind", "metadata", "spec", "status"} | set():
            schema["additionalProperties"] = False
        for v in schema.values():
            _close(v)
    elif isinstance(schema, list):
        for v in schema:
            _close(v)
    return schema


def schema_for(kind, strict=True):
    s = copy.deepcopy(load_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    return _close(s) if strict else s


class CelError(jsonschema.ValidationError):
    """A failed x-kubernetes-validations rule (a ValidationError, like the schema's own failures)."""


def check_cel(value, schema, path="self"):
    """Evaluates every x-kubernetes-validations rule with cel-python (a CEL implementation
    independent of ours), with `self` bound to the value at that point, as the API server does."""
    if isinstance(value, dict):
        for rule in schema.get("x-kubernetes-validations", []):
            env = celpy.Environment()
            prog = env.program(env.compile(rule["rule"]))
            if not prog.evaluate({"self": celpy.json_to_cel(value)}):
                raise CelError(f"{path}: {rule.get('message', rule['rule'])}")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                check_cel(value[name], sub, f"{path}.{name}")


def validate_cr(obj, strict=True):
    """Schema, then CEL rules on the object as the API server would default it."""
    jsonschema.validate(obj, schema_for(obj["kind"], strict))
    defaulted = apply_defaults(copy.deepcopy(obj))
    check_cel(defaulted, schema_for(obj["kind"], strict=False))


def apply_defaults(obj, schema=None):
    """Structural-schema defaulting (the API server's job) for the test double."""
    if schema is None:
        schema = schema_for(obj["kind"], strict=False)
    if not isinstance(obj, dict):
        return obj
    for name, sub in schema.get("properties", {}).items():
        if name not in obj and "default" in sub:
            obj[name] = copy.deepcopy(sub["default"])
        if name in obj and isinstance(obj[name], dict):
            apply_defaults(obj[name], sub)
    return obj
