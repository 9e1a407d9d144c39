"""`make bench`: run every benchmark (or those named), print one table, write the raw figures.

Run: .venv/bin/python -m bench [ITEM ...]   (items: overhead throughput ready progress output
memory threads cancel contention previews img2img portable responsiveness lora upscale cache gpu
downloads formats video controlnet). Figures go to bench/results/latest.json, one top-level key per item; a run of some
items keeps the others' figures from earlier runs, each stamped with when it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import sys
from pathlib import Path

from sidecar.rpc.stdio_guard import claim_stdout

from . import (
    cache,
    cancel,
    contention,
    controlnet,
    downloads,
    formats,
    gpu,
    img2img,
    lora,
    memory,
    output,
    overhead,
    portable,
    previews,
    progress,
    ready,
    responsiveness,
    threads,
    throughput,
    upscale,
    video,
)
from .common import NOISE_NOTE, Row, synthetic_model

ITEMS = {
    module.TITLE: module
    for module in (
        overhead,
        throughput,
        ready,
        progress,
        output,
        memory,
        threads,
        cancel,
        contention,
        previews,
        img2img,
        portable,
        responsiveness,
        lora,
        upscale,
        cache,
        gpu,
        downloads,
        formats,
        video,
        controlnet,
    )
}
LATEST = Path(__file__).resolve().parent / "results" / "latest.json"


def table(figures: dict[str, dict]) -> str:
    lines = [
        "| item | measure | result | target |",
        "|---|---|---|---|",
    ]
    for title, module in ITEMS.items():
        if title in figures:
            for row in module.rows(figures[title]):
                lines.append(f"| {title} | {row.what} | {row.result} | {row.target} |")
    return "\n".join(lines)


async def run(names: list[str]) -> dict[str, dict]:
    model = synthetic_model()
    figures = {}
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        started = datetime.datetime.now(datetime.UTC)
        figures[name] = await ITEMS[name].measure(model)
        figures[name]["measured_at"] = started.isoformat(timespec="seconds")
        for row in ITEMS[name].rows(figures[name]):
            print(f"bench: {name}: {row.what}: {row.result}", file=sys.stderr, flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("items", nargs="*", metavar="ITEM", help=f"any of {', '.join(ITEMS)} (default: all)")
    names = parser.parse_args().items or list(ITEMS)
    if unknown := set(names) - set(ITEMS):
        parser.error(f"no such item: {', '.join(sorted(unknown))}")
    # The native library prints to fd 1 when loaded in this process; the table owns stdout.
    out = claim_stdout()
    figures = asyncio.run(run(names))
    earlier = json.loads(LATEST.read_text()) if LATEST.exists() else {}
    latest = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "note": NOISE_NOTE}}
    latest |= {name: figures.get(name) or earlier[name] for name in ITEMS if name in figures or name in earlier}
    LATEST.parent.mkdir(exist_ok=True)
    LATEST.write_text(json.dumps(latest, indent=2) + "\n")
    out.write(f"{table(latest)}\n\n{NOISE_NOTE}; raw figures: bench/results/latest.json\n".encode())


if __name__ == "__main__":
    main()
