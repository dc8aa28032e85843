"""The ``munet`` command: thin argument parsing around the library."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from munet.defaults import DEFAULT_SYSTEM
from munet.errors import MunetError
from munet.interrupts import catching_interrupts


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from munet.config import parse_overrides

    out = parse_overrides(args.overrides)
    if args.tasks:
        out["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.root:
        out["root"] = args.root
    if getattr(args, "root_weights", None):
        # absolute, so a resume from another directory finds the same file
        out["root_weights"] = str(Path(args.root_weights).expanduser().resolve())
    if args.seed is not None:
        out["seed"] = args.seed
    if args.method:
        out["method"] = args.method
    out.update(_executor_overrides(args))
    return out


def _executor_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Executor flags of ``evolve`` (absent on other commands)."""
    out: dict[str, Any] = {}
    for flag in ("executor", "ray_address", "workers", "gpus_per_worker"):
        if getattr(args, flag, None) is not None:
            out[flag] = getattr(args, flag)
    if getattr(args, "async_tasks", False):
        out["async_tasks"] = True
    return out


def print_json(doc: Any) -> None:
    """The one document ``--json`` puts on stdout."""
    print(json.dumps(doc, indent=2))


def _print_evolved(args: argparse.Namespace, outcome: Any) -> None:
    from munet.report.tables import format_table

    if args.json:
        print_json(outcome.summary())
        return
    print(format_table(outcome.rows))
    print(
        f"system: {outcome.directory}  ({outcome.trained} candidates trained, "
        f"{outcome.seconds:.0f} s)"
    )


def cmd_evolve(args: argparse.Namespace) -> int:
    from munet.api import evolve

    _print_evolved(args, evolve(args.system, args.config, **_overrides(args)))
    return 0


#: A ``key=value`` override (``hparams.opt_lr=0.02``), as opposed to a task spec, which has a
#: ``prefix:`` or no ``=`` before any option (``imagefolder:DIR?val=0.1``).
OVERRIDE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*=")


def add_task_arguments(args: argparse.Namespace) -> tuple[str, list[str], list[str]]:
    """(system, new task specs, key=value overrides) of ``add-task``: the tasks come from
    ``--tasks`` and positional specs; without ``--system``, the first positional argument is the
    system directory (the original ``add-task DIR TASK...`` form)."""
    words = list(args.overrides)
    overrides = [w for w in words if OVERRIDE.match(w)]
    specs = [w for w in words if not OVERRIDE.match(w)]
    system = args.system
    if system is None:
        system = specs.pop(0) if specs else DEFAULT_SYSTEM
    specs += [t.strip() for t in (args.tasks or "").split(",") if t.strip()]
    if not specs:
        raise MunetError(
            "add-task needs the tasks to add; e.g. munet add-task --system DIR "
            "--tasks builtin:glyph_digits"
        )
    return system, specs, overrides


def cmd_add_task(args: argparse.Namespace) -> int:
    from munet.api import add_tasks

    system, specs, args.overrides = add_task_arguments(args)
    args.tasks = None  # the tasks to add, not the system's task list
    _print_evolved(args, add_tasks(system, specs, args.config, **_overrides(args)))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from munet.api import check

    problems = check(args.system, evaluate=not args.no_eval)
    if args.json:
        print_json(
            {
                "system": str(args.system),
                "ok": not problems,
                "evaluated": not args.no_eval,
                "problems": problems,
            }
        )
    else:
        for line in problems:
            print(f"PROBLEM: {line}")
        print("ok: system intact" if not problems else f"{len(problems)} problem(s) found")
    return 0 if not problems else 1


def cmd_tasks(args: argparse.Namespace) -> int:
    # plain data only: this command must not import torch (it answers in a fraction of a second)
    from munet.data.catalog import DEFAULT_TASKS, list_builtin_tasks

    print("built-in tasks (use as builtin:<name>; * = in the default run):")
    for name, desc in list_builtin_tasks():
        mark = "*" if f"builtin:{name}" in DEFAULT_TASKS else " "
        print(f" {mark} {name:<16} {desc}")
    return 0


def cmd_pretrain_root(args: argparse.Namespace) -> int:
    from munet.model.root import BUILTIN_ROOTS, pretrain_builtin, shipped_info
    from munet.train.device import configure_threads

    if args.list:
        print("builtin roots (use as builtin:<name>):")
        for name, spec in BUILTIN_ROOTS.items():
            a = spec.arch
            shipped = shipped_info(name)
            where = (
                f"ships with munet (held-out {shipped['val_accuracy']:.4f})"
                if shipped
                else f"pretrained on first use and cached (est. ~{spec.expected_minutes:g} min "
                "on 2 CPU cores from its FLOPs; bf16 on CUDA)"
            )
            print(
                f"  {name:<10} {a.depth} blocks, width {a.embed_dim}, patch {a.patch_size}, "
                f"{a.image_size} px; {spec.steps} steps of {spec.batch_size} on "
                f"{spec.train_per_class} glyphs x 175 classes; {where}"
            )
            print(f"  {'':<10} {spec.description}")
        return 0
    configure_threads(0)
    name = args.name.removeprefix("builtin:")
    if name not in BUILTIN_ROOTS:
        raise MunetError(f"unknown builtin root {name!r}; known: {', '.join(BUILTIN_ROOTS)}")
    info = pretrain_builtin(
        name, seed=args.seed, force=args.force, device=args.device, out_dir=args.out
    )
    print(
        f"builtin:{name}: val accuracy {info['val_accuracy']:.4f} on "
        f"{info['corpus_classes']} held-out glyph classes, {info['seconds']} s pretraining"
    )
    if info.get("matches_shipped") is True:
        print(f"builtin:{name}: identical to the root shipped with munet (sha256 {info['sha256']})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from munet.api import report

    outcome = report(args.system, args.out)
    if args.json:
        print_json(outcome.summary())
        return 0
    print(outcome.leaderboard)
    print(f"report: {outcome.html}  (also {outcome.markdown.name} and {len(outcome.images)} PNGs)")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from munet.config import explain
    from munet.runner import effective_config

    cfg = effective_config(args.system, args.config, _overrides(args))
    text = explain(cfg) if args.explain else yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    print(text, end="")
    return 0


def _version() -> str:
    import munet

    return f"munet {munet.__version__}"


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def output_options(p: argparse.ArgumentParser) -> None:
    """-q, -v and --log-level, accepted before the verb and after it (SUPPRESS: a verb's parser
    leaves the value given before the verb in place unless the flag is repeated after it)."""
    g = p.add_argument_group("output (progress and logs go to stderr, results to stdout)")
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="only warnings and errors on stderr: no progress",
    )
    g.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also debug lines on stderr",
    )
    g.add_argument(
        "--log-level",
        type=str.upper,
        choices=LEVELS,
        default=argparse.SUPPRESS,
        help="stderr threshold, overriding -q/-v (default INFO: progress and notes)",
    )


def json_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--json",
        action="store_true",
        help=f"print one JSON document ({what}) on stdout instead of the table",
    )


def log_level(args: argparse.Namespace) -> int:
    """The stderr threshold the output flags ask for."""
    if getattr(args, "log_level", None):
        return int(getattr(logging, args.log_level))
    if getattr(args, "quiet", False):
        return logging.WARNING
    if getattr(args, "verbose", False):
        return logging.DEBUG
    return logging.INFO


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="munet",
        description="Grow one multitask system out of a pretrained ViT (muNet).",
    )
    p.add_argument("--version", action="version", version=_version())
    output_options(p)
    sub = p.add_subparsers(dest="command", required=True)

    def run_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", help="YAML file of config keys")
        sp.add_argument("--tasks", help="comma-separated task specs, e.g. builtin:digits")
        sp.add_argument("--root", help="root spec, e.g. builtin:vit_ti3")
        sp.add_argument(
            "--root-weights",
            metavar="FILE",
            help="weights of a timm: root (safetensors, torch state dict or AugReg .npz); "
            "without it the local Hugging Face cache is used, nothing is downloaded",
        )
        sp.add_argument("--seed", type=int, help="system seed")
        sp.add_argument(
            "--method",
            help="munet (default) | munet-no-autotune | finetune-all | freeze-bottom:N | "
            "adapters:D (baselines train fixed root children at muNet's compute)",
        )
        sp.add_argument(
            "overrides",
            nargs="*",
            metavar="key=value",
            help="config overrides, e.g. task_iterations=3 hparams.opt_lr=0.02",
        )

    def execution_options(sp: argparse.ArgumentParser) -> None:
        x = sp.add_argument_group("execution (where candidates train)")
        x.add_argument(
            "--executor",
            choices=["local", "ray"],
            help="local (default): in this process; ray: the candidates of a generation batch in "
            "parallel Ray workers (pip install 'munet[ray]')",
        )
        x.add_argument(
            "--ray-address", help="Ray cluster to join, e.g. auto; default: start a local one"
        )
        x.add_argument(
            "--workers",
            type=int,
            metavar="N",
            help="Ray workers (default: one per CPU or GPU share)",
        )
        x.add_argument(
            "--gpus-per-worker",
            type=float,
            metavar="F",
            help="GPU share of each Ray worker, e.g. 1 or 0.25 (default 0: CPU workers)",
        )
        x.add_argument(
            "--async-tasks",
            action="store_true",
            help="evolve several tasks at once, one agent per task iteration (needs --executor "
            "ray; not reproducible bit for bit)",
        )

    e = sub.add_parser("evolve", help="create or resume a system and evolve it")
    e.add_argument("--system", default=DEFAULT_SYSTEM, help="system directory")
    run_options(e)
    execution_options(e)
    json_option(e, "per-task test/val accuracy and parameters")
    e.set_defaults(func=cmd_evolve)

    a = sub.add_parser(
        "add-task",
        help="add tasks to an existing system and evolve them",
        description="Add tasks to an existing system and evolve them: munet add-task --system "
        "DIR --tasks SPEC[,SPEC] [--config F] [key=value ...] (or munet add-task DIR SPEC...)",
    )
    a.add_argument("--system", help=f"system directory (default: {DEFAULT_SYSTEM})")
    run_options(a)
    execution_options(a)
    json_option(a, "as evolve's")
    a.set_defaults(func=cmd_add_task)

    k = sub.add_parser("check", help="verify blobs, locks and that retained models are unchanged")
    k.add_argument("--system", default=DEFAULT_SYSTEM, help="system directory")
    k.add_argument("--no-eval", action="store_true", help="skip re-evaluating retained paths")
    json_option(k, "ok and the problems found")
    k.set_defaults(func=cmd_check)

    t = sub.add_parser("tasks", help="list the built-in tasks")
    t.set_defaults(func=cmd_tasks)

    r = sub.add_parser("pretrain-root", help="pretrain a builtin root (cached), or --list them")
    r.add_argument("name", nargs="?", default="vit_ti3")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--force", action="store_true", help="retrain even if cached or shipped")
    r.add_argument("--list", action="store_true", help="list the builtin roots and their recipes")
    r.add_argument("--device", default="auto", help="auto (CUDA with bf16 if visible) | cpu | cuda")
    r.add_argument(
        "--out",
        metavar="DIR",
        help="write NAME.safetensors and NAME.json to DIR instead of the cache (to ship a root: "
        "--out src/munet/model/weights)",
    )
    r.set_defaults(func=cmd_pretrain_root)

    c = sub.add_parser(
        "config", help="print the effective config (--explain: with each key's help)"
    )
    c.add_argument(
        "--system", help="a system directory: start from its stored config, as a resume does"
    )
    c.add_argument(
        "--explain",
        action="store_true",
        help="comment each key with its help, default and whether a resume may change it",
    )
    run_options(c)
    c.set_defaults(func=cmd_config)

    rp = sub.add_parser("report", help="leaderboard, plots and an HTML report of stored systems")
    rp.add_argument(
        "--system", nargs="+", default=[DEFAULT_SYSTEM], help="one or more system directories"
    )
    rp.add_argument(
        "--out", help="output directory (default: DIR/report for one system, else ./munet-report)"
    )
    json_option(rp, "the written files and each system's per-task leaderboard")
    rp.set_defaults(func=cmd_report)

    from munet.serve.cli import add_serve_commands

    add_serve_commands(sub)
    for verb in sub.choices.values():
        output_options(verb)
    return p


def main(argv: list[str] | None = None) -> int:
    from munet.progress import StderrHandler

    args = build_parser().parse_args(argv)
    args.level = log_level(args)
    logger = logging.getLogger("munet")
    handler = StderrHandler()
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(args.level)
    try:
        with catching_interrupts():
            return int(args.func(args) or 0)
    except MunetError as err:
        print(f"munet: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "munet: interrupted; the system on disk is consistent, re-run to resume",
            file=sys.stderr,
        )
        return 130
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)


if __name__ == "__main__":
    sys.exit(main())
