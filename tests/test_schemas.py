"""schemas/ says what the code does: it is what the generator writes, and real messages obey it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sidecar import schemas
from tests.harness import RawSidecar

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "schemas"
Validator = jsonschema.Draft202012Validator


def _load(relative: str) -> dict[str, Any]:
    return json.loads((COMMITTED / relative).read_text(encoding="utf-8"))


def test_committed_schemas_are_exactly_what_the_code_generates(tmp_path: Path) -> None:
    schemas.write(tmp_path)
    generated = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {p.relative_to(COMMITTED).as_posix(): p.read_bytes() for p in COMMITTED.rglob("*") if p.is_file()}
    assert sorted(committed) == sorted(generated), "run `make schemas` and commit schemas/"
    for relative, content in generated.items():
        assert committed[relative] == content, f"schemas/{relative} is stale: run `make schemas` and commit it"


def test_generating_twice_gives_the_same_bytes() -> None:
    assert schemas.generate() == schemas.generate()


def test_the_bytes_do_not_follow_msgspecs_docstring_formatting(monkeypatch: pytest.MonkeyPatch) -> None:
    """msgspec 0.23 dedents class docstrings in the schemas it writes, older versions copy them as
    written: the committed files turned stale on a fresh install that resolved a newer msgspec.
    Here msgspec is made to behave as the old versions did; the generator must not care."""
    locked = schemas.generate()
    real = schemas.msgspec.json.schema_components

    def as_old_msgspec(*args: Any, **kwargs: Any) -> Any:
        refs, components = real(*args, **kwargs)
        for name, component in components.items():
            cls = getattr(schemas.protocol, name, None)
            if getattr(cls, "__doc__", None) and "description" in component:
                component["description"] = cls.__doc__.strip()
        return refs, components

    monkeypatch.setattr(schemas.msgspec.json, "schema_components", as_old_msgspec)
    old = schemas.generate()
    assert old == locked
    assert "\n    " in (schemas.protocol.DiffusionStats.__doc__ or "")  # an indented docstring is among them


def test_every_schema_file_is_a_valid_draft_2020_12_schema() -> None:
    files = [p for p in COMMITTED.rglob("*.json") if p.name != "openrpc.json"]
    assert files
    for path in files:
        Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))


def test_openrpc_describes_every_method_notification_and_error() -> None:
    from diffusion_sidecar_protocol.types import NOTIFICATIONS

    from sidecar.handlers import METHODS
    from sidecar.rpc.errors import ERROR_CODES

    document = _load("openrpc.json")
    assert document["openrpc"].startswith("1.")
    methods = {m["name"]: m for m in document["methods"]}
    assert list(methods) == list(METHODS)
    assert set(schemas.CLIENT_NOTIFICATIONS) <= set(METHODS)
    for name, method in methods.items():
        assert ("result" in method) == (name not in schemas.CLIENT_NOTIFICATIONS), name
    assert [n["name"] for n in document["x-notifications"]] == list(NOTIFICATIONS)
    errors = document["components"]["errors"]
    assert {name: e["code"] for name, e in errors.items()} == ERROR_CODES
    for component in document["components"]["schemas"].values():
        Validator.check_schema(component)
    diffusion = {p["name"]: p for p in methods["diffusion"]["params"]}
    assert diffusion["modelId"]["required"] and not diffusion["seed"]["required"]
    assert "-1" in diffusion["seed"]["description"], "field docstrings reach the description"


# --- real messages ---------------------------------------------------------------------------


class Checker:
    """Validates each message against its standalone schema file and against openrpc.json."""

    def __init__(self) -> None:
        self.openrpc = _load("openrpc.json")
        self.components = self.openrpc["components"]
        self.methods = {m["name"]: m for m in self.openrpc["methods"]}
        self.notifications = {n["name"]: n for n in self.openrpc["x-notifications"]}

    def _in_openrpc(self, schema: dict[str, Any]) -> Validator:
        # The component refs are JSON pointers into the OpenRPC document: give them that root.
        return Validator({"$schema": schemas.DIALECT, "components": self.components, **schema})

    def _by_name(self, descriptors: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {d["name"]: d["schema"] for d in descriptors},
            "required": [d["name"] for d in descriptors if d["required"]],
        }

    def params(self, method: str, params: dict[str, Any]) -> list[str]:
        """Every violation of the params schemas (empty when valid)."""
        stem = schemas.file_stem(method)
        errors = [e.message for e in Validator(_load(f"methods/{stem}.params.json")).iter_errors(params)]
        errors += [
            e.message for e in self._in_openrpc(self._by_name(self.methods[method]["params"])).iter_errors(params)
        ]
        return errors

    def result(self, method: str, result: Any) -> None:
        Validator(_load(f"methods/{schemas.file_stem(method)}.result.json")).validate(result)
        self._in_openrpc(self.methods[method]["result"]["schema"]).validate(result)

    def error(self, error: dict[str, Any]) -> None:
        Validator(_load("error.json")).validate(error)
        known = self.components["errors"][error["data"]["code"]]
        assert error["code"] == known["code"]

    def notification(self, method: str, params: dict[str, Any]) -> None:
        Validator(_load(f"notifications/{schemas.file_stem(method)}.json")).validate(params)
        self._in_openrpc(self._by_name(self.notifications[method]["params"])).validate(params)


@pytest.mark.anyio
async def test_messages_of_a_real_run_match_the_schemas(synthetic_model: str) -> None:
    checker = Checker()
    sent: dict[int, tuple[str, dict[str, Any]]] = {}
    raw = await RawSidecar.start()

    async def send(method: str, params: dict[str, Any]) -> int:
        request_id = await raw.send(method, params)
        sent[request_id] = (method, params)
        return request_id

    async def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
        return await raw.response(await send(method, params))

    try:
        await call("initialize", {"clientName": "test_schemas"})
        loaded = await call("loadModel", {"modelPath": synthetic_model, "modelConfig": {"threads": 2}})
        model_id = loaded["result"]["modelId"]
        small = {"modelId": model_id, "prompt": "a lighthouse", "width": 64, "height": 64, "steps": 1}
        batch = await send("diffusion", {**small, "batch_count": 2, "seed": 7})
        await raw.wait_for(lambda m: m.get("method") == "diffusion/progress" and m["params"]["requestId"] == batch)
        queued = await send("diffusion", small)  # waits behind the batch, which is still running
        assert (await call("cancel", {"requestId": queued}))["result"] == {"cancelled": 1}
        await raw.response(queued)
        assert "result" in await raw.response(batch)
        await call("diffusion", {**small, "width": 100})
        await call("diffusion", {**small, "modelId": "no-such-model"})
        await call("noSuchMethod", {})
        await call("unloadModel", {"modelId": model_id})
        await call("shutdown", {})
        assert await raw.exit_status() == 0
    finally:
        await raw.stop()

    results: dict[str, Any] = {}
    error_codes = set()
    for message in raw.messages:
        if "method" in message:
            checker.notification(message["method"], message["params"])
            continue
        method, params = sent[message["id"]]
        if "error" in message:
            checker.error(message["error"])
            error_codes.add(message["error"]["data"]["code"])
        else:
            checker.result(method, message["result"])
            results[method] = message["result"]
        if method in checker.methods:
            # What the sidecar took, the schemas take; what it refused as a params error, they refuse.
            refused_params = message.get("error", {}).get("data", {}).get("code") == "INVALID_PARAMS"
            assert bool(checker.params(method, params)) == refused_params, (method, params)

    assert set(results) == {"initialize", "loadModel", "diffusion", "cancel", "unloadModel", "shutdown"}
    assert {m["method"] for m in raw.messages if "method" in m} == {"loadModel/progress", "diffusion/progress"}
    assert error_codes == {"CANCELLED", "INVALID_PARAMS", "MODEL_NOT_LOADED", "METHOD_NOT_FOUND"}

    # The schemas are strict enough to notice a message that breaks the protocol.
    broken = copy.deepcopy(results["diffusion"])
    del broken["stats"]["seed"]
    with pytest.raises(jsonschema.ValidationError):
        checker.result("diffusion", broken)
    with pytest.raises(jsonschema.ValidationError):
        checker.error({"code": -32001, "message": "x", "data": {"code": "CANCELLED"}})
