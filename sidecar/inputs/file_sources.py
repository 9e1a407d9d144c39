"""The files a request names, by field: local paths checked where they are, sources downloaded.

Every rule is checked before any work: each source's form (`sources.refs`) and the suffix of the
name it is saved as, then each local path (`paths.checked_file`, `--models-root` included). Only
then do the sources download, all at once, reported as one request's `download/progress`. A
downloaded file lands in the cache, never under `--models-root`, which confines paths only; it is
then checked as any file is (regular, readable, not empty).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping

from diffusion_sidecar_protocol.types import FileRef

from ..rpc.errors import invalid_params
from ..runtime.context import RequestContext
from .paths import MODEL_FILE_SUFFIXES, checked_file

# What each loadModel field's file is, as `download/progress` names it.
ROLES = {
    "modelPath": "model", "vaePath": "vae", "clipLPath": "clipL", "clipGPath": "clipG", "t5xxlPath": "t5xxl",
    "llmPath": "llm", "taesdPath": "taesd", "upscalerPath": "upscaler", "controlNetPath": "controlnet",
}  # fmt: skip


async def checked_files(
    ctx: RequestContext,
    wanted: Mapping[str, tuple[str, FileRef]],
    root: str | None,
    *,
    folders: Collection[str] = (),
) -> dict[str, str]:
    """`wanted`: field -> (role, what the field holds). The absolute local path of each, by field.

    A field in `folders` may name a diffusers folder (local paths only: a source is one file).
    """
    # Imported here: the sidecar's start need not pay for sources (see ServerState.downloads).
    from ..sources import refs
    from ..sources.progress import RequestProgress

    sources = {}
    for field, (role, value) in wanted.items():
        if refs.is_source(value):
            settings = ctx.server.downloads.settings
            source = sources[field] = refs.parse(field, role, value, settings)
            if os.path.splitext(source.name)[1].lower() not in MODEL_FILE_SUFFIXES:
                name_field = f"{field}.name" if not isinstance(value, str) else field
                raise invalid_params(
                    name_field, f"must be saved as one of: {', '.join(MODEL_FILE_SUFFIXES)} (give `name`)"
                )
    local = {
        field: await checked_file(field, value, root, allow_folder=field in folders)  # type: ignore[arg-type]
        for field, (_, value) in wanted.items()
        if field not in sources
    }
    if sources:
        progress = RequestProgress(
            ctx.request_id, sources, lambda p: ctx.notify("download/progress", p), ctx.elapsed_ms
        )
        downloaded = await ctx.server.downloads.fetch_all(sources, progress.listener)
        for field, path in downloaded.items():
            local[field] = await checked_file(field, str(path), None)
    return {field: local[field] for field in wanted}
