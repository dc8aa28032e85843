"""Serving benchmark: (a) mixed-task batches vs each task's model run separately, (b) HTTP load.

    .venv/bin/python bench/serve_bench.py               # both parts; writes bench/RESULTS-serve.md
    .venv/bin/python bench/serve_bench.py --system DIR  # part (a) on an evolved system too

(a) Requests are (task, image) pairs. "separate" runs each task's full model on that task's
requests; "mixed" runs them as one batch, computing the stages that the tasks' paths share
once (and an image asked of several tasks once). Both use the same engine and chunk size, so
the ratio is what sharing buys. Systems are synthetic (random weights, the builtin vit_ti3 root's
dimensions): the speed of inference depends on the structure, not on the weights.

(b) ``munet serve`` runs in a subprocess on 127.0.0.1; 8 client threads (persistent
connections) send N single-image multipart requests, alternating tasks.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from munet.serve.synthetic import VIT_TI3, make_synthetic_system
from munet.serve.system import MultitaskSystem, load
from munet.train.device import configure_threads

HERE = Path(__file__).resolve().parent


def _paired(a, b, repeats: int) -> dict:
    """Time ``a`` and ``b`` alternately (so background load hits both alike): medians of
    process CPU time and wall time, and the median of the per-pair CPU-time ratios a / b."""
    a(), b()  # warm-up
    cpu: dict[str, list[float]] = {"a": [], "b": []}
    wall: dict[str, list[float]] = {"a": [], "b": []}
    for _ in range(repeats):
        for key, fn in (("a", a), ("b", b)):
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu[key].append(time.process_time() - c0)
            wall[key].append(time.perf_counter() - w0)
    med = statistics.median
    return {
        "a_cpu": med(cpu["a"]),
        "b_cpu": med(cpu["b"]),
        "ratio": med(x / y for x, y in zip(cpu["a"], cpu["b"], strict=True)),
        "wall_ratio": med(x / y for x, y in zip(wall["a"], wall["b"], strict=True)),
    }


def mixed_vs_separate(
    system: MultitaskSystem, images: torch.Tensor, shared_inputs: bool, repeats: int
) -> dict:
    """Time one mixed batch vs per-task calls on the same requests (the engine only: both
    get the requests already prepared and stacked per task)."""
    tasks = system.tasks
    if shared_inputs:  # every image asked of every task
        requests = [(t, img) for img in images for t in tasks]
    else:  # each image asked of one task
        requests = [(tasks[i % len(tasks)], img) for i, img in enumerate(images)]
    prepared = [(t, system.prepare(t, img)) for t, img in requests]
    by_task: dict[str, list[torch.Tensor]] = {}
    for t, x in prepared:
        by_task.setdefault(t, []).append(x)
    stacked = {t: torch.cat(xs) for t, xs in by_task.items()}

    def separate() -> None:
        for t, x in stacked.items():
            system.runner.run({t: x})

    def mixed() -> None:
        system.runner.run(stacked)

    timing = _paired(separate, mixed, repeats)
    runs = system.runner.stage_runs
    separate()
    runs_sep = system.runner.stage_runs - runs
    mixed()
    runs_mix = system.runner.stage_runs - runs - runs_sep
    pairs = [(a, b) for i, a in enumerate(tasks) for b in tasks[i + 1 :]]
    shared = [system.shared_stages(a, b) for a, b in pairs]
    return {
        "requests": len(requests),
        "separate_s": timing["a_cpu"],
        "mixed_s": timing["b_cpu"],
        "ratio": timing["ratio"],
        "wall_ratio": timing["wall_ratio"],
        "shared": f"{min(shared)}-{max(shared)}" if shared else "-",
        "stages": len(system.runner.routes[tasks[0]].keys),
        "stage_runs": f"{runs_sep} / {runs_mix}",
    }


#: (tasks, top blocks private to each task, image size) of the synthetic systems of part (a)
SYSTEMS = [(4, 0, 32), (4, 1, 32), (8, 1, 32), (8, 1, 64)]


def _describe(tasks: int, private: int, size: int) -> str:
    if private == 0:
        return f"{tasks} tasks, {size} px, only heads private"
    return f"{tasks} tasks, {size} px, top {private} block + norm + head private"


def part_a(args: argparse.Namespace, workdir: Path) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for n_tasks, private, size in SYSTEMS:
        d = make_synthetic_system(
            workdir / f"a{n_tasks}-{private}-{size}",
            VIT_TI3,
            {f"task{i}": 10 for i in range(n_tasks)},
            private_layers=private,
            image_size=size,
        )
        system = load(d, batch_size=args.batch_size)
        x = torch.randint(0, 256, (args.images, 3, size, size), dtype=torch.uint8, generator=g)
        for shared_inputs in (True, False):
            r = mixed_vs_separate(system, x, shared_inputs, args.repeats)
            r["system"] = f"synthetic vit_ti3: {_describe(n_tasks, private, size)}"
            r["inputs"] = "each image x every task" if shared_inputs else "distinct images"
            rows.append(r)
    if args.system:
        system = load(args.system, batch_size=args.batch_size)
        info = system.task_info(system.tasks[0])
        x = torch.randint(0, 256, (args.images, info.channels, 32, 32), dtype=torch.uint8)
        r = mixed_vs_separate(system, x, True, args.repeats)
        r["system"] = f"{args.system} ({len(system.tasks)} tasks)"
        r["inputs"] = "each image x every task"
        rows.append(r)
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _png(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def part_b(args: argparse.Namespace, workdir: Path) -> dict:
    import httpx

    d = make_synthetic_system(
        workdir / "http", VIT_TI3, {f"task{i}": 10 for i in range(args.tasks)}, private_layers=1
    )
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "munet.cli",
        "serve",
        "--system",
        str(d),
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--batch-wait-ms",
        str(args.batch_wait_ms),
    ]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("munet serve did not come up")
            time.sleep(0.2)
        images = [_png(i) for i in range(16)]
        tasks = [f"task{i}" for i in range(args.tasks)]
        local = threading.local()
        clients: list[httpx.Client] = []

        def call(k: int) -> tuple[float, int]:
            if not hasattr(local, "http"):
                local.http = httpx.Client(base_url=url, timeout=60)
                clients.append(local.http)
            t0 = time.perf_counter()
            r = local.http.post(
                f"/v1/tasks/{tasks[k % len(tasks)]}/predict",
                files={"file": ("x.png", images[k % len(images)], "image/png")},
            )
            return time.perf_counter() - t0, r.status_code

        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(call, range(4 * args.threads)))  # warm-up, connections open
            t0 = time.perf_counter()
            results = list(pool.map(call, range(args.requests)))
            wall = time.perf_counter() - t0
        for c in clients:
            c.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat = np.array([r[0] for r in results]) * 1000
    return {
        "requests": args.requests,
        "threads": args.threads,
        "errors": sum(1 for r in results if r[1] != 200),
        "throughput": args.requests / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "batch_wait_ms": args.batch_wait_ms,
    }


def table_a(rows: list[dict]) -> str:
    out = [
        "| system | inputs | requests | shared stages (of "
        f"{rows[0]['stages']}) | stage runs separate / mixed | separate (CPU ms) | mixed (CPU ms) "
        "| speed-up (CPU) | speed-up (wall) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['system']} | {r['inputs']} | {r['requests']} | {r['shared']} | "
            f"{r['stage_runs']} | {r['separate_s'] * 1000:.1f} | {r['mixed_s'] * 1000:.1f} | "
            f"{r['ratio']:.2f}x | {r['wall_ratio']:.2f}x |"
        )
    return "\n".join(out)


def table_b(r: dict) -> str:
    return "\n".join(
        [
            "| requests | client threads | errors | throughput (req/s) | p50 (ms) | p95 (ms) "
            "| p99 (ms) | batch wait (ms) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {r['requests']} | {r['threads']} | {r['errors']} | {r['throughput']:.1f} | "
            f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['batch_wait_ms']} |",
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--system", help="also time part (a) on this evolved system")
    p.add_argument("--tasks", type=int, default=4, help="tasks of the part-(b) system")
    p.add_argument("--images", type=int, default=128, help="images per part-(a) run")
    p.add_argument("--batch-size", type=int, default=32, help="engine chunk size")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    p.add_argument("--requests", type=int, default=400, help="HTTP requests in part (b)")
    p.add_argument("--threads", type=int, default=8, help="HTTP client threads")
    p.add_argument("--batch-wait-ms", type=float, default=5.0)
    p.add_argument("--skip-http", action="store_true")
    p.add_argument("--out", default=str(HERE / "RESULTS-serve.md"), help="results file ('' = none)")
    args = p.parse_args()
    threads = configure_threads(0)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        rows = part_a(args, Path(tmp))
        print("## (a) mixed-task batch vs each task's model separately\n")
        print(table_a(rows))
        http = None if args.skip_http else part_b(args, Path(tmp))
        if http:
            print("\n## (b) HTTP load against `munet serve` (one process, CPU)\n")
            print(table_b(http))
    if not args.out:
        return
    command = " ".join([".venv/bin/python", *sys.argv]).replace(str(HERE.parent) + "/", "")
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{threads} torch thread(s), Python {platform.python_version()}"
    )
    text = [
        "# Serving benchmark",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}; load average {load:.1f} when it started (other jobs were running).",
        "",
        f"Part (a) alternates the two variants {args.repeats} times and reports medians of the "
        "process CPU time and the median per-pair speed-up (CPU time is robust to the other "
        "jobs on the machine; wall time is given too).",
        "",
        "## (a) mixed-task batch vs each task's model separately",
        "",
        "Same requests, same engine and chunk size "
        f"({args.batch_size}); *mixed* computes the stages shared by several tasks' paths once. "
        "Stage runs count forward calls of one stage (embedding, block, norm or head) on one "
        "chunk of images, a rough measure of the work. Weights are random (speed does not "
        "depend on them); dimensions are the builtin vit_ti3 root's (192 wide, 3 blocks, "
        "patch 16).",
        "",
        table_a(rows),
        "",
        "Sharing saves work when an image is asked of several tasks (each image x every task): "
        "the shared prefix runs once per image instead of once per task. With distinct images "
        "the work is the same and a mixed batch only saves padding of small per-task chunks.",
    ]
    if http:
        text += [
            "",
            "## (b) HTTP load against `munet serve`",
            "",
            f"{http['threads']} client threads on the same machine, persistent connections, "
            "one 32x32 PNG per request, alternating tasks; server: one uvicorn process.",
            "",
            table_b(http),
        ]
    Path(args.out).write_text("\n".join(text) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
