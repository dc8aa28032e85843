"""Run several tasks' paths on one batch, computing the components they share once.

Each task's model is a sequence of forward stages (embedding, [adapter_i] block_i …,
encoder_norm, head); a stage is identified by the ids of the components it runs (and, for the
embedding, the image size). Paths whose first stages are the very same components form a tree:
a stage runs once on the union of the requests of every task below it, and each task continues
from its first stage of its own. Identical input images of tasks that share the embedding are
computed once.

Batch invariance: every stage runs on chunks of exactly ``batch_size`` images (the last chunk is
padded by repeating its last image). CPU kernels pick code paths by matrix shape, so without
this an image's logits would change in the last bits with the number of other images in its
batch; with it they depend only on the image, so mixed-task batches, per-task calls and the HTTP
micro-batcher all give bit-identical logits on CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from munet.model.vit import PathModel, StageKey, stage_keys
from munet.system.path import Path

Stage = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Route:
    """A task's forward stages and the key of each (equal keys = the same computation)."""

    keys: list[StageKey]
    stages: list[Stage]


def route_of(path: Path, model: PathModel) -> Route:
    """The route of a path through ``model`` (built from that path's components)."""
    keys = stage_keys(model, path.components, int(path.hparams["ds_image_size"]))
    return Route(keys, [fn for _, fn in model.stages()])


def shared_prefix(a: Route, b: Route) -> int:
    """Number of leading stages two routes share."""
    n = 0
    for ka, kb in zip(a.keys, b.keys, strict=False):
        if ka != kb:
            break
        n += 1
    return n


def run_chunked(stage: Stage, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``stage`` over ``x`` in chunks of exactly ``batch_size`` rows (last one padded)."""
    n = x.shape[0]
    out = []
    for lo in range(0, n, batch_size):
        chunk = x[lo : lo + batch_size]
        if chunk.shape[0] < batch_size:
            fill = chunk[-1:].expand(batch_size - chunk.shape[0], *chunk.shape[1:])
            chunk = torch.cat([chunk, fill])
        out.append(stage(chunk))
    return (torch.cat(out) if len(out) > 1 else out[0])[:n]


def _partition(tasks: Sequence[str], key: Callable[[str], StageKey]) -> list[list[str]]:
    groups: dict[StageKey, list[str]] = {}
    for t in tasks:
        groups.setdefault(key(t), []).append(t)
    return list(groups.values())


def _dedup(parts: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Stack inputs keeping each distinct image once; per part, the row of each image.

    Rows are bucketed by a random projection and confirmed equal with ``torch.equal``, so a
    fingerprint collision can cost a missed merge, never a wrong one.
    """
    x = torch.cat(list(parts))
    flat = x.reshape(x.shape[0], -1)
    weights = torch.rand(flat.shape[1], generator=torch.Generator().manual_seed(0))
    fingerprints = (flat.float() @ weights).tolist()
    buckets: dict[float, list[int]] = {}  # fingerprint -> rows of ``keep`` with it
    keep: list[int] = []
    rows: list[int] = []
    for i, fp in enumerate(fingerprints):
        for k in buckets.get(fp, ()):
            if torch.equal(flat[keep[k]], flat[i]):
                rows.append(k)
                break
        else:
            buckets.setdefault(fp, []).append(len(keep))
            rows.append(len(keep))
            keep.append(i)
    index = torch.tensor(rows, dtype=torch.long)
    unique = x if len(keep) == x.shape[0] else x[torch.tensor(keep, dtype=torch.long)]
    return unique, list(index.split([p.shape[0] for p in parts]))


class SharedPrefixRunner:
    """Logits of many tasks' requests with shared stages computed once (see module doc)."""

    def __init__(
        self, routes: Mapping[str, Route], batch_size: int = 32, device: str = "cpu"
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be positive")
        self.routes = dict(routes)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.stage_runs = 0  # stage executions (chunks) so far, for benchmarks and tests

    def run(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``inputs[task]``: float [n, 3, S, S] on CPU -> ``{task: logits [n, classes]}`` on CPU."""
        tasks = [t for t, x in inputs.items() if x.shape[0] > 0]
        out = {t: torch.empty(0, 0) for t, x in inputs.items() if x.shape[0] == 0}
        with torch.inference_mode():
            for group in _partition(tasks, lambda t: self.routes[t].keys[0]):
                if len(group) == 1:
                    x = inputs[group[0]]
                    index = [torch.arange(x.shape[0])]
                else:
                    x, index = _dedup([inputs[t] for t in group])
                x = x.to(self.device, non_blocking=True)
                self._descend(0, group, x, dict(zip(group, index, strict=True)), out)
        return {t: out[t] for t in inputs}

    def _descend(
        self,
        depth: int,
        tasks: list[str],
        x: torch.Tensor,
        index: dict[str, torch.Tensor],
        out: dict[str, torch.Tensor],
    ) -> None:
        """Run stage ``depth`` for each group of ``tasks`` sharing it, then go deeper.

        ``x`` holds the inputs of stage ``depth``; ``index[task]`` the row of each request.
        """
        for part in _partition(tasks, lambda t: self.routes[t].keys[depth]):
            joined = torch.cat([index[t] for t in part])
            rows, inverse = joined.unique(return_inverse=True)
            sizes = [index[t].numel() for t in part]
            new_index = dict(zip(part, inverse.split(sizes), strict=True))
            y_in = x if rows.numel() == x.shape[0] else x[rows.to(x.device)]
            stage = self.routes[part[0]].stages[depth]
            y = run_chunked(stage, y_in, self.batch_size)
            self.stage_runs += -(-y_in.shape[0] // self.batch_size)
            if depth + 1 == len(self.routes[part[0]].keys):
                for t in part:
                    out[t] = y[new_index[t].to(y.device)].cpu()
            else:
                self._descend(depth + 1, part, y, new_index, out)
