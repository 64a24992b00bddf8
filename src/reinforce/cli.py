"""The ``reinforce`` command: ``train`` (and ``train --resume``), ``eval``, ``plot``, ``config`` and ``sweep``.

Every `TrainConfig` field is a ``train`` flag with the same name (``num_envs`` -> ``--num-envs``) and the
field's docstring as help. Bad input ends with one line on stderr, ``reinforce: error: ...``, and exit 2;
SIGINT or SIGTERM during training with one line, ``reinforce: interrupted: ...``, and exit 130 or 143.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import json
import logging
import re
import shlex
import sys
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn, Union, get_args, get_origin, get_type_hints

import click

from reinforce.config import DEFAULT_CHECKPOINT_EVERY, DEFAULT_EVAL_EPISODES, MAX_SEED, TrainConfig, field_docs
from reinforce.errors import ReinforceError, TrainingInterrupted


class HiddenSizes(click.ParamType):  # type: ignore[type-arg]
    """Comma-separated layer widths such as ``64,64``; ``none`` or an empty string for a linear policy."""

    name = "sizes"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        """Parse the widths; the config validates their range."""
        if isinstance(value, tuple):
            return value
        text = str(value).strip().lower()
        if text in ("", "none", "linear"):
            return ()
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers such as 64,64", param, ctx)


def _click_type(annotation: Any) -> Any:
    """The click parameter type for a `TrainConfig` field annotation."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
    if get_origin(annotation) is Literal:
        return click.Choice(get_args(annotation))
    if get_origin(annotation) is tuple:
        return HiddenSizes()
    return annotation


FLAG_NAMES = {"ray_address": "address"}
"""Settings whose flag is not their name with dashes."""


def flag(name: str, value: object = None) -> str:
    """The command-line flag of a field or argument: ``num_envs`` -> ``--num-envs`` (``--no-...`` for False)."""
    return ("--no-" if value is False else "--") + FLAG_NAMES.get(name, name).replace("_", "-")


def hyperparameter_options(command: Any) -> Any:
    """Decorate ``command`` with one option per `TrainConfig` field (default None = the config's default)."""
    hints = get_type_hints(TrainConfig)
    docs = field_docs()
    for field in reversed(dataclasses.fields(TrainConfig)):
        flag_name = flag(field.name)
        help_text = docs.get(field.name, "")
        if isinstance(field.default, tuple):
            help_text += f" [default: {','.join(map(str, field.default)) or 'none'}]"
        elif field.default is not None:
            help_text += (
                f" [default: {str(field.default).lower() if isinstance(field.default, bool) else field.default}]"
            )
        if hints[field.name] is bool:
            option = click.option(f"{flag_name}/{flag(field.name, False)}", field.name, default=None, help=help_text)
        else:
            option = click.option(flag_name, field.name, type=_click_type(hints[field.name]), help=help_text)
        command = option(command)
    return command


def import_long_lived(*modules: str) -> None:
    """Import ``modules`` with the cyclic garbage collector paused, then leave what exists out of later collections.

    Importing torch (or matplotlib) creates hundreds of thousands of objects that live as long as the process.
    With the collector running, their creation triggers full collections that walk them again and again (0.1 s
    of torch's import); frozen afterwards (`gc.freeze`), they are skipped by every later collection, the ones
    at exit included (0.3 s). Only the CLI does this: it owns its process, a library does not.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        for module in modules:
            importlib.import_module(module)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


TRAINING_MODULES = ("reinforce.agent",)
"""What training needs: torch, Gymnasium, safetensors (`import_long_lived` before the commands use them)."""
PLOTTING_MODULES = ("reinforce.run.plotting", "matplotlib.figure")
"""What `reinforce.run.plotting` draws with."""


LOG_LEVELS = ("warning", "info", "debug")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="reinforce", prog_name="reinforce")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="warning",
    show_default=True,
    help="Messages on stderr: warning (problems only), info (checkpoints, resume, signals) or debug.",
)
def cli(log_level: str) -> None:
    """REINFORCE (Monte-Carlo policy gradient) on Gymnasium environments."""
    logger = logging.getLogger("reinforce")  # only reinforce's own messages: other libraries keep their level
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("reinforce: %(levelname)s: %(message)s"))
    logger.handlers = [handler]
    logger.setLevel(log_level.upper())
    logger.propagate = False


def env_file_name(env_id: str) -> str:
    """``env_id`` as a file name: ``/`` and ``:`` (of namespaced and ``module:Env`` ids) become ``_``."""
    return env_id.replace("/", "_").replace(":", "_")


def claim_run_dir(env_id: str, seed: int | None) -> Path:
    """Create and return a fresh run directory ``runs/ENV-seedS-YYYYmmdd-HHMMSS``.

    Without a seed the ``-seedS`` part is left out; if the name is taken, ``-2``, ``-3``, ... is appended. The
    directory is claimed by creating it, so two runs started in the same second never share one.
    """
    name = env_file_name(env_id) + ("" if seed is None else f"-seed{seed}")
    base = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    base.parent.mkdir(parents=True, exist_ok=True)
    candidate, number = base, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1
            candidate = base.with_name(f"{base.name}-{number}")


DEFAULT_TOTAL_STEPS = 500_000


def config_option(command: Any) -> Any:
    """The ``--config FILE`` and ``--preset NAME`` options: settings under the flags, over the shipped values."""
    command = click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="YAML file of env_id, seed, total_steps and hyperparameters (a saved config.json works too); "
        "flags override it, it overrides the preset and the shipped per-env values.",
    )(command)
    return click.option(
        "--preset",
        default=None,
        help="A named set of values shipped with reinforce, over the per-env ones: sample-efficient "
        "(CartPole-v1: fewest env steps to solve).",
    )(command)


def run_settings(
    env_id: str | None,
    config_file: Path | None,
    seed: int | None,
    total_steps: int | None,
    flags: dict[str, Any],
) -> tuple[str, int | None, int, TrainConfig]:
    """Merge, lowest first: TrainConfig defaults < shipped per-env values < preset < ``--config`` file < flags.

    ``flags`` holds the hyperparameter flags (None where not given) and ``preset`` (the ``--preset`` name).

    Returns:
        The env id, seed, step budget and the effective config.
    """
    from reinforce.rollout.envs import env_spec
    from reinforce.settings import RunSettings, read_config_file, resolve

    settings = read_config_file(config_file) if config_file is not None else RunSettings()
    if env_id is None:
        env_id = settings.env_id
        if env_id is None:
            raise ReinforceError("no environment given: pass ENV_ID (e.g. CartPole-v1) or a --config with env_id")
    elif settings.env_id is not None and settings.env_id != env_id:
        raise ReinforceError(
            f"config file {config_file} is for {settings.env_id}, not {env_id}: drop ENV_ID or use another --config"
        )
    env_spec(env_id)  # an unknown environment fails here, before anything else
    given = {key: value for key, value in flags.items() if value is not None}
    preset = given.pop("preset", None)
    config = resolve(env_id, preset=preset, file=settings.hyperparameters, overrides=given)
    seed = seed if seed is not None else settings.seed
    if total_steps is None:
        total_steps = settings.total_steps if settings.total_steps is not None else DEFAULT_TOTAL_STEPS
    return env_id, seed, total_steps, config


OptionDecorator = Callable[[Callable[..., Any]], Callable[..., Any]]
"""What ``click.option(...)`` returns: a decorator adding the option to a command."""


def eval_episodes_option(help_text: str) -> OptionDecorator:
    """``--eval-episodes K``, as `train` and `sweep` take it."""
    return click.option(
        "--eval-episodes", type=click.IntRange(min=0), default=DEFAULT_EVAL_EPISODES, show_default=True, help=help_text
    )


def checkpoint_every_option(help_text: str) -> OptionDecorator:
    """``--checkpoint-every N``, as `train` and `sweep` take it."""
    return click.option(
        "--checkpoint-every",
        type=click.IntRange(min=0),
        default=DEFAULT_CHECKPOINT_EVERY,
        show_default=True,
        help=help_text,
    )


def address_option(purpose: str) -> OptionDecorator:
    """``--address HOST:PORT|auto`` of a Ray cluster, as `train` and `sweep` take it."""
    return click.option(
        "--address",
        default=None,
        help=f"{purpose} (HOST:PORT of its head node, or auto) [default: start a local Ray with this machine's CPUs].",
    )


@cli.command()
@click.argument("env_id", required=False)
@config_option
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None, help="Random seed (torch and environments).")
@click.option(
    "--total-steps",
    type=click.IntRange(min=0),
    default=None,
    help=f"Env-step budget [default: {DEFAULT_TOTAL_STEPS}].",
)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where to write the run (must not exist or be empty) [default: runs/ENV_ID-seedS-TIME].",
)
@eval_episodes_option("Deterministic evaluation episodes after training (0 to skip).")
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Continue the run in this directory from its last checkpoint, with its saved settings. Only "
    "--total-steps (the run's total budget, default the saved one), --device, --checkpoint-every, "
    "--eval-episodes, --tensorboard, --address and --quiet may go with it.",
)
@checkpoint_every_option(
    "Write a checkpoint every N updates (0: only at the end); a killed run resumes from the last one."
)
@click.option(
    "--tensorboard",
    is_flag=True,
    help="Also write the metrics as TensorBoard scalars to RUN_DIR/tensorboard (needs reinforce[tensorboard]).",
)
@address_option("With --backend ray: the Ray cluster to join")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print only the summary.")
@hyperparameter_options
def train(
    env_id: str | None,
    config_file: Path | None,
    seed: int | None,
    total_steps: int | None,
    run_dir: Path | None,
    eval_episodes: int,
    resume_dir: Path | None,
    checkpoint_every: int,
    tensorboard: bool,
    address: str | None,
    quiet: bool,
    **hyperparameters: Any,
) -> None:
    """Train a policy on ENV_ID (a Gymnasium id such as CartPole-v1) and write a run directory.

    SIGINT (Ctrl-C) or SIGTERM finishes the current update, saves a checkpoint and exits with 130 or 143;
    `reinforce train --resume RUN_DIR` then continues exactly where the run stopped.
    """
    from reinforce.run.plotting import PlotProcess

    # the curve's child process imports matplotlib while this one imports torch and trains
    plotter = click.get_current_context().with_resource(PlotProcess())
    import_long_lived(*TRAINING_MODULES)
    if tensorboard:
        from reinforce.run.metrics import require_tensorboard

        require_tensorboard()
    if resume_dir is not None:
        agent, run_dir, total_steps = _resumed_run(
            resume_dir, env_id, config_file, seed, total_steps, run_dir, hyperparameters, address
        )
    else:
        agent, run_dir, total_steps = _new_run(
            env_id, config_file, seed, total_steps, run_dir, hyperparameters, address
        )

    from reinforce.run.files import CURVE_FILE
    from reinforce.training import finish_run

    try:
        budget = max(0, total_steps - agent.num_env_steps)
        agent.learn(
            budget, run_dir=run_dir, progress_bar=not quiet, checkpoint_every=checkpoint_every, tensorboard=tensorboard
        )
        outcome = "solved" if agent.solved else "trained"
        click.echo(
            f"{outcome} {agent.env_id} in {agent.num_env_steps:,} env steps, {agent.num_episodes:,} episodes, "
            f"{agent.num_updates:,} updates, {agent.train_time_s:.2f} s of training"
        )
        evaluation = finish_run(agent, run_dir, eval_episodes=eval_episodes, plotter=plotter)
        if evaluation is not None:
            click.echo(_evaluation_line(evaluation))
    finally:
        agent.close()
    click.echo(f"run directory: {run_dir} (curve: {run_dir / CURVE_FILE})")


def _new_run(
    env_id: str | None,
    config_file: Path | None,
    seed: int | None,
    total_steps: int | None,
    run_dir: Path | None,
    hyperparameters: dict[str, Any],
    address: str | None,
) -> tuple[Any, Path, int]:
    """A fresh agent and its newly created run directory, everything validated before anything is written."""
    env_id, seed, total_steps, config = run_settings(env_id, config_file, seed, total_steps, hyperparameters)
    if run_dir is not None and run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ReinforceError(
            f"run directory {run_dir} already exists and is not empty: choose another --run-dir, "
            f"or continue it with --resume {run_dir}"
        )
    from reinforce.agent import Reinforce

    agent = Reinforce(env_id, config=config, seed=seed, ray_address=address)
    try:
        agent.start_workers()  # Ray's errors come before the run directory exists
        if run_dir is None:
            run_dir = claim_run_dir(env_id, seed)
        else:
            run_dir.mkdir(parents=True, exist_ok=True)
    except BaseException as exc:
        agent.close()
        if not isinstance(exc, OSError):
            raise
        raise ReinforceError(
            f"cannot create run directory {exc.filename or run_dir} ({exc.strerror}): choose another --run-dir"
        ) from None
    return agent, run_dir, total_steps


RESUME_OVERRIDES = ("device",)
"""The hyperparameter flags that ``--resume`` accepts: where the run computes (a change of device continues the
run, but its random stream differs from an uninterrupted run on the first device)."""


def _resumed_run(
    resume_dir: Path,
    env_id: str | None,
    config_file: Path | None,
    seed: int | None,
    total_steps: int | None,
    run_dir: Path | None,
    hyperparameters: dict[str, Any],
    address: str | None,
) -> tuple[Any, Path, int]:
    """The agent of ``resume_dir`` at its last checkpoint and the run's total step budget."""
    conflicts = [
        name
        for name, value in (("ENV_ID", env_id), ("--config", config_file), ("--seed", seed), ("--run-dir", run_dir))
        if value is not None
    ]
    conflicts += [
        flag(name, value)
        for name, value in hyperparameters.items()
        if value is not None and name not in RESUME_OVERRIDES
    ]
    if conflicts:
        raise ReinforceError(
            f"--resume continues the run with its saved settings, so {', '.join(conflicts)} cannot change: drop "
            f"{'them' if len(conflicts) > 1 else 'it'} (or start a new run with --config RUN_DIR/config.json "
            "and the new values)"
        )
    from reinforce.run.files import CONFIG_FILE, read_json
    from reinforce.saved import resume
    from reinforce.settings import parse_config_document

    agent = resume(resume_dir, device=hyperparameters.get("device"), ray_address=address)
    logging.getLogger("reinforce").info("resuming %s at update %d", resume_dir, agent.num_updates)
    if total_steps is None:
        try:
            saved = parse_config_document(read_json(resume_dir / CONFIG_FILE), str(resume_dir / CONFIG_FILE))
        except ReinforceError:
            agent.close()
            raise
        total_steps = saved.total_steps if saved.total_steps is not None else DEFAULT_TOTAL_STEPS
    return agent, resume_dir, total_steps


def _evaluation_line(evaluation: dict[str, Any]) -> str:
    mode = "deterministic" if evaluation["deterministic"] else "stochastic"
    return (
        f"evaluation over {evaluation['episodes']} episodes ({mode}): mean return "
        f"{evaluation['mean_return']:.2f} ± {evaluation['std_return']:.2f} "
        f"(min {evaluation['min_return']:.2f}, max {evaluation['max_return']:.2f}), "
        f"mean length {evaluation['mean_length']:.1f}"
    )


@cli.command(name="config")
@click.argument("env_id", required=False)
@config_option
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None, help="Random seed.")
@click.option("--total-steps", type=click.IntRange(min=0), default=None, help="Env-step budget.")
@hyperparameter_options
def show_config(
    env_id: str | None,
    config_file: Path | None,
    seed: int | None,
    total_steps: int | None,
    **hyperparameters: Any,
) -> None:
    """Print the effective settings of `reinforce train` for ENV_ID as YAML (usable as --config)."""
    import yaml

    env_id, seed, total_steps, config = run_settings(env_id, config_file, seed, total_steps, hyperparameters)
    document = {"env_id": env_id, "seed": seed, "total_steps": total_steps, "hyperparameters": config.to_dict()}
    click.echo(yaml.safe_dump(document, sort_keys=False, default_flow_style=None), nl=False)


@cli.command(name="eval")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--episodes", type=click.IntRange(min=1), default=None, help="Episodes to run [default: 100, 1 with --video]."
)
@click.option("--stochastic", is_flag=True, help="Sample actions instead of taking the most likely one.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None, help="Environment seed of the evaluation.")
@click.option("--device", default=None, help="Run the policy on this device instead of the saved one (cpu, cuda).")
@click.option(
    "--video",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Record the episodes, one after the other, to this .mp4 or .gif file (needs reinforce[video]).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def evaluate(
    run_dir: Path,
    episodes: int | None,
    stochastic: bool,
    seed: int | None,
    device: str | None,
    video: Path | None,
    as_json: bool,
) -> None:
    """Evaluate the policy saved in RUN_DIR (and record a video of it with --video)."""
    if video is not None:
        from reinforce.run.video import check_video_path

        check_video_path(video)
    import_long_lived(*TRAINING_MODULES)
    from reinforce.saved import load

    agent = load(run_dir, device=device)
    try:
        if video is not None:
            evaluation = agent.record_video(video, episodes=episodes or 1, deterministic=not stochastic, seed=seed)
        else:
            evaluation = agent.evaluate(episodes=episodes or 100, deterministic=not stochastic, seed=seed)
    finally:
        agent.close()
    click.echo(json.dumps(evaluation) if as_json else _evaluation_line(evaluation))
    if video is not None and not as_json:
        click.echo(f"wrote {video} ({evaluation['frames']} frames)")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Image to write (.png, .svg, .pdf) [default: RUN_DIR/curve.png for one run, curves.png for several].",
)
@click.option(
    "--x",
    "x_axis",
    type=click.Choice(["steps", "time"]),
    default=None,
    help="Compare the runs' 100-episode mean return against env steps or training time; runs that differ only "
    "in their seed are drawn as a mean with a 95% confidence band [default with several runs: steps].",
)
def plot(run_dirs: Sequence[Path], out: Path | None, x_axis: str | None) -> None:
    """Plot one run per episode (return and length), or compare several runs and seeds on one figure."""
    import_long_lived(*PLOTTING_MODULES)
    from reinforce.run.files import CONFIG_FILE, CURVE_FILE, read_json
    from reinforce.run.plotting import plot_comparison, plot_runs

    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise ReinforceError(f"run directory {run_dir} does not exist: pass directories `reinforce train` wrote")
    threshold = read_json(run_dirs[0] / CONFIG_FILE).get("reward_threshold")
    if out is None:
        out = run_dirs[0] / CURVE_FILE if len(run_dirs) == 1 else Path("curves.png")
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ReinforceError(f"cannot write {out}: give --out a .png, .svg or .pdf file name")
    threshold = threshold if isinstance(threshold, (int, float)) and not isinstance(threshold, bool) else None
    if len(run_dirs) == 1 and x_axis is None:
        plot_runs(run_dirs, out, threshold=threshold)
    else:
        plot_comparison(run_dirs, out, x=x_axis or "steps", threshold=threshold)
    click.echo(f"wrote {out}")


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds``: a list of numbers and inclusive ranges, ``"0-9"``, ``"0,2,5"``, ``"0-3,8,10-12"``.

    Raises:
        ReinforceError: a malformed part, a reversed range, a seed out of range or given twice.
    """
    from reinforce.sweep import check_seeds

    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None or (match[2] is not None and int(match[2]) < int(match[1])):
            raise ReinforceError(
                f"invalid --seeds {text!r}: give a range such as 0-9, a list such as 0,2,5, or both (0-3,7)"
            )
        seeds.extend(range(int(match[1]), int(match[2] or match[1]) + 1))
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
                raise ReinforceError(f"invalid --grid value {key}={value.strip()!r}: {exc.message}") from None
        grid[key] = values
    return grid


@cli.command()
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
    help=f"Env-step budget of each trial [default: {DEFAULT_TOTAL_STEPS}].",
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
    env_id, _, total_steps, config = run_settings(env_id, config_file, None, total_steps, hyperparameters)
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


def flag_text(message: str, fields: Sequence[str]) -> str:
    """``message`` (which names settings as Python does) with each of ``fields`` written as its flag.

    ``lr`` becomes ``--lr``, ``backend='ray'`` becomes ``--backend ray``, ``reward_to_go=True`` becomes
    ``--reward-to-go`` and ``=False`` ``--no-reward-to-go``: the CLI is the one place that knows flags.
    """
    for name in fields:

        def as_flag(match: re.Match[str], name: str = name) -> str:
            value = match.group(1)
            if value is None or value in ("True", "False"):
                return flag(name, value != "False")
            return f"{flag(name)} {value.strip(chr(39))}"

        pattern = rf"(?<![\w.'\[-]){re.escape(name)}(?:=('[^']*'|-?[\w.+]+))?(?![\w\]-])"
        message = re.sub(pattern, as_flag, message)
    return message


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"reinforce: error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``reinforce`` console script."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="reinforce", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx is not None else "see `reinforce --help`")
        sys.exit(0)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "reinforce"
        _fail(f"{exc.format_message()} (see `{command} --help`)")
    except click.ClickException as exc:
        _fail(exc.format_message())
    except ReinforceError as exc:
        _fail(flag_text(str(exc), exc.fields))
    except OSError as exc:  # a full disk, a read-only run directory, ...: the file and the reason, one line
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}: check the path, its permissions and the free space", code=1)
    except TrainingInterrupted as exc:
        click.echo(f"reinforce: interrupted: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.Abort):
        _fail("interrupted", code=130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
