"""Fuzzing the running sidecar (hypothesis): whatever arrives, it answers each id once, with the
right code, and keeps serving. 11,000 cases across the tests below, against one real process (and one
with `--models-root`, for paths).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from diffusion_sidecar_client import default_command
from diffusion_sidecar_protocol.types import CancelParams, DiffusionParams, LoadModelParams, ModelConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
MARKER = b'{"jsonrpc":"2.0","id":"marker","method":"cancel","params":{"requestId":"none"}}\n'


class Sidecar:
    """A sidecar process spoken to synchronously: one case, then a marker request to fence it."""

    def __init__(self, *flags: str) -> None:
        self.process = subprocess.Popen(
            [*default_command(), *flags], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )

    def exchange(self, line: bytes) -> list[object]:
        """Send one line; return every message that came back for it (before the marker's answer)."""
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(line + b"\n" + MARKER)
        self.process.stdin.flush()
        replies = []
        while True:
            raw = self.process.stdout.readline()
            assert raw, "the sidecar closed stdout"
            reply = msgspec.json.decode(raw)
            if isinstance(reply, dict) and reply.get("id") == "marker":
                return replies
            replies.append(reply)

    def answer(self, line: bytes, request_id: int) -> dict:
        """Send one request; return its answer, which may come after later ones (file checks run off the loop)."""
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(line + b"\n")
        self.process.stdin.flush()
        while True:
            raw = self.process.stdout.readline()
            assert raw, "the sidecar closed stdout"
            reply = msgspec.json.decode(raw)
            assert isinstance(reply, dict) and reply.get("id") in (request_id, None), f"an answer to no request: {reply}"
            if "method" not in reply:
                return reply

    def close(self) -> int:
        assert self.process.stdin
        self.process.stdin.close()
        return self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def sidecar() -> Iterator[Sidecar]:
    process = Sidecar()
    yield process
    assert process.process.poll() is None, "the sidecar died during fuzzing"
    assert process.close() == 0


def _single_error(replies: list[object]) -> dict:
    assert len(replies) == 1, replies
    (reply,) = replies
    assert isinstance(reply, dict) and reply["jsonrpc"] == "2.0" and "error" in reply, reply
    return reply


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
methods = st.sampled_from(["initialize", "loadModel", "diffusion", "cancel", "unloadModel", "paint", ""])


def _expected_for_bytes(line: bytes) -> set[int] | None:
    """An oracle independent of the sidecar's decoder: Python's own json module.

    Bytes that are not UTF-8 read as U+FFFD (and Python's json, like the sidecar, takes lone
    surrogate escapes), so only what is not JSON even then is a parse error.
    """
    try:
        value = json.loads(line.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return {-32700}
    if not isinstance(value, (dict, list)):
        return {-32600}
    return None  # a structurally plausible message: any single well-formed answer will do


@settings(FUZZ, max_examples=2500)
@given(st.binary(min_size=1, max_size=120).filter(lambda b: b"\n" not in b and b"\r" not in b and b.strip()))
def test_random_bytes(sidecar: Sidecar, line: bytes) -> None:
    expected = _expected_for_bytes(line.strip())
    replies = sidecar.exchange(line)
    if expected is not None:
        assert _single_error(replies)["error"]["code"] in expected


@settings(FUZZ, max_examples=2000)
@given(methods, st.dictionaries(st.text(max_size=10), json_values, max_size=4), st.integers(), st.data())
def test_truncated_requests_are_parse_errors(sidecar: Sidecar, method: str, params: dict, request_id: int, data) -> None:
    line = msgspec.json.encode({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    cut = data.draw(st.integers(min_value=1, max_value=len(line) - 1))
    reply = _single_error(sidecar.exchange(line[:cut]))
    assert reply["error"]["code"] == -32700 and reply["id"] is None


# --- wrong types in every field -----------------------------------------------------------------

SAMPLES: list[object] = [None, True, 0, -3, 1.5, "text", "", [], [1], {}, {"a": 1}]
BASES = {
    "diffusion": (DiffusionParams, {"modelId": "not-loaded", "prompt": "p"}),
    "loadModel": (LoadModelParams, {"modelPath": "/nonexistent/model.gguf"}),
    "cancel": (CancelParams, {"requestId": "none"}),
}
FIELDS = [(method, struct, field) for method, (struct, _) in BASES.items() for field in struct.__struct_fields__]
FIELDS += [("loadModel", ModelConfig, field) for field in ModelConfig.__struct_fields__]


def _valid(params_type: type, params: dict) -> bool:
    """Whether params fit the method's declared type (the base params are valid: only `value` can fail)."""
    try:
        msgspec.convert(params, type=params_type, strict=True)
    except msgspec.ValidationError:
        return False
    return True


@settings(FUZZ, max_examples=3000)
@given(st.sampled_from(FIELDS), st.sampled_from(SAMPLES) | json_values, st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_wrong_types_in_every_field(sidecar: Sidecar, target: tuple, value: object, request_id: int) -> None:
    method, struct, field = target
    params_type, base = BASES[method]
    params = dict(base)
    if struct is ModelConfig:
        params["modelConfig"], path = {field: value}, f"modelConfig.{field}"
    else:
        params[field], path = value, field
    if _valid(params_type, params):
        return  # not a wrong value for this field
    line = msgspec.json.encode({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    reply = _single_error(sidecar.exchange(line))
    assert reply["id"] == request_id
    field_named = reply["error"]["data"]["field"]
    # A wrong value inside an object- or list-typed field (modelConfig, ref_images) is named by its own path.
    inside = field_named.startswith((path + ".", path + "["))
    assert reply["error"]["code"] == -32602 and (field_named == path or inside), reply


@settings(FUZZ, max_examples=1500)
@given(st.text(min_size=1, max_size=40), st.text(max_size=200), st.one_of(st.integers(), st.text(max_size=12)))
def test_unicode_survives_the_round_trip(sidecar: Sidecar, model_id: str, prompt: str, request_id: int | str) -> None:
    line = msgspec.json.encode(
        {"jsonrpc": "2.0", "id": request_id, "method": "diffusion", "params": {"modelId": model_id, "prompt": prompt}}
    )
    reply = _single_error(sidecar.exchange(line))
    assert reply["id"] == request_id
    if "\0" in prompt:  # the native library would read only the text before it
        assert reply["error"]["data"]["code"] == "INVALID_PARAMS" and reply["error"]["data"]["field"] == "prompt"
    else:
        assert reply["error"]["data"] == {"code": "MODEL_NOT_LOADED", "modelId": model_id}


@settings(FUZZ, max_examples=500)
@given(
    st.sampled_from(["width", "height", "steps", "seed", "batch_count", "cfg_scale", "timeoutMs"]),
    st.integers(min_value=2**63, max_value=2**300) | st.integers(min_value=-(2**300), max_value=-(2**63)),
)
def test_huge_numbers(sidecar: Sidecar, field: str, number: int) -> None:
    line = b'{"jsonrpc":"2.0","id":1,"method":"diffusion","params":{"modelId":"m","prompt":"p","%s":%d}}' % (
        field.encode(),
        number,
    )
    reply = _single_error(sidecar.exchange(line))
    # Out of the type's range (INVALID_PARAMS), or past a limit the operator sets (LIMIT_EXCEEDED).
    assert reply["error"]["code"] in {-32602, -32007} and reply["error"]["data"]["field"] == field


@settings(FUZZ, max_examples=500)
@given(st.integers(min_value=1, max_value=20000), st.sampled_from([b"[", b'{"a":']), st.booleans())
def test_deep_nesting(sidecar: Sidecar, depth: int, opener: bytes, in_params: bool) -> None:
    closer = b"]" if opener == b"[" else b"}"
    nested = opener * depth + b"1" + closer * depth
    line = (
        b'{"jsonrpc":"2.0","id":7,"method":"diffusion","params":{"modelId":"m","prompt":"p","x":' + nested + b"}}"
        if in_params
        else nested
    )
    replies = sidecar.exchange(line)
    if replies and isinstance(replies[0], list):  # a shallow array is a batch: one answer per member
        replies = replies[0]
    reply = _single_error(replies)
    assert reply["error"]["code"] in {-32700, -32600, -32602}
    if in_params and reply["error"]["code"] == -32602:
        assert reply["id"] == 7 and reply["error"]["data"]["field"] == "x"


# --- paths --------------------------------------------------------------------------------------

# Path pieces an attacker would try: `..`, symlink loops, a symlink out, special files, names the
# file system refuses as too long, a NUL, both Unicode normalisations of a name (only one exists),
# a lone surrogate (a name that is not UTF-8, as Python escapes one), `~` forms.
PATH_PARTS = [
    "", ".", "..", "empty.safetensors", "fifo.safetensors", "folder", "loop", "loop-a", "out", "junk.gguf",
    "caf\u00e9.safetensors", "cafe\u0301.safetensors", "x" * 300, "\0", "\udcff", "~", "unet",
    "diffusion_pytorch_model.safetensors", "y" * 5000,
]  # fmt: skip
PATH_FIELDS = ["modelPath", "vaePath", "taesdPath", "upscalerPath"]
# A clear refusal, or the native library's answer on a file that got through (it cannot be a model).
PATH_ANSWERS = {"INVALID_PARAMS", "PATH_NOT_ALLOWED", "MODEL_LOAD_FAILED"}


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Path(os.path.realpath(tmp_path_factory.mktemp("fuzz-root")))
    outside = Path(os.path.realpath(tmp_path_factory.mktemp("fuzz-outside")))
    (outside / "secret.safetensors").write_bytes(b"x" * 64)
    (root / "empty.safetensors").touch()
    os.mkfifo(root / "fifo.safetensors")
    (root / "folder" / "unet").mkdir(parents=True)
    (root / "folder" / "unet" / "diffusion_pytorch_model.safetensors").symlink_to(outside / "secret.safetensors")
    (root / "loop").symlink_to("loop")
    (root / "loop-a").symlink_to("loop-b")
    (root / "loop-b").symlink_to("loop-a")
    (root / "out").symlink_to(outside)
    (root / "junk.gguf").write_bytes(b"GGUF" + bytes(64))
    (root / "caf\u00e9.safetensors").write_bytes(b"x" * 64)
    return root


@pytest.fixture(scope="module")
def rooted(models_root: Path) -> Iterator[Sidecar]:
    process = Sidecar("--models-root", str(models_root))
    yield process
    assert process.process.poll() is None, "the sidecar died during fuzzing"
    assert process.close() == 0


@settings(FUZZ, max_examples=1000)
@given(
    st.sampled_from(["{root}/", "{root}/out/", "{root}/folder/", "", "/", "~/", "~nosuchuser/", "../"]),
    st.lists(st.sampled_from(PATH_PARTS) | st.text(max_size=8), max_size=6),
    st.sampled_from(["", "/", ".safetensors", ".gguf"]),
    st.sampled_from(PATH_FIELDS),
    st.integers(min_value=0, max_value=2**31),
)
def test_paths_get_a_clear_answer(
    rooted: Sidecar, models_root: Path, prefix: str, parts: list[str], suffix: str, field: str, request_id: int
) -> None:
    path = prefix.format(root=models_root) + "/".join(parts) + suffix
    params = {"modelPath": path} if field == "modelPath" else {"modelPath": str(models_root / "junk.gguf"), "modelConfig": {field: path}}
    # json, not msgspec: it writes a lone surrogate as the `\udcff` escape a JavaScript host would send.
    line = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "loadModel", "params": params}).encode()
    reply = rooted.answer(line, request_id)
    if "error" in reply:
        assert reply["error"]["data"]["code"] in PATH_ANSWERS, reply
