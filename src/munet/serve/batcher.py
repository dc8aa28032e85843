"""Micro-batching: requests arriving within a few milliseconds run as one forward batch.

Requests (a task and its prepared images) queue on the event loop; a collector takes the first,
waits up to ``wait_s`` for more (or until ``max_images`` are queued) and runs them all as one
mixed batch in a single worker thread, so the model never runs twice at once and the event loop
stays free. The system's engine groups the batch by task and computes shared components once;
its fixed-size chunks make every result independent of what else was in the batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

RunBatch = Callable[[Sequence[tuple[str, torch.Tensor]]], list[torch.Tensor]]


@dataclass
class _Item:
    task: str
    images: torch.Tensor
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Collects concurrent requests into batches for ``run`` (one call at a time).

    ``run`` maps ``[(task, float [n, 3, S, S]), ...]`` to one logits tensor per request.
    """

    def __init__(self, run: RunBatch, max_images: int = 64, wait_s: float = 0.005) -> None:
        self.run = run
        self.max_images = max(1, int(max_images))
        self.wait_s = max(0.0, float(wait_s))
        self.batches = 0  # batches run so far (for tests and metrics)
        self.requests = 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Item] | None = None
        self._collector: asyncio.Task | None = None

    def _ensure_started(self) -> asyncio.Queue[_Item]:
        """Bind to the running loop (a test client may run each request on a new loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None:
            self._loop = loop
            self._queue = asyncio.Queue()
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(1, "munet-run")
            self._collector = loop.create_task(self._collect(self._queue, self._executor))
        return self._queue

    async def submit(self, task: str, images: torch.Tensor) -> torch.Tensor:
        """Logits of ``images`` (prepared for ``task``) once their batch has run."""
        queue = self._ensure_started()
        future = asyncio.get_running_loop().create_future()
        queue.put_nowait(_Item(task, images, future))
        return await future

    async def _collect(
        self, queue: asyncio.Queue[_Item], executor: concurrent.futures.Executor
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            count = batch[0].images.shape[0]
            deadline = loop.time() + self.wait_s
            while count < self.max_images:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                batch.append(item)
                count += item.images.shape[0]
            live = [b for b in batch if not b.future.done()]  # skip cancelled requests
            if not live:
                continue
            requests = [(b.task, b.images) for b in live]
            try:
                outs = await loop.run_in_executor(executor, self.run, requests)
            except Exception as err:  # hand the error to each waiting request
                for b in live:
                    if not b.future.done():
                        b.future.set_exception(err)
                continue
            self.batches += 1
            self.requests += len(live)
            for b, out in zip(live, outs, strict=True):
                if not b.future.done():
                    b.future.set_result(out)

    async def aclose(self) -> None:
        """Stop collecting and free the worker thread (a later submit starts afresh)."""
        if self._collector is not None and self._loop is asyncio.get_running_loop():
            self._collector.cancel()
            try:
                await self._collector
            except asyncio.CancelledError:
                pass
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._collector = self._queue = self._loop = self._executor = None
