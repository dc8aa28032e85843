"""The ``munet`` command: thin argument parsing around the library."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from munet.errors import MunetError

DEFAULT_SYSTEM = "./munet-system"


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from munet.config import parse_overrides

    out = parse_overrides(args.overrides)
    if args.tasks:
        out["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.root:
        out["root"] = args.root
    if args.seed is not None:
        out["seed"] = args.seed
    return out


def cmd_evolve(args: argparse.Namespace) -> int:
    from munet.runner import evolve_system, format_table

    outcome = evolve_system(args.system, args.config, _overrides(args))
    print(format_table(outcome.rows))
    print(
        f"system: {outcome.directory}  ({outcome.trained} candidates trained, "
        f"{outcome.seconds:.0f} s)"
    )
    return 0


def cmd_add_task(args: argparse.Namespace) -> int:
    from munet.runner import evolve_system, format_table
    from munet.store.system import SystemStore

    store = SystemStore(args.system)
    store.read()
    tasks = list(store.stored_config()["tasks"])
    tasks += [t for t in args.task if t not in tasks]
    outcome = evolve_system(args.system, None, {"tasks": tasks})
    print(format_table(outcome.rows))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from munet.store.check import check_system

    problems = check_system(args.system, evaluate=not args.no_eval, log=print)
    for line in problems:
        print(f"PROBLEM: {line}")
    print("ok: system intact" if not problems else f"{len(problems)} problem(s) found")
    return 0 if not problems else 1


def cmd_tasks(args: argparse.Namespace) -> int:
    from munet.config import DEFAULT_TASKS
    from munet.data.builtin import list_builtin_tasks

    print("built-in tasks (use as builtin:<name>; * = in the default run):")
    for name, desc in list_builtin_tasks():
        mark = "*" if f"builtin:{name}" in DEFAULT_TASKS else " "
        print(f" {mark} {name:<16} {desc}")
    return 0


def cmd_pretrain_root(args: argparse.Namespace) -> int:
    from munet.model.root import BUILTIN_ROOTS, pretrain_builtin
    from munet.runner import configure_threads

    configure_threads(0)
    name = args.name.removeprefix("builtin:")
    if name not in BUILTIN_ROOTS:
        raise MunetError(f"unknown builtin root {name!r}; known: {', '.join(BUILTIN_ROOTS)}")
    info = pretrain_builtin(name, seed=args.seed, force=args.force)
    print(
        f"builtin:{name}: val accuracy {info['val_accuracy']:.4f} on "
        f"{info['corpus_classes']} held-out glyph classes, {info['seconds']} s pretraining"
    )
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from munet.config import build_config

    cfg = build_config(args.config, _overrides(args))
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="munet",
        description="Grow one multitask system out of a pretrained ViT (muNet).",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def run_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", help="YAML file of config keys")
        sp.add_argument("--tasks", help="comma-separated task specs, e.g. builtin:digits")
        sp.add_argument("--root", help="root spec, e.g. builtin:vit_ti3")
        sp.add_argument("--seed", type=int, help="system seed")
        sp.add_argument(
            "overrides",
            nargs="*",
            metavar="key=value",
            help="config overrides, e.g. task_iterations=3 hparams.opt_lr=0.02",
        )

    e = sub.add_parser("evolve", help="create or resume a system and evolve it")
    e.add_argument("--system", default=DEFAULT_SYSTEM, help="system directory")
    run_options(e)
    e.set_defaults(func=cmd_evolve)

    a = sub.add_parser("add-task", help="add tasks to an existing system and evolve them")
    a.add_argument("system", help="system directory")
    a.add_argument("task", nargs="+", help="task specs to add")
    a.set_defaults(func=cmd_add_task)

    k = sub.add_parser("check", help="verify blobs, locks and that retained models are unchanged")
    k.add_argument("--system", default=DEFAULT_SYSTEM, help="system directory")
    k.add_argument("--no-eval", action="store_true", help="skip re-evaluating retained paths")
    k.set_defaults(func=cmd_check)

    t = sub.add_parser("tasks", help="list the built-in tasks")
    t.set_defaults(func=cmd_tasks)

    r = sub.add_parser("pretrain-root", help="pretrain a builtin root (cached)")
    r.add_argument("name", nargs="?", default="vit_ti3")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--force", action="store_true", help="retrain even if cached")
    r.set_defaults(func=cmd_pretrain_root)

    c = sub.add_parser("config", help="print the effective config")
    run_options(c)
    c.set_defaults(func=cmd_config)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
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


if __name__ == "__main__":
    sys.exit(main())
