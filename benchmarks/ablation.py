"""Ablation of the estimator switches: what each part of REINFORCE buys, over seeds, on two environments.

Every run starts from `TrainConfig`'s defaults (not the per-environment tuned values) and changes one switch
(or the pair named). For each (environment, variant, seed) it records the 100-episode training mean return
after every update up to a fixed env-step budget, without stopping early. From those curves it reports the
env steps until that mean first reaches the env's reward threshold (the budget if never: such values are
censored and the table says how many seeds solved), the median and a bootstrap 95% confidence interval of
the median over seeds, the mean return reached at the budget, and a plot of the curves (mean over seeds with
a bootstrap 95% band).

    python benchmarks/ablation.py [--envs CartPole-v1,Acrobot-v1] [--seeds 0-9] [--workers 2]
                                  [--variants default,value,...] [--json benchmarks/results/ablation.json]
    python benchmarks/ablation.py --report-only   # tables and plots from the saved JSON
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import seed_range

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": ("default: reward-to-go, batch-standardised", {}),
    "norm-none": ("no normalisation", {"return_normalization": "none"}),
    "norm-episode": ("per-episode normalisation", {"return_normalization": "episode"}),
    "whole-episode": ("whole-episode return", {"reward_to_go": False}),
    "discount-gradient": ("discounted gradient (gamma^t)", {"discount_gradient": True}),
    "entropy": ("entropy bonus 0.01", {"entropy_coef": 0.01}),
    "sum-per-episode": ("sum per episode, mean over episodes", {"loss_reduction": "mean_over_episodes"}),
    "batch-mean": ("baseline batch_mean, no normalisation", {"baseline": "batch_mean", "return_normalization": "none"}),
    "running-mean": (
        "baseline running_mean, no normalisation",
        {"baseline": "running_mean", "return_normalization": "none"},
    ),
    "leave-one-out": (
        "baseline leave_one_out, no normalisation",
        {"baseline": "leave_one_out", "return_normalization": "none"},
    ),
    "value-none": ("baseline value, no normalisation", {"baseline": "value", "return_normalization": "none"}),
    "value-batch": ("baseline value, batch-standardised", {"baseline": "value"}),
}
"""Variant key -> (label, the switches it changes)."""
BUDGETS = {"CartPole-v1": 200_000, "Acrobot-v1": 100_000}
ROOT = Path(__file__).parents[1]


def run(task: tuple[str, str, int, int]) -> dict[str, Any]:
    """One training run; returns its curve of (env steps, 100-episode mean return) per update."""
    import torch

    from reinforce import Reinforce, TrainConfig

    env_id, variant, seed, budget = task
    torch.set_num_threads(1)
    settings = {**TrainConfig().to_dict(), "stop_on_solve": False, **VARIANTS[variant][1]}
    agent = Reinforce(env_id, seed=seed, **settings)
    steps, means = [], []
    start = time.perf_counter()
    while agent.num_env_steps < budget:
        metrics = agent.update()
        steps.append(metrics["env_steps"])
        means.append(metrics["charts/episode_return_mean_100"])
    agent.close()
    return {
        "env_id": env_id,
        "variant": variant,
        "seed": seed,
        "threshold": agent.reward_threshold,
        "budget": budget,
        "seconds": time.perf_counter() - start,
        "steps": steps,
        "return_mean_100": means,
    }


def steps_to_solve(result: dict[str, Any]) -> float | None:
    """Env steps at the first update whose 100-episode mean reached the threshold (None: never)."""
    # the first 100 episodes' mean is over fewer episodes; count it as the others do (a noisier estimate)
    for steps, mean in zip(result["steps"], result["return_mean_100"], strict=True):
        if mean >= result["threshold"]:
            return float(steps)
    return None


def bootstrap_median_interval(values: np.ndarray, rng: np.random.Generator, draws: int = 10_000) -> tuple[float, float]:
    medians = np.median(rng.choice(values, size=(draws, len(values)), replace=True), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def report(results: list[dict[str, Any]], figures: Path) -> None:
    rng = np.random.default_rng(0)
    for env_id in dict.fromkeys(result["env_id"] for result in results):
        runs = [result for result in results if result["env_id"] == env_id]
        budget = runs[0]["budget"]
        print(f"\n### {env_id} (budget {budget:,} env steps, threshold {runs[0]['threshold']})\n")
        print("| variant | solved | median steps to solve [95% CI] | mean return at budget [95% CI] | s/run |")
        print("| --- | --- | --- | --- | --- |")
        curves = {}
        for variant in VARIANTS:
            chosen = [result for result in runs if result["variant"] == variant]
            if not chosen:
                continue
            solve = [steps_to_solve(result) for result in chosen]
            censored = np.array([budget if value is None else value for value in solve], dtype=float)
            solved = sum(value is not None for value in solve)
            low, high = bootstrap_median_interval(censored, rng)
            median = float(np.median(censored))
            more = ">" if solved * 2 <= len(chosen) else ""
            final = np.array([result["return_mean_100"][-1] for result in chosen])
            final_draws = rng.choice(final, size=(10_000, len(final)), replace=True).mean(axis=1)
            f_low, f_high = np.percentile(final_draws, [2.5, 97.5])
            seconds = np.mean([result["seconds"] for result in chosen])
            print(
                f"| {VARIANTS[variant][0]} (`{variant}`) | {solved}/{len(chosen)} | "
                f"{more}{median:,.0f} [{low:,.0f}, {high:,.0f}] | "
                f"{final.mean():.1f} [{f_low:.1f}, {f_high:.1f}] | {seconds:.1f} |"
            )
            grid = np.linspace(0, budget, 101)
            curves[variant] = np.stack(
                [np.interp(grid, result["steps"], result["return_mean_100"]) for result in chosen]
            )
        plot(env_id, curves, np.linspace(0, budget, 101), runs[0]["threshold"], figures, rng)


def plot(
    env_id: str,
    curves: dict[str, np.ndarray],
    grid: np.ndarray,
    threshold: float,
    figures: Path,
    rng: np.random.Generator,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {
        "returns and normalisation": [name for name in curves if "baseline" not in VARIANTS[name][1]],
        "baselines": [name for name in curves if "baseline" in VARIANTS[name][1] or name == "norm-none"],
    }
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.5), sharey=True)
    for axis, (title, names) in zip(axes, groups.items(), strict=True):
        for name in names:
            values = curves[name]
            means = rng.choice(values, size=(2_000, len(values)), replace=True).mean(axis=1)
            low, high = np.percentile(means, [2.5, 97.5], axis=0)
            (line,) = axis.plot(grid, values.mean(axis=0), label=VARIANTS[name][0], linewidth=1.4)
            axis.fill_between(grid, low, high, color=line.get_color(), alpha=0.15)
        axis.axhline(threshold, color="black", linestyle=":", linewidth=1, label="reward threshold")
        axis.set_title(f"{env_id}: {title}")
        axis.set_xlabel("env steps")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("100-episode mean training return (mean over seeds, 95% band)")
    fig.tight_layout()
    figures.mkdir(parents=True, exist_ok=True)
    out = figures / f"ablation_{env_id.split('-')[0].lower()}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default=",".join(BUDGETS))
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--variants", default=None, help="comma-separated variant names (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "ablation.json")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        variants = args.variants.split(",") if args.variants else list(VARIANTS)
        tasks = [
            (env_id, variant, seed, BUDGETS[env_id])
            for env_id in args.envs.split(",")
            for variant in variants
            for seed in seed_range(args.seeds)
        ]
        results = []
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            for done, result in enumerate(pool.imap_unordered(run, tasks), start=1):
                results.append(result)
                print(
                    f"[{done}/{len(tasks)}] {result['env_id']} {result['variant']} seed {result['seed']}: "
                    f"{result['return_mean_100'][-1]:.1f} ({result['seconds']:.1f} s)",
                    flush=True,
                )
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results))
    report(json.loads(args.json.read_text()), args.figures)


if __name__ == "__main__":
    main()
