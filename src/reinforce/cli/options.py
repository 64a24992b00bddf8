"""The CLI's vocabulary: flags of the `TrainConfig` fields, shared options, settings, errors with flags."""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import click

from reinforce.config import DEFAULT_CHECKPOINT_EVERY, DEFAULT_EVAL_EPISODES, TrainConfig, field_docs
from reinforce.errors import ReinforceError


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


def env_file_name(env_id: str) -> str:
    """``env_id`` as a file name: ``/`` and ``:`` (of namespaced and ``module:Env`` ids) become ``_``."""
    return env_id.replace("/", "_").replace(":", "_")


DEFAULT_TOTAL_STEPS = 500_000

BUDGET_OVERSHOOT = (
    "an update collects whole episodes and the budget is checked between updates, so training ends past it by up "
    "to one update's steps"
)
"""What every ``--total-steps`` help says about where training really stops."""


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
) -> tuple[str, int | None, int, TrainConfig, dict[str, Any]]:
    """Merge, lowest first: TrainConfig defaults < shipped per-env values < preset < ``--config`` file < flags.

    ``flags`` holds the hyperparameter flags (None where not given), ``preset`` (the ``--preset`` name) and,
    for commands that have ``--env-kwargs``, ``env_kwargs`` (its KEY=VALUE texts, over the file's).

    Returns:
        The env id, seed, step budget, the effective config and the env's kwargs.
    """
    from reinforce.rollout.envs import env_spec
    from reinforce.settings import RunSettings, read_config_file, resolve, shipped_total_steps

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
    env_kwargs = {**settings.env_kwargs, **parse_env_kwargs(given.pop("env_kwargs", ()))}
    config = resolve(env_id, preset=preset, file=settings.hyperparameters, overrides=given)
    seed = seed if seed is not None else settings.seed
    if total_steps is None:  # the flag, else the config file's, else the budget shipped for env_id, else 500k
        total_steps = next(
            (steps for steps in (settings.total_steps, shipped_total_steps(env_id)) if steps is not None),
            DEFAULT_TOTAL_STEPS,
        )
    return env_id, seed, total_steps, config, env_kwargs


def parse_env_kwargs(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--env-kwargs KEY=VALUE ...`` as a mapping; each VALUE is read as a YAML scalar (12, 0.5, true, text).

    Raises:
        ReinforceError: a pair without ``=``, an empty key, or a value that is not a plain scalar.
    """
    from reinforce.settings import parse_scalar

    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key.strip():
            raise ReinforceError(f"--env-kwargs {pair!r} is not KEY=VALUE: write it as e.g. size=12")
        kwargs[key.strip()] = parse_scalar(text, f"--env-kwargs {key.strip()}")
    return kwargs


def env_kwargs_option(command: Any) -> Any:
    """The ``--env-kwargs KEY=VALUE ...`` option: keyword arguments for ``gymnasium.make``."""
    return click.option(
        "--env-kwargs",
        "env_kwargs",
        multiple=True,
        metavar="KEY=VALUE",
        help="Keyword argument for gymnasium.make (repeat for several), e.g. --env-kwargs max_episode_steps=200; "
        "VALUE is read as YAML (12, 0.5, true, text).",
    )(command)


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

        pattern = rf"(?<![\w.'\[/\\-]){re.escape(name)}(?:=('[^']*'|-?[\w.+]+))?(?![\w\]/\\-])"  # not in paths
        message = re.sub(pattern, as_flag, message)
    return message
