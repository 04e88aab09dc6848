"""JSON Schemas of the kind clients send for structured output (the subset engine/structured supports), and the
judge every constrained output is checked by: Python's json parser, then jsonschema with its format checker, then
datetime.fromisoformat for date-time/time (jsonschema checks those formats only with an optional package)."""
import datetime
import json

import jsonschema

S = {"type": "string", "maxLength": 16}
I = {"type": "integer", "minimum": -1000, "maximum": 1000}

SCHEMAS = [
    # scalars
    {"type": "string"},
    {"type": "string", "minLength": 3, "maxLength": 8},
    {"type": "string", "maxLength": 0},
    {"type": "integer"},
    {"type": "integer", "minimum": 10, "maximum": 99},
    {"type": "integer", "exclusiveMinimum": -5, "exclusiveMaximum": 5},
    {"type": "number"},
    {"type": "number", "minimum": 0, "maximum": 1},
    {"type": "number", "exclusiveMinimum": 2.5, "maximum": 3},
    {"type": "boolean"},
    {"type": "null"},
    {"type": ["string", "null"], "maxLength": 10},
    {"type": ["integer", "boolean"]},
    # enums and consts
    {"enum": ["red", "green", "blue"]},
    {"enum": [1, 2, 3, 12, 123]},
    {"enum": ["a", 1, None, True, {"k": [1, 2]}]},
    {"const": "fixed"},
    {"const": {"version": 2, "tags": ["x"]}},
    {"type": "string", "enum": ["x", "y", 3]},
    # formats
    {"type": "string", "format": "date"},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "time"},
    {"type": "string", "format": "uuid"},
    {"type": "string", "format": "email"},
    # objects
    {"type": "object"},
    {"type": "object", "properties": {"name": S}, "required": ["name"]},
    {"type": "object", "properties": {"name": S, "age": I}, "required": ["name", "age"], "additionalProperties": False},
    {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "null"}}, "additionalProperties": False},
    {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "when": {"type": "string",
                                                                                          "format": "date"}},
     "required": ["id", "when"], "additionalProperties": False},
    {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 9}},
    {"type": "object", "additionalProperties": False},
    {"type": "object", "required": ["x"], "additionalProperties": {"type": "boolean"}},
    {"type": "object", "properties": {"name": S, "names": {"type": "array", "items": S, "maxItems": 3}},
     "required": ["names"], "additionalProperties": False},
    {"type": "object", "properties": {"point": {"type": "object", "properties": {"x": {"type": "number"},
                                                                                "y": {"type": "number"}},
                                                "required": ["x", "y"], "additionalProperties": False}},
     "required": ["point"], "additionalProperties": False},
    {"properties": {"title": S}, "required": ["title"]},  # no "type": an object by its keywords
    # arrays
    {"type": "array"},
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 5}},
    {"type": "array", "items": {"type": "boolean"}, "minItems": 2, "maxItems": 3},
    {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 0},
    {"type": "array", "items": {"type": "array", "items": {"type": "null"}, "maxItems": 2}, "maxItems": 2},
    {"type": "array", "items": {"type": "object", "properties": {"k": S}, "required": ["k"],
                                "additionalProperties": False}, "minItems": 1, "maxItems": 2},
    {"type": "array", "items": S, "uniqueItems": False, "maxItems": 4},
    # anyOf / oneOf / allOf of one
    {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "string", "maxLength": 4}]},
    {"oneOf": [{"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}},
                "required": ["kind", "r"], "additionalProperties": False},
               {"type": "object", "properties": {"kind": {"const": "square"}, "side": {"type": "integer"}},
                "required": ["kind", "side"], "additionalProperties": False}]},
    {"anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "boolean"}, "maxItems": 2}]},
    {"allOf": [{"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                "additionalProperties": False}]},
    # references and recursion
    {"$defs": {"name": S}, "type": "object", "properties": {"first": {"$ref": "#/$defs/name"},
                                                             "last": {"$ref": "#/$defs/name"}},
     "required": ["first", "last"], "additionalProperties": False},
    {"definitions": {"n": {"type": "integer", "minimum": 0, "maximum": 3}}, "type": "array",
     "items": {"$ref": "#/definitions/n"}, "maxItems": 3},
    {"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer", "minimum": 0, "maximum": 9},
                                                          "kids": {"type": "array", "items": {"$ref": "#/$defs/node"},
                                                                   "maxItems": 2}},
                        "required": ["v"], "additionalProperties": False}},
     "$ref": "#/$defs/node"},
    # what function-calling clients send
    {"type": "object", "title": "get_weather", "description": "Weather in a city",
     "properties": {"city": {"type": "string", "description": "City name", "maxLength": 20},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
     "required": ["city", "unit"], "additionalProperties": False},
    {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {
        "sku": {"type": "string", "maxLength": 6}, "qty": {"type": "integer", "minimum": 1, "maximum": 9}},
        "required": ["sku", "qty"], "additionalProperties": False}, "maxItems": 2}}, "required": ["items"],
     "additionalProperties": False},
]


def check(text, schema):
    """Raises when `text` is not one JSON value that `schema` accepts (with the formats checked)."""
    value = json.loads(text)
    validator = jsonschema.Draft202012Validator  # "time" is RFC 3339 full-time here (draft 3's has no offset)
    validator(schema, format_checker=validator.FORMAT_CHECKER).validate(value)
    _check_time_formats(value, schema, schema)


def _resolve(schema, root):
    while isinstance(schema, dict) and "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part] if part else node
        schema = node
    return schema


def _check_time_formats(value, schema, root):
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return
    for alt in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        try:
            jsonschema.validate(value, _with_defs(alt, root))
        except jsonschema.ValidationError:
            continue
        _check_time_formats(value, alt, root)
    fmt = schema.get("format")
    if isinstance(value, str) and fmt == "date-time":
        datetime.datetime.fromisoformat(value)
    if isinstance(value, str) and fmt == "time":
        datetime.time.fromisoformat(value)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for k, v in value.items():
            sub = props.get(k, schema.get("additionalProperties", True))
            _check_time_formats(v, sub, root)
    if isinstance(value, list):
        for v in value:
            _check_time_formats(v, schema.get("items", True), root)


def _with_defs(schema, root):
    if isinstance(schema, dict):
        return {**{k: root[k] for k in ("$defs", "definitions") if k in root}, **schema}
    return schema
