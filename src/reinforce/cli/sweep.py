"""``reinforce sweep``: every combination of ``--grid`` values times ``--seeds``, on Ray."""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_type_hints

import click

from reinforce.cli.app import cli
from reinforce.cli.options import (
    BUDGET_OVERSHOOT,
    DEFAULT_TOTAL_STEPS,
    HiddenSizes,
    _click_type,
    address_option,
    checkpoint_every_option,
    config_option,
    env_file_name,
    eval_episodes_option,
    flag,
    hyperparameter_options,
    run_settings,
)
from reinforce.cli.sections import SectionedCommand
from reinforce.config import TrainConfig
from reinforce.errors import ReinforceError


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds``: a list of numbers and inclusive ranges, ``"0-9"``, ``"0,2,5"``, ``"0-3,8,10-12"``.

    Raises:
        ReinforceError: a malformed part, a reversed range, a seed out of range or given twice.
    """
    from reinforce.config_checks import MAX_SEEDS
    from reinforce.sweep import check_seeds

    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None or (match[2] is not None and int(match[2]) < int(match[1])):
            raise ReinforceError(
                f"invalid --seeds {text!r}: give a range such as 0-9, a list such as 0,2,5, or both (0-3,7)"
            )
        first, last = int(match[1]), int(match[2] or match[1])
        if len(seeds) + last - first + 1 > MAX_SEEDS:  # before expanding a range such as 0-4294967295
            raise ReinforceError(
                f"invalid --seeds {text!r}: at most {MAX_SEEDS} seeds are taken at once; split them into smaller runs"
            )
        seeds.extend(range(first, last + 1))
    return check_seeds(seeds)


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``--grid NAME=V1,V2`` options as lists of typed values, each parsed as its ``train`` flag parses it.

    The values of the layer-width fields (``hidden_sizes``, ``value_hidden_sizes``) hold commas themselves,
    so they are separated by ``/``: ``hidden_sizes=64,64/128/none``. ``NAME`` may be written with ``-``.

    Raises:
        ReinforceError: a malformed item, an unknown name, a name given twice, or a value its flag refuses.
    """
    hints = get_type_hints(TrainConfig)
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, equals, text = item.partition("=")
        key = name.strip().replace("-", "_")
        if not equals or not key:
            raise ReinforceError(f"invalid --grid {item!r}: write NAME=VALUE1,VALUE2 (e.g. --grid lr=0.01,0.03)")
        if key not in hints:
            raise ReinforceError(
                f"unknown hyperparameter {key!r} in --grid {item}: use a train flag's name, such as lr, num_envs or "
                "baseline (see `reinforce train --help`)"
            )
        if key in grid:
            raise ReinforceError(f"--grid {key} is given twice: list all its values in one --grid {key}=V1,V2")
        param_type = click.BOOL if hints[key] is bool else click.types.convert_type(_click_type(hints[key]))
        values = []
        for value in text.split("/" if isinstance(param_type, HiddenSizes) else ","):
            try:
                values.append(param_type.convert(value.strip(), None, None))
            except click.BadParameter as exc:
                raise ReinforceError(
                    f"invalid --grid value {key}={value.strip()!r}: {exc.message.rstrip('.')}; give each value as "
                    f"--{key.replace('_', '-')} takes it, separated by commas"
                ) from None
        grid[key] = values
    return grid


@cli.command(cls=SectionedCommand)
@click.argument("env_id", required=False)
@config_option
@click.option(
    "--seeds",
    default="0-9",
    show_default=True,
    help="Seeds of every setting: a range (0-9), a list (0,2,5) or both (0-3,7).",
)
@click.option(
    "--grid",
    "grid_items",
    multiple=True,
    metavar="NAME=V1,V2",
    help="Values to try for one hyperparameter, written as its train flag takes them (lr=0.005,0.01; "
    "baseline=none,value; reward_to_go=true,false; hidden_sizes=64,64/128, with / between layer lists). "
    "Repeat it for more; every combination runs with every seed.",
)
@click.option(
    "--total-steps",
    type=click.IntRange(min=1),
    default=None,
    help=f"Env-step budget of each trial; {BUDGET_OVERSHOOT} [default: the one shipped for ENV_ID, else "
    f"{DEFAULT_TOTAL_STEPS}].",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The sweep directory; the same command run again continues the sweep there [default: sweeps/ENV_ID].",
)
@address_option("The Ray cluster to run the trials on")
@eval_episodes_option("Deterministic evaluation episodes after each trial; the final return is their mean (0: none).")
@checkpoint_every_option("Each trial writes a checkpoint every N updates; an interrupted sweep continues from them.")
@hyperparameter_options
def sweep(
    env_id: str | None,
    config_file: Path | None,
    seeds: str,
    grid_items: Sequence[str],
    total_steps: int | None,
    out: Path | None,
    address: str | None,
    eval_episodes: int,
    checkpoint_every: int,
    **hyperparameters: Any,
) -> None:
    """Train every combination of the --grid values with every seed, in parallel on Ray, and compare them.

    Each trial is a run directory OUT/SETTING/seed-S, as `reinforce train` writes it. At the end a table (per
    setting: trials, how many solved, median and 95% interval of the env steps to solve and of the final
    return) is printed and written to OUT/results.md and OUT/results.json, and the learning curves to
    OUT/curves.png. Ctrl-C stops the sweep; the same command run again skips the finished trials and
    continues the others from their last checkpoint. Flags and --config set the values under the grid (the
    seed of a --config file is not used: --seeds decides).
    """
    from reinforce.sweep import SweepInterrupted, check_local_trials, run_sweep

    check_local_trials(name for name, value in hyperparameters.items() if value is not None)
    grid = parse_grid(grid_items)
    both = [name for name in grid if hyperparameters.get(name) is not None]
    if both:
        raise ReinforceError(f"{both[0]} is given both as {flag(both[0])} and in --grid: keep one of them")
    seed_list = parse_seeds(seeds)
    env_id, _, total_steps, config, env_kwargs = run_settings(env_id, config_file, None, total_steps, hyperparameters)
    if env_kwargs:
        raise ReinforceError("sweeps do not take env_kwargs: register an id with them (gymnasium.register) instead")
    try:
        run_sweep(
            env_id,
            seeds=seed_list,
            total_steps=total_steps,
            out=out if out is not None else Path("sweeps") / env_file_name(env_id),
            grid=grid,
            hyperparameters=config.to_dict(),
            eval_episodes=eval_episodes,
            address=address,
            checkpoint_every=checkpoint_every,
            echo=click.echo,
        )
    except KeyboardInterrupt as exc:
        done = f"{exc.finished} of {exc.total} trials finished; " if isinstance(exc, SweepInterrupted) else ""
        command = shlex.join(["reinforce", *sys.argv[1:]])
        click.echo(f"reinforce: interrupted: {done}continue the sweep with the same command: {command}", err=True)
        sys.exit(130)
