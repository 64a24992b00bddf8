"""Start-up cost of an optimizer: the first construction and step of torch.optim's classes, of torch's functional
optimizers (``torch.optim.adam.adam``, ``sgd.sgd``, ``rmsprop.rmsprop``) and of reinforce's `EagerOptimizer`.

Each case runs in a fresh process (``--case NAME``) that imports torch, builds the default CartPole-v1 policy
(4-128-2 MLP) with a gradient, then times the first construction + ``step`` + ``zero_grad`` and notes whether
``torch._dynamo`` is in ``sys.modules`` afterwards. "process s" is the whole child's wall clock, start to exit,
so it includes what a loaded ``torch._dynamo`` adds to the interpreter's exit. Medians over ``--repeats``.

    PYTHONPATH=src .venv/bin/python benchmarks/optimizer_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone

from common import machine, versions

ALGORITHMS = ("adam", "sgd", "rmsprop")
KINDS = ("torch.optim class", "torch functional", "EagerOptimizer")
RESULT_PREFIX = "RESULT "


def first_step(kind: str, algorithm: str) -> Callable[[], None]:
    """A function that constructs the optimizer over a policy with a gradient and takes one step."""
    import torch
    from torch import nn

    from reinforce.core.optim import EagerOptimizer  # imported before the clock starts, as torch is

    torch.manual_seed(0)
    policy = nn.Sequential(nn.Linear(4, 128), nn.ReLU(), nn.Linear(128, 2))
    policy(torch.randn(32, 4)).sum().backward()
    params = list(policy.parameters())

    def torch_class() -> None:
        classes = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}
        optimizer = classes[algorithm](params, lr=0.01)
        optimizer.step()
        optimizer.zero_grad()

    def functional() -> None:
        from torch.optim.adam import adam
        from torch.optim.rmsprop import rmsprop
        from torch.optim.sgd import sgd

        grads = [p.grad for p in params if p.grad is not None]
        zeros = [torch.zeros_like(p) for p in params]
        steps = [torch.tensor(0.0) for _ in params]
        with torch.no_grad():
            if algorithm == "adam":
                adam(
                    params,
                    grads,
                    zeros,
                    [torch.zeros_like(p) for p in params],
                    [],
                    steps,
                    foreach=None,
                    amsgrad=False,
                    beta1=0.9,
                    beta2=0.999,
                    lr=0.01,
                    weight_decay=0,
                    eps=1e-8,
                    maximize=False,
                )
            elif algorithm == "sgd":
                sgd(
                    params,
                    grads,
                    [],
                    foreach=None,
                    weight_decay=0,
                    momentum=0,
                    lr=0.01,
                    dampening=0,
                    nesterov=False,
                    maximize=False,
                )
            else:
                rmsprop(
                    params,
                    grads,
                    zeros,
                    [],
                    [],
                    steps,
                    foreach=None,
                    lr=0.01,
                    alpha=0.99,
                    eps=1e-8,
                    weight_decay=0,
                    momentum=0,
                    centered=False,
                )
        for p in params:
            p.grad = None

    def eager() -> None:
        optimizer = EagerOptimizer(params, algorithm, lr=0.01)  # type: ignore[arg-type]
        optimizer.step()
        optimizer.zero_grad()

    return {"torch.optim class": torch_class, "torch functional": functional, "EagerOptimizer": eager}[kind]


def child(kind: str, algorithm: str) -> None:
    """The ``--case`` child: time the first step, print it after ``RESULT``."""
    run = first_step(kind, algorithm)
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    print(RESULT_PREFIX + json.dumps({"first_s": seconds, "dynamo": "torch._dynamo" in sys.modules}), flush=True)


def measure(kind: str, algorithm: str) -> tuple[float, float, bool]:
    """First construction + step seconds, whole process seconds and whether ``torch._dynamo`` got imported."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--case", kind, algorithm], check=True, capture_output=True, text=True
    ).stdout
    process_s = time.perf_counter() - start
    result = json.loads(next(line for line in out.splitlines() if line.startswith(RESULT_PREFIX))[len(RESULT_PREFIX) :])
    return result["first_s"], process_s, result["dynamo"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--case", nargs=2, metavar=("KIND", "ALGORITHM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        child(*args.case)
        return
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{date}; {machine()}; {versions('torch')}; median of {args.repeats} fresh processes")
    print()
    print("| optimizer | first construction + step ms | imports torch._dynamo | process s |")
    print("| --- | ---: | :---: | ---: |")
    for algorithm in ALGORITHMS:
        for kind in KINDS:
            runs = [measure(kind, algorithm) for _ in range(args.repeats)]
            first = statistics.median(run[0] for run in runs) * 1e3
            process = statistics.median(run[1] for run in runs)
            dynamo = {run[2] for run in runs}
            imported = "yes" if dynamo == {True} else "no" if dynamo == {False} else "sometimes"
            print(f"| {algorithm}, {kind} | {first:.1f} | {imported} | {process:.2f} |", flush=True)


if __name__ == "__main__":
    main()
