"""`--models-root`: every file the native library would open resolves inside it, symlinks followed at
every level, not only the path a request gives; and a file changed after the front checked it is
caught by the worker's own check right before the native open. Through a real sidecar.
"""

from __future__ import annotations

import base64
import os
import shutil
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from sidecar.synth.kinds import write
from sidecar.worker.native_files import DIFFUSERS_PARTS, DIFFUSERS_UNET
from tests.harness import RawSidecar, worker_pids

pytestmark = pytest.mark.anyio

SMALL = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 1, "seed": 1}
LONG = {**SMALL, "width": 256, "height": 256, "steps": 150}  # still running whenever the test acts
SD1_PARTS = (DIFFUSERS_UNET, *DIFFUSERS_PARTS[:2])  # the synthetic SD1 has no second text encoder
COMPANIONS = ("vaePath", "clipLPath", "clipGPath", "t5xxlPath", "llmPath", "taesdPath", "upscalerPath")


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.path.realpath(tmp_path_factory.mktemp("outside")))
    (folder / "secret.safetensors").write_bytes(b"not for the sidecar to read" * 4)
    return folder


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, synthetic_model: str, outside: Path) -> Path:
    """The models folder: the SD1 model (hard links of the cached files where the file system
    allows), a copy whose parts are symlinks to those inside the root, a LoRA, an ESRGAN file."""
    root = Path(os.path.realpath(tmp_path_factory.mktemp("models")))
    for part in SD1_PARTS:
        (root / "sd1" / part).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(Path(synthetic_model) / part, root / "sd1" / part)
        except OSError:
            shutil.copyfile(Path(synthetic_model) / part, root / "sd1" / part)
        (root / "linked" / part).parent.mkdir(parents=True, exist_ok=True)
        (root / "linked" / part).symlink_to(root / "sd1" / part)
    write("lora", root / "lora.safetensors")
    write("esrgan", root / "esrgan.safetensors")
    (root / "inside.gguf").write_bytes(b"GGUF" + bytes(64))
    (root / "escape.safetensors").symlink_to(outside / "secret.safetensors")
    return root


@pytest.fixture(scope="module")
async def sidecar(python_command: list[str], root: Path):
    raw = await RawSidecar.start("--models-root", str(root), command=python_command)
    loaded = await raw.call("loadModel", {"modelPath": str(root / "sd1")})
    raw.model_id = loaded["result"]["modelId"]
    yield raw
    await raw.stop()


def _refused(answer: dict, code: str, field: str, file: str | None = None) -> str:
    """The rule of an error that names `field` (and `file` inside it), with `code`."""
    error = answer["error"]
    assert error["data"]["code"] == code and error["data"]["field"] == field, answer
    assert error["data"].get("file") == file, answer
    return error["data"]["rule"]


def _evil_folder(root: Path, name: str) -> Path:
    """A diffusers folder inside the root, its UNet a plain file (it passes, so the part is reached)."""
    folder = root / name
    (folder / "unet").mkdir(parents=True)
    (folder / DIFFUSERS_UNET).write_bytes(b"{}" * 32)
    return folder


@pytest.mark.parametrize("part", [DIFFUSERS_UNET, *DIFFUSERS_PARTS])
@pytest.mark.parametrize("how", ["file", "folder"])
async def test_a_diffusers_part_that_leads_outside_is_refused_naming_it(
    sidecar: RawSidecar, root: Path, outside: Path, part: str, how: str
) -> None:
    """The issue's attack: a folder inside the root whose inner files (or sub-folders) are symlinks out."""
    folder = _evil_folder(root, f"evil-{how}-{part.split('/')[0]}")
    inner = folder / part
    if how == "file":
        inner.unlink(missing_ok=True)
        inner.parent.mkdir(exist_ok=True)
        inner.symlink_to(outside / "secret.safetensors")
    else:
        shutil.rmtree(inner.parent, ignore_errors=True)
        (outside / inner.name).write_bytes(b"x" * 64)
        inner.parent.symlink_to(outside)
    before = worker_pids(sidecar.process.pid)
    answer = await sidecar.call("loadModel", {"modelPath": str(folder)})
    assert _refused(answer, "PATH_NOT_ALLOWED", "modelPath", part) == f"must resolve inside {root}"
    assert answer["error"]["code"] == -32008 and part in answer["error"]["message"]
    assert worker_pids(sidecar.process.pid) == before  # refused before any process started


async def test_a_diffusers_part_that_is_a_fifo_is_refused_naming_it(sidecar: RawSidecar, root: Path) -> None:
    folder = _evil_folder(root, "fifo-part")
    os.makedirs(folder / "text_encoder_2")
    os.mkfifo(folder / DIFFUSERS_PARTS[2])
    answer = await sidecar.call("loadModel", {"modelPath": str(folder)})
    assert _refused(answer, "INVALID_PARAMS", "modelPath", DIFFUSERS_PARTS[2]) == "must name a regular file, not a FIFO"


async def test_a_folder_whose_parts_are_symlinks_inside_the_root_loads(sidecar: RawSidecar, root: Path) -> None:
    answer = await sidecar.call("loadModel", {"modelPath": str(root / "linked")})
    assert answer["result"]["modelFamily"] == "SD 1.x Tiny UNet"
    await sidecar.call("unloadModel", {"modelId": answer["result"]["modelId"]})


@pytest.mark.parametrize("field", COMPANIONS)
async def test_each_companion_file_is_held_to_the_root(sidecar: RawSidecar, root: Path, field: str) -> None:
    for path in (root / "escape.safetensors", root / ".." / root.name / ".." / "x.safetensors"):
        answer = await sidecar.call("loadModel", {"modelPath": str(root / "inside.gguf"), "modelConfig": {field: str(path)}})
        _refused(answer, "PATH_NOT_ALLOWED", f"modelConfig.{field}")


@pytest.mark.parametrize("field", ["modelPath", *COMPANIONS])
async def test_a_nul_in_a_path_is_invalid_params_naming_the_field(sidecar: RawSidecar, root: Path, field: str) -> None:
    bad = str(root / "inside.gguf") + "\0.safetensors"
    params = {"modelPath": bad} if field == "modelPath" else {"modelPath": str(root / "inside.gguf"), "modelConfig": {field: bad}}
    answer = await sidecar.call("loadModel", params)
    assert "NUL" in _refused(answer, "INVALID_PARAMS", field if field == "modelPath" else f"modelConfig.{field}")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"prompt": "a cat\0 and a dog"}, "prompt"),
        ({"negative_prompt": "\0"}, "negative_prompt"),
        ({"lora": "lora.safetensors\0"}, "lora"),
        ({"lora": [{"path": "lora.safetensors"}, {"path": "\0"}]}, "lora[1].path"),
    ],
)
async def test_a_nul_in_a_prompt_or_lora_is_invalid_params_naming_the_field(
    sidecar: RawSidecar, root: Path, extra: dict, field: str
) -> None:
    """Refused, not stripped: the model would read only up to the NUL, and the PNG would say more."""
    if "lora" in extra:
        extra = {"lora": str(root / extra["lora"]) if isinstance(extra["lora"], str) else [
            {"path": str(root / spec["path"])} for spec in extra["lora"]
        ]}  # fmt: skip
    answer = await sidecar.call("diffusion", {"modelId": sidecar.model_id, **SMALL, **extra})
    assert "NUL" in _refused(answer, "INVALID_PARAMS", field)


async def test_other_control_characters_reach_the_model_and_the_png_unchanged(sidecar: RawSidecar) -> None:
    """Only NUL ends a C string: text after any other character changes the picture, and the PNG
    records the prompt exactly as given."""
    prompt = "a cat\x01\x1b[31m\x7f\u2028 and a dog \U0001f431"
    made = {}
    for text in (prompt, "a cat"):
        answer = await sidecar.call("diffusion", {"modelId": sidecar.model_id, **SMALL, "prompt": text})
        made[text] = Image.open(BytesIO(base64.b64decode(answer["result"]["outputs"][0])))
    assert made[prompt].text["parameters"].startswith(prompt + "\nSteps: 1,")
    assert made[prompt].tobytes() != made["a cat"].tobytes()


async def test_the_hires_upscaler_is_checked_again_on_every_request(
    sidecar: RawSidecar, root: Path, outside: Path
) -> None:
    """The native hires fix opens the ESRGAN file attached at load again: swapped since, it is refused."""
    attached = root / "attached-esrgan.safetensors"
    shutil.copyfile(root / "esrgan.safetensors", attached)
    loaded = await sidecar.call("loadModel", {"modelPath": str(root / "sd1"), "modelConfig": {"upscalerPath": str(attached)}})
    model_id = loaded["result"]["modelId"]
    attached.unlink()
    attached.symlink_to(outside / "secret.safetensors")
    hires = {"scale": 2, "steps": 1, "upscaler": "model"}
    answer = await sidecar.call("diffusion", {"modelId": model_id, **SMALL, "hires": hires})
    _refused(answer, "PATH_NOT_ALLOWED", "hires.upscaler")
    await sidecar.call("unloadModel", {"modelId": model_id})


async def test_a_lora_swapped_while_its_request_waits_is_refused_by_the_worker(
    sidecar: RawSidecar, root: Path, outside: Path
) -> None:
    """The front's check passed; the file was then pointed outside before the worker opened it."""
    lora = root / "queued-lora.safetensors"
    shutil.copyfile(root / "lora.safetensors", lora)
    running = await sidecar.send("diffusion", {"modelId": sidecar.model_id, **LONG})
    await sidecar.wait_for(lambda m: m.get("method") == "diffusion/progress" and m["params"]["requestId"] == running)
    queued = await sidecar.send("diffusion", {"modelId": sidecar.model_id, **SMALL, "lora": str(lora)})
    while not any(r["requestId"] == queued for r in await _requests(sidecar)):
        pass  # listed once its inputs passed the front's checks
    lora.unlink()
    lora.symlink_to(outside / "secret.safetensors")
    await sidecar.call("cancel", {"requestId": running})  # the queued request runs next, in a fresh worker
    _refused(await sidecar.response(queued), "PATH_NOT_ALLOWED", "lora")
    after = await sidecar.call("diffusion", {"modelId": sidecar.model_id, **SMALL})
    assert len(after["result"]["outputs"]) == 1  # the model keeps serving


async def _requests(sidecar: RawSidecar) -> list[dict]:
    (model,) = [m for m in (await sidecar.call("listModels"))["result"]["models"] if m["modelId"] == sidecar.model_id]
    return model["requests"]


async def test_a_model_file_swapped_after_its_load_fails_the_reload(
    sidecar_command: list[str], root: Path, outside: Path, tmp_path: Path
) -> None:
    """A cancel reloads the model in a fresh worker, which checks every file again before opening it.
    On both launchers: the worker's checks and its refusals are code only the worker process runs."""
    taesd = root / f"swapped-taesd-{tmp_path.name}.safetensors"
    write("taesd", taesd)
    sidecar = await RawSidecar.start("--models-root", str(root), command=sidecar_command)
    try:
        config = {"taesdPath": str(taesd)}
        model_id = (await sidecar.call("loadModel", {"modelPath": str(root / "sd1"), "modelConfig": config}))["result"]["modelId"]
        taesd.unlink()
        taesd.symlink_to(outside / "secret.safetensors")
        running = await sidecar.send("diffusion", {"modelId": model_id, **LONG})
        await sidecar.wait_for(lambda m: m.get("method") == "diffusion/progress" and m["params"]["requestId"] == running)
        await sidecar.call("cancel", {"requestId": running})
        error = (await sidecar.call("diffusion", {"modelId": model_id, **SMALL}))["error"]
    finally:
        await sidecar.stop()
    assert error["data"]["code"] == "MODEL_NOT_LOADED" and error["data"]["reason"] == "reloadFailed", error
    assert "`modelConfig.taesdPath`" in error["message"] and "outside the models folder" in error["message"]
