"""The protocol, machine-readable: JSON Schemas and an OpenRPC document in `schemas/`.

Everything is generated from what the sidecar itself runs on: the msgspec Structs in
`diffusion_sidecar_protocol.types`, the method table `sidecar.handlers.METHODS` (a handler's return annotation is
its result type), `diffusion_sidecar_protocol.types.NOTIFICATIONS` and `sidecar.rpc.errors.ERROR_CODES`. Field
descriptions are the docstrings under the Struct fields. `tests/test_schemas.py` fails when the
committed files differ from what this module writes, so the description cannot drift.

    python -m sidecar.schemas [OUTDIR]      # default: schemas/ at the repository root
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

import msgspec
from diffusion_sidecar_protocol import PROTOCOL_VERSION
from diffusion_sidecar_protocol import types as protocol

from .handlers import METHODS
from .rpc.errors import ERROR_CODES

DIALECT = "https://json-schema.org/draft/2020-12/schema"
OPENRPC_VERSION = "1.3.2"
DEFAULT_OUTDIR = Path(__file__).resolve().parent.parent / "schemas"

# Methods a client sends without an id (LSP style): the sidecar never answers them.
CLIENT_NOTIFICATIONS = ("$/cancelRequest", "exit")

Schema = dict[str, Any]


def result_type(name: str) -> Any:
    """The type a method answers with: its handler's return annotation (None: `null`)."""
    return typing.get_type_hints(METHODS[name].handle)["return"]


def file_stem(name: str) -> str:
    """A method name as a file name: `loadModel/progress` -> `loadModel.progress`."""
    return re.sub(r"[^A-Za-z0-9_]+", ".", name).strip(".")


# --- what msgspec leaves out ------------------------------------------------------------------


def _struct(name: str) -> type[msgspec.Struct] | None:
    cls = getattr(protocol, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, msgspec.Struct) else None


def field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under a Struct's fields, inherited ones included."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if base.__module__ != protocol.__name__:
            continue
        (node,) = ast.parse(textwrap.dedent(inspect.getsource(base))).body
        assert isinstance(node, ast.ClassDef)
        for field, after in zip(node.body, node.body[1:]):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[field.target.id] = inspect.cleandoc(after.value.value)
    return docs


def describe(components: dict[str, Schema]) -> dict[str, Schema]:
    """Add each field's docstring to its property schema (msgspec only carries class docstrings),
    and write each class docstring ourselves: msgspec 0.23 dedents it and older versions do not,
    so the bytes of `schemas/` would otherwise follow the installed msgspec."""
    for name, component in components.items():
        if (cls := _struct(name)) is not None:
            if cls.__doc__:
                component["description"] = inspect.cleandoc(cls.__doc__)
            for field, doc in field_docs(cls).items():
                component["properties"][field]["description"] = doc
    return components


def sent_in_full(components: dict[str, Schema], outputs: set[str]) -> dict[str, Schema]:
    """Mark what the sidecar always writes as required in the Structs it sends.

    msgspec calls a field with a default optional, which is true of what it decodes (params) but
    not of what it encodes: the encoder writes every field whose value is not UNSET.
    """
    for name in outputs & set(components):
        cls = _struct(name)
        if cls is not None and not cls.__struct_config__.omit_defaults:
            required = [f.encode_name for f in msgspec.structs.fields(cls) if f.default is not msgspec.UNSET]
            components[name]["required"] = required
    return components


def output_names(types: list[Any]) -> set[str]:
    """Names of the components reachable from `types` (what the sidecar writes)."""
    return set(msgspec.json.schema_components(types)[1])


# --- standalone JSON Schemas -------------------------------------------------------------------


def standalone(tp: Any, title: str, *, sent: bool) -> Schema:
    """A self-contained Draft 2020-12 schema for one message part (`sent`: the sidecar writes it)."""
    (root,), components = msgspec.json.schema_components([tp], ref_template="#/$defs/{name}")
    schema: Schema = {"$schema": DIALECT, "title": title, **root}
    if components:
        schema["$defs"] = describe(sent_in_full(components, set(components) if sent else set()))
    return schema


def error_schema() -> Schema:
    """A JSON-RPC error object: each `data.code` string goes with exactly one numeric code."""
    return {
        "$schema": DIALECT,
        "title": "error",
        "description": "The `error` member of an error response.",
        "type": "object",
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "data": {
                "type": "object",
                "properties": {"code": {"enum": list(ERROR_CODES)}},
                "required": ["code"],
            },
        },
        "required": ["code", "message", "data"],
        "additionalProperties": False,
        "oneOf": [
            {"properties": {"code": {"const": number}, "data": {"properties": {"code": {"const": name}}}}}
            for name, number in ERROR_CODES.items()
        ],
    }


def message_schemas() -> dict[str, Schema]:
    """Relative path -> schema, for every method's params and result and every notification."""
    files: dict[str, Schema] = {"error.json": error_schema()}
    for name, method in METHODS.items():
        stem = f"methods/{file_stem(name)}"
        files[f"{stem}.params.json"] = standalone(method.params, f"{name} params", sent=False)
        if name not in CLIENT_NOTIFICATIONS:
            files[f"{stem}.result.json"] = standalone(result_type(name), f"{name} result", sent=True)
    for name, struct in protocol.NOTIFICATIONS.items():
        files[f"notifications/{file_stem(name)}.json"] = standalone(struct, f"{name} params", sent=True)
    return files


# --- OpenRPC -----------------------------------------------------------------------------------


def _by_name_params(struct: type, components: dict[str, Schema]) -> list[Schema]:
    """OpenRPC content descriptors, one per field of a by-name params object."""
    component = components[struct.__name__]
    required = set(component.get("required", ()))
    descriptors = []
    for field, schema in component["properties"].items():
        descriptor = {"name": field, "required": field in required, "schema": schema}
        if "description" in schema:
            descriptor["description"] = schema["description"]
        descriptors.append(descriptor)
    return descriptors


def _error_name(name: str) -> str:
    return name.replace("_", " ").capitalize()


def openrpc() -> Schema:
    answered = [name for name in METHODS if name not in CLIENT_NOTIFICATIONS]
    sent = [result_type(name) for name in answered] + list(protocol.NOTIFICATIONS.values())
    received = [method.params for method in METHODS.values()]
    refs, components = msgspec.json.schema_components(sent + received, ref_template="#/components/schemas/{name}")
    results = dict(zip(answered, refs))
    # A Struct both sent and received keeps msgspec's looser reading, true of both directions.
    describe(sent_in_full(components, output_names(sent) - output_names(received)))
    errors = [{"$ref": f"#/components/errors/{name}"} for name in ERROR_CODES]
    methods = []
    for name, method in METHODS.items():
        entry: Schema = {
            "name": name,
            "description": inspect.cleandoc(sys.modules[method.handle.__module__].__doc__ or ""),
            "paramStructure": "by-name",
            "params": _by_name_params(method.params, components),
        }
        if name in CLIENT_NOTIFICATIONS:
            entry["x-notification"] = True  # OpenRPC 1.3: no `result` means a notification
        else:
            entry["result"] = {"name": "result", "schema": results[name]}
            entry["errors"] = errors
        methods.append(entry)
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "diffusion-sidecar",
            "version": PROTOCOL_VERSION,
            "description": (
                "Newline-delimited JSON-RPC 2.0 over the sidecar's stdin/stdout. Methods marked "
                "`x-notification` are sent by the client without an id and never answered. "
                "`x-notifications` lists what the sidecar sends to the client (no id, no answer): "
                "each names its request in `params.requestId`. Every error carries a stable string "
                "in `error.data.code`; `components.errors` pairs it with its numeric code."
            ),
        },
        "methods": methods,
        "x-notifications": [
            {
                "name": name,
                "description": inspect.cleandoc(struct.__doc__ or ""),
                "paramStructure": "by-name",
                "params": _by_name_params(struct, components),
            }
            for name, struct in protocol.NOTIFICATIONS.items()
        ],
        "components": {
            "schemas": components,
            "errors": {
                name: {"code": number, "message": _error_name(name), "data": {"code": name}}
                for name, number in ERROR_CODES.items()
            },
        },
    }


# --- files -------------------------------------------------------------------------------------


def render(document: Schema) -> str:
    # Sorted keys and a fixed layout: the same code always gives the same bytes.
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """Relative path -> file content, for everything in `schemas/`."""
    files = {path: render(schema) for path, schema in message_schemas().items()}
    files["openrpc.json"] = render(openrpc())
    return files


def write(outdir: Path) -> list[Path]:
    written = []
    for relative, content in generate().items():
        path = outdir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    # A file no longer generated (a method that was removed) must not linger as a stale description.
    for stale in set(outdir.rglob("*.json")) - set(written):
        stale.unlink()
    return written


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    outdir = Path(args[0]) if args else DEFAULT_OUTDIR
    for path in write(outdir):
        print(path)


if __name__ == "__main__":
    main()
