"""``munet predict``, ``munet export`` and ``munet serve``: parsing here, work in the library.

Only argparse at import time, so ``munet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from munet.defaults import DEFAULT_SYSTEM
from munet.errors import MunetError

log = logging.getLogger(__name__)

FILES_PER_CALL = 256  # bounds memory when predicting a large folder


def _open(args: argparse.Namespace) -> Any:
    from munet.api import load
    from munet.train.device import configure_threads

    configure_threads(args.threads)
    return load(args.system, device=args.device, batch_size=args.batch_size)


def cmd_predict(args: argparse.Namespace) -> int:
    from munet.serve.images import image_files

    if args.top_k < 1:
        raise MunetError(f"--top-k {args.top_k} is invalid; use a positive integer")
    system = _open(args)
    system.task_info(args.task)  # unknown task: fail before reading images
    files = image_files(args.images)
    rows: list[dict[str, Any]] = []
    for lo in range(0, len(files), FILES_PER_CALL):
        chunk = files[lo : lo + FILES_PER_CALL]
        preds = system.predict(args.task, [str(f) for f in chunk], top_k=args.top_k)
        for f, pred in zip(chunk, preds, strict=True):
            row = {"path": str(f), **pred}
            rows.append(row)
            if not args.json:
                print(_line(row, args.top_k))
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


def _line(row: dict[str, Any], top_k: int) -> str:
    line = f"{row['path']}\t{row['class_name']}\t{row['probability']:.4f}"
    if top_k > 1:
        rest = ", ".join(f"{t['class_name']} {t['probability']:.4f}" for t in row["top_k"][1:])
        line += f"\t({rest})"
    return line


def cmd_export(args: argparse.Namespace) -> int:
    from munet.api import export

    system = _open(args)
    done = export(system, args.task, args.out, args.format)
    for f in done["files"]:
        print(f"wrote {f}")
    if done["max_abs_diff"] is not None:
        print(f"checked: max |logit difference| to the system's model {done['max_abs_diff']:.3g}")
    if "usage" in done:  # a --format timm folder
        kind = "timm Hugging Face folder" if done["format"] == "timm" else "munet-format folder"
        print(f"{kind}; load with: {done['usage']}")
        return 0
    cfg = json.loads(open(done["files"][-1]).read())
    if "usage" in cfg:
        print(f"plain timm state dict; load with: {cfg['usage']}")
    if "note" in cfg:
        print(cfg["note"])
    return 0


def _serve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """ServeSettings arguments from the serve flags; a bad flag is one ConfigError naming it."""
    from munet.errors import ConfigError

    def bad(flag: str, value: Any, want: str) -> ConfigError:
        return ConfigError(f"{flag} {value} is invalid; use {want}")

    if not 1 <= args.port <= 65535:
        raise bad("--port", args.port, "a TCP port 1..65535")
    if not 0 <= args.batch_wait_ms <= 60_000:  # also refuses nan
        raise bad("--batch-wait-ms", args.batch_wait_ms, "0..60000 milliseconds")
    for flag, value in (
        ("--max-batch-images", args.max_batch_images),
        ("--max-images", args.max_images),
        ("--max-decodes", args.max_decodes),
    ):
        if value < 1:
            raise bad(flag, value, "a positive integer")
    if not 0 < args.max_upload_mb <= 4096:
        raise bad("--max-upload-mb", args.max_upload_mb, "a size in MB, 0 < MB <= 4096")
    if not 0 < args.max_request_mpixels <= 10_000:
        raise bad("--max-request-mpixels", args.max_request_mpixels, "megapixels, 0 < M <= 10000")
    return dict(
        batch_wait_ms=args.batch_wait_ms,
        max_batch_images=args.max_batch_images,
        max_images=args.max_images,
        max_upload_bytes=max(1, int(args.max_upload_mb * 1024 * 1024)),
        max_request_pixels=max(1, int(args.max_request_mpixels * 1_000_000)),
        max_decodes=args.max_decodes,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    checked = _serve_settings(args)  # bad flags fail before the system loads
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise MunetError(
            f"munet serve needs the serve extra ({err.name} is missing); pip install 'munet[serve]'"
        ) from None
    from munet.serve.app import ServeSettings, serve

    system = _open(args)
    settings = ServeSettings(**checked)
    log.info(
        f"serving {len(system.tasks)} tasks ({', '.join(system.tasks)}) from {args.system} "
        f"on http://{args.host}:{args.port}"
    )
    level = logging.getLevelName(getattr(args, "level", logging.INFO)).lower()
    serve(system, args.host, args.port, settings, log_level=level)
    return 0


def _system_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--system", default=DEFAULT_SYSTEM, help="system directory")
    sp.add_argument(
        "--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N"
    )
    sp.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="images per forward call; inputs are padded to a multiple of it so results do not "
        "depend on batching (default: 32)",
    )
    sp.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = auto)")


def add_serve_commands(sub: Any) -> None:
    """Add the predict, export and serve subcommands to the ``munet`` parser."""
    p = sub.add_parser("predict", help="classify images with one task's model")
    _system_options(p)
    p.add_argument("--task", required=True, help="task name (see GET /v1/tasks or tasks.csv)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of them")
    p.add_argument("--top-k", type=int, default=1, help="also list the next K-1 classes")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of lines")
    p.set_defaults(func=cmd_predict)

    e = sub.add_parser(
        "export",
        help="export one task's model (a timm Hugging Face folder, safetensors + JSON, or ONNX)",
    )
    _system_options(e)
    e.add_argument("--task", required=True, help="task name")
    e.add_argument(
        "--out",
        required=True,
        help="output folder for --format timm; else a file (or an existing folder)",
    )
    e.add_argument(
        "--format",
        choices=("timm", "safetensors", "onnx"),
        default="safetensors",
        help="timm: a folder timm.create_model('local-dir:OUT', pretrained=True) loads (munet's "
        "format for a path with adapters), with a model card; safetensors (default): one file "
        "+ JSON; onnx",
    )
    e.set_defaults(func=cmd_export)

    s = sub.add_parser("serve", help="serve every task over HTTP (needs the serve extra)")
    _system_options(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--batch-wait-ms", type=float, default=5.0, help="micro-batch collection window")
    s.add_argument("--max-batch-images", type=int, default=128, help="images per micro-batch")
    s.add_argument("--max-images", type=int, default=32, help="images per request")
    s.add_argument("--max-upload-mb", type=float, default=8.0, help="request body limit")
    s.add_argument(
        "--max-request-mpixels",
        type=float,
        default=67.108864,
        help="pixels of all images of one request, read from their headers (default: 4 x "
        "4096 x 4096)",
    )
    s.add_argument(
        "--max-decodes", type=int, default=2, help="images decoded at once (bounds peak memory)"
    )
    s.set_defaults(func=cmd_serve)
