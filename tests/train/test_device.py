"""Thread configuration: 0 keeps torch's own count, a number sets it."""

from __future__ import annotations

import torch

from munet.train.device import configure_threads


def test_auto_keeps_torchs_thread_count_and_a_number_sets_it():
    before = torch.get_num_threads()
    try:
        assert configure_threads(0) == before == torch.get_num_threads()
        want = 1 if before != 1 else 2
        assert configure_threads(want) == want == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
