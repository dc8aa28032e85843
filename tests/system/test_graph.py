"""copy_graph / link_paths: copies share tensors and ids, never lock sets, metrics or parents."""

from __future__ import annotations

import pytest

from munet.system.component import Component
from munet.system.graph import PathRow, copy_graph, link_paths
from munet.system.path import Path


def test_copy_graph_relinks_parents_over_new_objects():
    tensors = {"w": [1.0]}
    a = Component(1, "embedding", {"w": (1,)}, {"root"}, "root", tensors)
    b = Component(2, "head", {"w": (1,)}, set(), "new", None)
    root = Path(0, "root", None, {"adapter_layers": []}, [a], {"generation": 0})
    gone = Path(5, "t", root, {}, [a], {})
    kept = Path(7, "t", gone, {"adapter_layers": [1]}, [a, b], {"quality": 0.5})
    comps, paths = copy_graph([a, b], [root, kept], root)
    assert comps[1] is not a and comps[1].params is tensors and comps[1].locks == {"root"}
    comps[1].locks.add("t")
    paths[7].metrics["quality"] = 0.9
    paths[7].hparams["adapter_layers"].append(2)
    assert a.locks == {"root"} and kept.metrics == {"quality": 0.5}
    assert kept.hparams == {"adapter_layers": [1]}
    assert paths[7].parent is paths[0]  # the discarded parent falls back to the root's copy
    assert paths[7].components == [comps[1], comps[2]]


def test_link_paths_without_a_root_needs_every_parent():
    c = {1: Component(1, "embedding", {}, set(), "root", None)}
    rows = [PathRow(0, "root", None, {}, [1], {}), PathRow(3, "t", 0, {}, [1], {})]
    paths = link_paths(rows, c)
    assert paths[3].parent is paths[0] and paths[0].parent is None
    with pytest.raises(KeyError):
        link_paths([PathRow(3, "t", 2, {}, [1], {})], c)
