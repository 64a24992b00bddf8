"""Where settings come from, and their one merge: defaults < per-env values < preset < config file < overrides.

`resolve` is the merge that the Python API (`reinforce.Reinforce`), the CLI and sweeps all use. The per-env
values (hyperparams.yaml) and the presets (presets.yaml) ship inside the package; a config file is YAML in the
schema of a run's config.json (`read_config_file`). Nothing here executes what it reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, get_args, get_type_hints

from reinforce.config import TrainConfig, as_count, check_seed, saved_hyperparameters
from reinforce.errors import ReinforceError

CONFIG_FILE_KEYS = ("env_id", "env_kwargs", "seed", "total_steps", "hyperparameters")
"""Keys a config file may set; a saved config.json also has these (and others, which are informational)."""
INFORMATIONAL_KEYS = (
    "format_version",
    "reward_threshold",
    "versions",
    "env",
    "spaces",
    "custom_modules",
    "custom_optimizer",
)
"""Keys of a saved config.json that a config file may carry but that do not configure anything."""


@dataclass(frozen=True)
class RunSettings:
    """What a config file sets: any of the env id and its kwargs, the seed, the step budget and hyperparameters."""

    env_id: str | None = None
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int | None = None
    total_steps: int | None = None
    hyperparameters: dict[str, Any] = dataclasses.field(default_factory=dict)


MAX_CONFIG_BYTES = 1 << 20
"""The largest config file read (1 MiB): a config is a few lines."""
MAX_YAML_DEPTH = 64
"""The deepest nesting of mappings and lists a config file may have."""


def _strict_loader() -> type:
    """A ``yaml.SafeLoader`` that refuses what a config file has no use for and a hostile one abuses.

    Anchors and aliases (a few hundred bytes of them expand to gigabytes), nesting deeper than
    `MAX_YAML_DEPTH` (a RecursionError), and a key given twice in a mapping (the last one would win silently).
    """
    import yaml

    class StrictLoader(yaml.SafeLoader):  # type: ignore[misc]  # yaml has no type stubs here
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise yaml.YAMLError(f"uses an anchor or alias (&, *){_line(event)}: write the values out")
            self.depth += 1
            try:
                if self.depth > MAX_YAML_DEPTH:
                    raise yaml.YAMLError(f"nests deeper than {MAX_YAML_DEPTH} levels{_line(event)}: flatten it")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if repeated:
                    raise yaml.YAMLError(f"has the key {key!r} twice{_line(key_node)}: give each key once")
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def _line(item: Any) -> str:
    mark = getattr(item, "start_mark", None)
    return f" at line {mark.line + 1}" if mark is not None else ""


def _yaml_mapping(text: str, source: str) -> dict[str, Any]:
    import yaml

    try:
        document = yaml.load(text, Loader=_strict_loader())  # a SafeLoader subclass: nothing is executed
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ReinforceError(f"{source} is not valid YAML{where}: fix the syntax") from None
    except yaml.YAMLError as exc:
        raise ReinforceError(f"{source} {exc}") from None
    except RecursionError:
        raise ReinforceError(f"{source} nests too deeply: flatten it") from None
    if document is None:
        return {}
    if not isinstance(document, dict) or not all(isinstance(key, str) for key in document):
        raise ReinforceError(f"{source} must hold a mapping of names to values, such as env_id: CartPole-v1")
    return document


def parse_scalar(text: str, source: str) -> Any:
    """``text`` read as one YAML scalar (``12`` -> 12, ``0.5``, ``true``, ``null``, anything else as text).

    Raises:
        ReinforceError: a list, a mapping or invalid YAML.
    """
    value = _yaml_mapping(f"value: {text}", source).get("value") if text.strip() else ""
    if isinstance(value, (list, dict)):
        raise ReinforceError(f"{source} must be one value (a number, true/false or text), got {text!r}")
    return value


def _coerce_numbers(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """YAML reads ``1e-3`` (no dot) as a string: turn such strings into floats for the float-typed fields."""
    hints = get_type_hints(TrainConfig)
    coerced = dict(hyperparameters)
    for key, value in hyperparameters.items():
        if isinstance(value, str) and key in hints and float in (get_args(hints[key]) or (hints[key],)):
            with contextlib.suppress(ValueError):  # otherwise check_config rejects it, naming the field
                coerced[key] = float(value)
    return coerced


def parse_config_document(document: dict[str, Any], source: str) -> RunSettings:
    """Validate a config document (the schema of config.json) and return what it sets.

    Raises:
        ReinforceError: an unknown key, a value of the wrong type or out of range, naming ``source``.
    """
    unknown = sorted(set(document) - set(CONFIG_FILE_KEYS) - set(INFORMATIONAL_KEYS))
    if unknown:
        raise ReinforceError(
            f"{source} has unknown key(s) {', '.join(unknown)}: a config file may set "
            f"{', '.join(CONFIG_FILE_KEYS)} (hyperparameters go under 'hyperparameters:')"
        )
    env_id = document.get("env_id")
    if env_id is not None and (not isinstance(env_id, str) or not env_id):
        raise ReinforceError(f"{source} has env_id={env_id!r}: it must be a Gymnasium id such as CartPole-v1")
    env_kwargs = document.get("env_kwargs")
    record = document.get("env")
    if env_kwargs is None and isinstance(record, dict):  # a saved config.json: its env's recorded kwargs
        env_kwargs = record.get("kwargs")
    env_kwargs = {} if env_kwargs is None else env_kwargs
    if not isinstance(env_kwargs, dict):
        raise ReinforceError(f"{source}: 'env_kwargs' must be a mapping such as {{size: 12}}")
    hyperparameters = document.get("hyperparameters", {})
    if hyperparameters is None:
        hyperparameters = {}
    if not isinstance(hyperparameters, dict):
        raise ReinforceError(f"{source}: 'hyperparameters' must be a mapping such as {{lr: 0.01, num_envs: 16}}")
    if "format_version" in document:  # a saved config.json: read as `reinforce.load` reads it
        hyperparameters = saved_hyperparameters(hyperparameters)
    try:
        hyperparameters = _coerce_numbers(hyperparameters)
        TrainConfig.from_dict(hyperparameters)  # validates every value now, with the field's name
        seed = check_seed(document.get("seed"))
        total_steps = document.get("total_steps")
        total_steps = None if total_steps is None else as_count("total_steps", total_steps, 0)
    except (ReinforceError, TypeError) as exc:
        raise ReinforceError(f"{source}: {exc}") from None
    return RunSettings(
        env_id=env_id, env_kwargs=env_kwargs, seed=seed, total_steps=total_steps, hyperparameters=hyperparameters
    )


def read_config_file(path: str | Path) -> RunSettings:
    """Read a YAML (or JSON) config file, such as a saved run's config.json, and validate it.

    The file is a mapping with any of ``env_id``, ``env_kwargs`` (for ``gymnasium.make``), ``seed``,
    ``total_steps`` and ``hyperparameters`` (a mapping of `TrainConfig` fields). Nothing in it is executed:
    YAML is read with ``safe_load``.

    Raises:
        ReinforceError: the file is missing, unreadable, not YAML, or holds an invalid value.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ReinforceError(f"config file {path} is over {MAX_CONFIG_BYTES} bytes: a config file is a few lines")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ReinforceError(f"config file {path} does not exist: check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ReinforceError(f"cannot read config file {path} ({reason}): pass a readable YAML file") from None
    return parse_config_document(_yaml_mapping(text, f"config file {path}"), f"config file {path}")


TUNED_FILE = "hyperparams.yaml"
"""The per-environment hyperparameters shipped inside the package (the RL Zoo habit)."""


PRESETS_FILE = "presets.yaml"
"""Named alternatives to the tuned values (``preset=NAME``), per environment, shipped inside the package."""


@functools.cache
def _package_yaml(name: str) -> dict[str, Any]:
    text = resources.files("reinforce").joinpath(name).read_text(encoding="utf-8")
    return _yaml_mapping(text, f"reinforce/{name}")


def preset_hyperparameters(preset: str, env_id: str | None) -> dict[str, Any]:
    """The hyperparameters of the shipped preset ``preset`` for ``env_id`` (presets.yaml).

    Raises:
        ReinforceError: no such preset, or the preset has no values for ``env_id``.
    """
    presets = _package_yaml(PRESETS_FILE)
    if preset not in presets:
        raise ReinforceError(f"unknown preset {preset!r}: the presets are {', '.join(sorted(presets))}")
    entry = presets[preset].get(env_id.split(":")[-1]) if env_id is not None else None
    if entry is None:
        raise ReinforceError(
            f"preset {preset!r} has no values for {env_id or 'an unregistered environment'}: "
            f"it exists for {', '.join(sorted(presets[preset]))}"
        )
    return _coerce_numbers(dict(entry))


LIKE = "like"
"""An entry of hyperparams.yaml with ``like: OTHER_ID`` takes OTHER_ID's values (budget included), its own over
them: one shared set for several tasks, written once (the file takes no YAML anchors)."""


def _tuned_entry(env_id: str | None) -> dict[str, Any]:
    table = _package_yaml(TUNED_FILE)
    entry = dict(table.get(env_id.split(":")[-1], {})) if env_id is not None else {}
    base = entry.pop(LIKE, None)
    return entry if base is None else {**table[base], **entry}


def tuned_hyperparameters(env_id: str | None) -> dict[str, Any]:
    """The hyperparameters shipped for ``env_id`` (a copy; empty for an env without an entry, or None).

    They sit between `TrainConfig`'s defaults and what the user gives: the defaults are CartPole-v1's.
    An entry's ``total_steps`` is its budget, not a hyperparameter: `shipped_total_steps` reads it.
    """
    entry = _tuned_entry(env_id)
    entry.pop("total_steps", None)
    return _coerce_numbers(entry)


def shipped_total_steps(env_id: str | None) -> int | None:
    """The env-step budget shipped for ``env_id`` (``total_steps`` in hyperparams.yaml), or None if it has none.

    `reinforce train ENV_ID` trains for it when neither ``--total-steps`` nor a config file gives a budget.
    """
    total_steps = _tuned_entry(env_id).get("total_steps")
    return None if total_steps is None else as_count("total_steps", total_steps, 1)


def resolve(
    env_id: str | None,
    *,
    preset: str | None = None,
    file: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    base: TrainConfig | None = None,
) -> TrainConfig:
    """The effective config of a run on ``env_id``, each layer over the one before.

    ``env_id`` is None for an environment that is not registered (a callable): nothing is shipped for it.

    Layers, lowest first: ``base`` if given (a complete config: the shipped per-env values and the preset are
    then not applied), else `TrainConfig`'s defaults (tuned on CartPole-v1) < the values shipped for
    ``env_id`` (hyperparams.yaml) < ``preset`` (presets.yaml); then the hyperparameters of a config
    ``file`` (`RunSettings.hyperparameters`); then ``overrides``.

    Example:
        >>> resolve("Pendulum-v1", overrides={"lr": 0.001}).lr
        0.001
        >>> resolve("Pendulum-v1").normalize_observations  # shipped for Pendulum-v1
        True

    Raises:
        ReinforceError: an unknown preset or field, or an invalid value (naming the field).
    """
    if base is not None:
        if not isinstance(base, TrainConfig):
            raise ReinforceError(
                f"config must be a TrainConfig, got {type(base).__name__}: pass TrainConfig.from_dict(values), or "
                "give the values as keyword arguments"
            )
        if preset is not None:
            raise ReinforceError("a preset applies over the shipped values, not over a given config: pass one of them")
        layers: dict[str, Any] = base.to_dict()
    else:
        preset_values = preset_hyperparameters(preset, env_id) if preset is not None else {}
        layers = {**tuned_hyperparameters(env_id), **preset_values}
    return TrainConfig.from_dict({**layers, **(file or {}), **(overrides or {})})
