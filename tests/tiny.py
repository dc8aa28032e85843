"""The tiny systems the tests share: the evolve configuration of the end-to-end tests, a
root-only system without tensors for the pure core, and children of the vit_micro root.

Two environment variables vary it, to prove that no test depends on one set of floats:
``MUNET_TEST_SEED`` (the system seed, default 0) and ``MUNET_TEST_THREADS`` (torch CPU threads,
default 1). ``pytest --random-order`` shuffles the tests.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from munet.system.arch import RootArch
from munet.system.evolve import CandidateResult

SEED = int(os.environ.get("MUNET_TEST_SEED", "0"))
THREADS = int(os.environ.get("MUNET_TEST_THREADS", "1"))

TINY = [
    "--root",
    "builtin:vit_micro",
    "task_iterations=2",
    "candidates_per_iteration=3",
    "generation_batch_size=3",
    "batch_size=32",
    "validations_per_candidate=2",
    "validation_interval_cap=15",
    f"threads={THREADS}",
    f"seed={SEED}",
]


def tiny_args(system: Path, tasks: str, *extra: str) -> list[str]:
    return ["evolve", "--system", str(system), "--tasks", tasks, *TINY, *extra]


#: ViT-Ti/16 with 3 blocks at 32 px, the spec's character root: the pure tests' architecture.
TI3 = RootArch(
    embed_dim=192, depth=3, num_heads=3, mlp_hidden_dim=768, patch_size=16, image_size=32
)


def pure_state(arch: RootArch = TI3, **settings: Any) -> tuple[Any, Any]:
    """A system holding only a root of ``arch`` without tensors (NullOps) and its Settings
    (search space for ``arch``, BASE_DEFAULTS; ``settings`` sets other fields)."""
    from munet.system.hparams import BASE_DEFAULTS, search_space_for
    from munet.system.state import NullOps, Settings, make_root_state

    s = Settings(
        space=search_space_for(arch.depth, arch.patch_size),
        defaults=dict(BASE_DEFAULTS),
        **settings,
    )
    params = {n: None for n in arch.component_names({"num_layers": arch.depth})}
    return make_root_state(arch, params, s.defaults, NullOps()), s


class FakeTrainer:
    """A Trainer that trains nothing: a child's quality is ``quality(child)`` (default: a hash
    of its path id), after ``delay(task)`` when given. Keeps the children it got; thread-safe."""

    def __init__(
        self,
        quality: Callable[[Any], float] | None = None,
        delay: Callable[[str], None] | None = None,
    ) -> None:
        self.quality = quality or (lambda c: (c.id * 7919 % 97) / 100)
        self.delay = delay
        self.trained: list[Any] = []
        self.lock = threading.Lock()

    def train_generation(self, task, children, ds, seed):
        if self.delay:
            self.delay(task)
        out = []
        for c in children:
            with self.lock:
                self.trained.append(c)
            q = self.quality(c)
            out.append(
                CandidateResult(q, {x.id: None for x in c.trainable_components()}, [q], 0.0, 1)
            )
        return out

    def test(self, path):
        return {"test_quality": path.metrics["quality"]}


class NullRecorder:
    """A Recorder that keeps nothing: no batch is ever replayed."""

    def replay(self, *a):
        return None

    def load_result(self, *a):
        raise AssertionError("nothing was recorded, so nothing is replayed")

    def generation_done(self, *a):
        pass

    def iteration_done(self, *a):
        pass


def stored(system: Path, tensors: bool = False) -> tuple[Any, Any]:
    """(store, state) of a system directory, read as munet reads it (tensors only if asked)."""
    from munet.store.system import SystemStore

    store = SystemStore(system)
    store.read()
    return store, store.load_state(load_tensors=tensors)


def micro_state(**settings: Any) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(root, state, settings, ds): the builtin:vit_micro root, a system holding only it (torch
    tensors), its Settings (``settings`` sets fields) and the default data hyperparameters."""
    from munet.model.ops import TorchOps
    from munet.model.root import load_root
    from munet.system.hparams import BASE_DEFAULTS, search_space_for
    from munet.system.state import Settings, make_root_state

    root = load_root("builtin:vit_micro")
    s = Settings(
        space=search_space_for(root.arch.depth, root.arch.patch_size),
        defaults=dict(BASE_DEFAULTS),
        **settings,
    )
    state = make_root_state(root.arch, root.params, s.defaults, TorchOps())
    ds = {k: v for k, v in s.defaults.items() if k.startswith("ds_")}
    return root, state, s, ds


def root_children(
    state: Any,
    settings: Any,
    ds: dict[str, Any],
    n: int,
    mutate: bool | Callable[[int], bool] = False,
    rng: Callable[[int], Any] | None = None,
) -> list[Any]:
    """``n`` digits children (10 classes) of the root of a torch ``state``: child ``k`` is
    assembled with ``rng(k)`` (default ``np.random.default_rng(k)``), mutated if ``mutate``
    (or ``mutate(k)``)."""
    import numpy as np

    from munet.model.ops import TorchOps
    from munet.system.assemble import assemble_child

    rng = rng or np.random.default_rng
    return [
        assemble_child(
            state,
            state.root,
            "digits",
            10,
            ds,
            mutate(k) if callable(mutate) else mutate,
            rng(k),
            TorchOps(),
            settings,
        )[0]
        for k in range(n)
    ]


def stage_names(path: Any) -> list[str]:
    """A path's forward stages in order, as the trainer counts FLOPs over them (the tests'
    own list, independent of ``PathModel.stages``)."""
    names = [c.name for c in path.components]
    blocks = [n for n in names if n.startswith(("residual_adapter_", "encoderblock_"))]
    return ["embedding", *blocks, "encoder_norm", "head"]


def bench_module(script: str) -> Any:
    """``bench/<script>.py`` imported as module ``bench_<script>`` (bench/ is not a package;
    registered in ``sys.modules`` so that its dataclasses resolve their module)."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "bench" / f"{script}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{script}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod
