"""Microseconds per call of building and sampling a batch of discrete actions: `Categorical.sample` against reinforce's
inverse-CDF `sample_actions`, for the default CartPole policy head (2 actions) and a few batch sizes.

    python benchmarks/sampling.py
"""

from __future__ import annotations

import time

import torch
from torch.distributions import Categorical

from reinforce.rollout.collect import sample_actions


def per_call_us(function, calls: int = 3000) -> float:
    function()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    torch.set_num_threads(1)
    print("| batch (num_envs) | Categorical.sample µs | sample_actions µs |")
    print("| ---: | ---: | ---: |")
    with torch.inference_mode():
        for batch in (1, 16, 32, 256, 4096):
            logits = torch.randn(batch, 2)
            # each call builds the distribution, as the policy does every step (so cached probs don't help)
            native = per_call_us(lambda x=logits: Categorical(logits=x).sample())
            ours = per_call_us(lambda x=logits: sample_actions(Categorical(logits=x)))
            print(f"| {batch} | {native:.1f} | {ours:.1f} |", flush=True)


if __name__ == "__main__":
    main()
