"""The `diffusion-sidecar` command."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from diffusion_sidecar_protocol.types import Limits

from . import __version__
from .rpc.stdio_guard import claim_stdout
from .synth.kinds import DEFAULT_KIND, KINDS

LOG_LEVELS = ("debug", "info", "warn", "error")
_LIMIT_FLAGS = [
    ("--max-pixels", "maxPixels", "largest width*height of one image"),
    ("--max-steps", "maxSteps", "most sampling steps per image"),
    ("--max-batch-count", "maxBatchCount", "most images per diffusion request"),
    ("--max-queue", "maxQueue", "most requests waiting on one model; past it QUEUE_FULL"),
    ("--max-models", "maxModels", "most models loaded at once"),
    ("--max-running", "maxRunning", "most generations running at once across models, cores permitting"),
    ("--max-line-bytes", "maxLineBytes", "longest input line accepted"),
    ("--max-image-bytes", "maxImageBytes", "largest input image file (init_image, mask_image), in bytes"),
    ("--max-image-pixels", "maxImagePixels", "largest input image in pixels, checked from its header before decoding"),
    ("--max-prompt-bytes", "maxPromptBytes", "longest prompt and negative_prompt, in UTF-8 bytes"),
    ("--max-loras", "maxLoras", "most LoRAs in one diffusion request"),
    ("--max-download-bytes", "maxDownloadBytes", "largest file a source (https://, hf://) may download"),
    ("--max-video-frames", "maxVideoFrames", "most video_frames in one video request"),
    ("--max-video-pixels", "maxVideoPixels", "largest width*height*video_frames of one clip"),
]


class _PrintVersion(argparse.Action):
    """Names the native library too, so this loads it: only ever in this short-lived process."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: object) -> None:
        out = claim_stdout()  # before the native library loads: it may print to fd 1
        from .worker.native import probe

        facts = probe()
        out.write(
            f"diffusion-sidecar {__version__}\n"
            f"stable-diffusion-cpp-python {facts.binding_version}\n"
            f"stable-diffusion.cpp {facts.native_version} (commit {facts.native_commit})\n".encode()
        )
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffusion-sidecar",
        description=(
            "Serve local image generation (stable-diffusion.cpp) as newline-delimited JSON-RPC 2.0 "
            "on stdin/stdout. With no command, serve until `shutdown` or end of input. stdout "
            "carries protocol messages only; logs go to stderr."
        ),
    )
    parser.add_argument(
        "--version", action=_PrintVersion, nargs=0, help="print the versions of the sidecar, binding and native library"
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="lowest level of native library log lines written to stderr (default: info)",
    )
    parser.add_argument(
        "--no-spare-worker",
        dest="spare_worker",
        action="store_false",
        default=os.environ.get("DIFFUSION_SIDECAR_SPARE_WORKER", "1") != "0",
        help="do not keep an idle worker started ahead for the next load (it saves the next loadModel "
        "a worker start, about 100-200 ms, and costs one idle process: docs/performance.md); "
        "DIFFUSION_SIDECAR_SPARE_WORKER=0 in the environment does the same",
    )
    defaults = Limits()
    limits = parser.add_argument_group("limits (reported by `initialize`; checked before any work starts)")
    for flag, field, help_text in _LIMIT_FLAGS:
        limits.add_argument(
            flag, dest=field, type=int, default=getattr(defaults, field), metavar="N",
            help=f"{help_text} (default: {getattr(defaults, field)})",
        )  # fmt: skip
    limits.add_argument(
        "--models-root",
        metavar="DIR",
        help="only load model files that resolve inside DIR (after following `..` and symlinks)",
    )
    sources = parser.add_argument_group("sources: files given as https:// or hf:// URLs (docs/models-from-urls.md)")
    sources.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where downloads are kept, in DIR/models (default: $DIFFUSION_SIDECAR_CACHE, else "
        "$XDG_CACHE_HOME/diffusion-sidecar, else ~/.cache/diffusion-sidecar)",
    )
    sources.add_argument(
        "--offline", action="store_true", help="download nothing: sources come from the caches or fail"
    )
    sources.add_argument("--allow-http", action="store_true", help="accept plain http:// sources and redirects")
    sources.add_argument(
        "--download-stall-seconds",
        type=float,
        default=defaults.downloadStallSeconds,
        metavar="S",
        help="a download that receives nothing for S seconds is resumed, 3 times at most in a row "
        f"(default: {defaults.downloadStallSeconds:g})",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    synth = commands.add_parser(
        "synth-model",
        help="write a synthetic-weights test file (real architecture, random weights) and print its path",
        description=(
            "Write a model file of a real stable-diffusion.cpp architecture with deterministic random "
            "weights. The native library loads and runs it, but its pictures are noise. Kinds: "
            + "; ".join(f"{name}: {kind.description}" for name, kind in KINDS.items())
            + "."
        ),
    )
    synth.add_argument("--kind", choices=list(KINDS), default=DEFAULT_KIND, help=f"default: {DEFAULT_KIND}")
    synth.add_argument("directory", metavar="PATH", help="where to write it (folders are created if needed)")
    selftest = commands.add_parser(
        "selftest",
        help="upscale a small picture on the native backend and print which CPU code ran it (JSON)",
        description=(
            "Run real native work (an ESRGAN upscale of a 16x16 picture; a synthetic 4x model with random "
            "weights unless --upscaler names one) and print one JSON object: the CPU variant and features "
            "the library chose for this machine, the sizes and the time taken."
        ),
    )
    selftest.add_argument("--upscaler", metavar="PATH", help="an ESRGAN model file to use instead")
    selftest.add_argument("--threads", type=int, default=1, metavar="N", help="native threads (default: 1)")
    # The front process starts model workers through this command; it is not for people.
    commands.add_parser("probe")  # the front's backend probe (sidecar/early_probe.py); not for people
    worker = commands.add_parser("worker")
    worker.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    return parser


def _source_settings(args: argparse.Namespace) -> dict[str, object]:
    from .sources.settings import default_cache_dir

    cache_dir = os.path.abspath(os.path.expanduser(args.cache_dir)) if args.cache_dir else default_cache_dir(os.environ)
    return {
        "cacheDir": str(cache_dir),
        "offline": args.offline,
        "allowHttp": args.allow_http,
        "downloadStallSeconds": args.download_stall_seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.maxRunning < 1:
        parser.error("--max-running must be at least 1")
    if not args.download_stall_seconds > 0:
        parser.error("--download-stall-seconds must be more than 0")
    if args.command == "synth-model":
        from .synth.kinds import write

        # Not the serving path: this command's stdout is the written path, for scripts to read.
        print(write(args.kind, args.directory))
        return
    if args.command == "selftest":
        from .backend.selftest import run as selftest

        selftest(args.upscaler, args.threads)
        return
    if args.command == "probe":
        from .worker.main import probe

        probe()
        return
    if args.command == "worker":
        from .worker.main import run

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the front's to handle
        run(args.log_level)
        return

    import anyio

    from .server import serve

    limits = Limits(
        **{field: getattr(args, field) for _, field, _ in _LIMIT_FLAGS},
        modelsRoot=args.models_root,
        **_source_settings(args),
    )
    status = anyio.run(serve, args.log_level, limits, args.spare_worker)
    # Exit now: no thread (a pending stdin read, a blocked write to a host that stopped reading)
    # may hold the process open after the last answer.
    sys.stderr.flush()
    os._exit(status)
