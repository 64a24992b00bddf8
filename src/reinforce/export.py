"""A trained policy as one file that runs without reinforce: TorchScript (``torch.jit.load``) or ONNX.

The file holds `DeterministicPolicy`: one input, ``observations``, a float32 batch ``[B, *obs_shape]`` of raw
observations (the normalisation statistics are inside), and one output, ``actions``, the deterministic actions
the env gets, exactly those of ``Reinforce.predict(observations, deterministic=True)``: int64 ``[B]`` for
Discrete, int64 ``[B, *shape]`` for MultiDiscrete and MultiBinary, float32 ``[B, *shape]`` for Box (clipped,
or tanh-squashed, to the bounds). Both formats come from one trace of that module by torch's TorchScript
tracer (``torch.jit.trace``; ONNX through torch's TorchScript-based exporter, which needs only the ``onnx``
package). A JSON description (env id, spaces, versions) is stored with it: the extra file ``reinforce.json``
of a TorchScript file, the metadata entry ``reinforce`` of an ONNX model.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn
from torch.distributions import Distribution

from reinforce.agent import Reinforce
from reinforce.core.policies import Policy
from reinforce.errors import ReinforceError
from reinforce.rollout.actions import EnvActions, sample_actions
from reinforce.rollout.observations import FLATTENED_OBSERVATION_SPACES
from reinforce.run.checkpoint import is_run_file
from reinforce.run.files import atomic_write, library_versions, refuse_special_file

if TYPE_CHECKING:
    from onnx import ModelProto

ExportFormat = Literal["torchscript", "onnx"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("torchscript", "onnx")
"""The file formats of `export_policy`."""
ONNX_OPSET = 17
"""The ONNX opset of exported models (onnxruntime runs it from version 1.14 on)."""
METADATA_NAME = "reinforce"
"""Where the JSON description is stored: ``reinforce.json`` in a TorchScript file, a metadata key in ONNX."""
INPUT_NAME = "observations"
OUTPUT_NAME = "actions"


class DeterministicPolicy(nn.Module):
    """Raw observations ``[B, *obs_shape]`` in, the env's deterministic actions out, as one ``nn.Module``.

    It computes what ``Reinforce.predict(observations, deterministic=True)`` does, with the same code: the
    policy (its encoder normalises the observations), `reinforce.rollout.actions.sample_actions` (the mode), and
    `reinforce.rollout.actions.EnvActions` (``start`` shifts, shapes, the Box clip or tanh squash). The
    distribution lives only inside `forward`, so ``torch.jit.trace`` and ONNX export see tensors only. Integer
    actions come out as int64, Box actions as float32.

    Args:
        policy: the trained policy (it is used as it is: pass a copy to keep training the original).
        action_space: the env's single action space.
    """

    def __init__(self, policy: Policy, action_space: spaces.Space[Any]) -> None:
        super().__init__()
        self.policy = policy
        self.env_actions = EnvActions(action_space, policy.action_squash)

    def forward(self, observations: Tensor) -> Tensor:
        """The env's actions (int64, or float32 for Box) for a batch of raw observations."""
        actions: Tensor = self.env_actions(sample_actions(self.policy(observations), deterministic=True))
        return actions.float() if actions.is_floating_point() else actions


def _example_observations(space: spaces.Space[Any]) -> Tensor:
    """Two valid observations of ``space`` as float32, to trace with (the values do not shape the graph)."""
    if isinstance(space, spaces.Discrete):
        return torch.full((2,), float(space.start))
    assert isinstance(space, spaces.Box)  # the encoder takes only these two
    one = np.clip(np.zeros(space.shape), space.low, space.high)
    return torch.as_tensor(np.stack([one, one]), dtype=torch.float32)


def _check_format(format: str) -> ExportFormat:
    if format not in EXPORT_FORMATS:
        message = f"unknown format={format!r}: give format='torchscript' or format='onnx'"
        raise ReinforceError(message, fields=("format",))
    return format


SUFFIXES: dict[ExportFormat, tuple[str, ...]] = {"torchscript": (".pt", ".pth", ".ts", ".jit"), "onnx": (".onnx",)}
"""File name suffixes that name a format: a file named for the other format is refused (any other suffix is
written as asked)."""


def _check_suffix(path: Path, format: ExportFormat) -> None:
    """Refuse a file name whose suffix names the other format (``policy.onnx`` holding TorchScript)."""
    suffix = path.suffix.lower()
    other = next((name for name, suffixes in SUFFIXES.items() if suffix in suffixes and name != format), None)
    if other is not None:
        raise ReinforceError(
            f"cannot write {path} as format={format!r}: {path.suffix} is the suffix of {other} files, and "
            f"{other}'s loaders cannot read this one; give format={other!r}, or a file name ending in "
            f"{SUFFIXES[format][0]}",
            fields=("format",),
        )


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401 (torch's ONNX exporter needs it)
    except ImportError:
        raise ReinforceError("exporting to ONNX needs the onnx package: pip install 'reinforce[export]'") from None


def _out_path(file: object) -> Path:
    """``file`` as a Path to write, or a `ReinforceError` saying why it cannot be written."""
    if not isinstance(file, (str, os.PathLike)) or not str(file).strip():
        raise ReinforceError(f"path must be a file path, got {file!r}: pass e.g. 'policy.pt'")
    path = Path(file)
    if path.is_dir():
        raise ReinforceError(f"cannot write {path}: it is a directory; give a file name")
    if not path.parent.is_dir():
        problem = "is not a directory" if path.parent.exists() else "does not exist"
        raise ReinforceError(f"cannot write {path}: {path.parent} {problem}; give a file in an existing directory")
    if not os.access(path.parent, os.W_OK):
        raise ReinforceError(f"cannot write {path}: directory {path.parent} is not writable; give another path")
    if is_run_file(path):
        raise ReinforceError(
            f"cannot write {path}: it is one of the files of the run directory {path.parent}; give another file name"
        )
    refuse_special_file(path)
    return path


def _check_observation_space(agent: Reinforce) -> None:
    env_space = agent.env_observation_space
    if isinstance(env_space, FLATTENED_OBSERVATION_SPACES):
        raise ReinforceError(
            f"cannot export a policy for the observation space {env_space}: an exported file takes Box or "
            "Discrete observations, and reinforce flattens this one in its env wrapper, which the file does not "
            "hold; train on the env wrapped in gymnasium.wrappers.FlattenObservation to export it"
        )


def _description(agent: Reinforce) -> str:
    return json.dumps(
        {
            "env_id": agent.env_id,
            "observation_space": str(agent.observation_space),
            "action_space": str(agent.action_space),
            "input": INPUT_NAME,
            "output": OUTPUT_NAME,
            "deterministic": True,
            "versions": library_versions(),
        }
    )


def _serialize(module: DeterministicPolicy, example: Tensor, format: ExportFormat, description: str) -> bytes:
    """The file's bytes: a trace of ``module`` as TorchScript, or the same trace exported to ONNX.

    Raises:
        ReinforceError: the policy (a user's network, say) cannot be traced or exported.
    """
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as scratch:
        # torch 2.13 marks TorchScript, its tracer and its ONNX exporter deprecated; they are what is asked for
        warnings.simplefilter("ignore", DeprecationWarning)
        # a trace that took a Python branch on a tensor's value would be wrong for other observations
        warnings.simplefilter("error", torch.jit.TracerWarning)  # type: ignore[attr-defined]
        file = Path(scratch) / "policy"
        validate_args = Distribution._validate_args
        # a user's distribution checks its arguments with Python branches on tensors: checks, not the graph
        Distribution.set_default_validate_args(False)
        try:
            with torch.no_grad():
                if format == "torchscript":
                    # no check_trace: it re-runs the trace to compare, seconds of torch.testing for a graph
                    # without randomness; a Python branch on a tensor raises the TracerWarning above instead
                    traced = torch.jit.trace(module, example, check_trace=False)  # type: ignore[no-untyped-call]
                    torch.jit.save(traced, file, _extra_files={f"{METADATA_NAME}.json": description})
                    return file.read_bytes()
                torch.onnx.export(
                    module,
                    (example,),
                    file,
                    dynamo=False,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                    opset_version=ONNX_OPSET,
                )
        except Exception as exc:  # a user's network (custom body or whole policy) that the tracer cannot follow
            raise ReinforceError(
                f"cannot export the policy to {format} ({_reason(exc)}): its networks must run under torch.jit.trace, "
                "tensors in and out, with no Python branch on a tensor's value"
            ) from None
        finally:
            Distribution.set_default_validate_args(validate_args)
        return _with_metadata(file.read_bytes(), description)


def _reason(exc: BaseException) -> str:
    """The first line of ``exc``, or of the TracerWarning behind it (raised inside torch, it arrives wrapped)."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, torch.jit.TracerWarning):  # type: ignore[attr-defined]
        cause = cause.__cause__ or cause.__context__
    exc = cause or exc
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0].split('. ')[0][:200]}" if text else type(exc).__name__


def _with_metadata(model_bytes: bytes, description: str) -> bytes:
    import onnx

    model: ModelProto = onnx.load_from_string(model_bytes)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_NAME, description
    onnx.checker.check_model(model)
    serialized: bytes = model.SerializeToString()
    return serialized


def export_policy(agent_or_run_dir: Reinforce | str | Path, path: str | Path, *, format: str = "torchscript") -> Path:
    """Write the deterministic policy of an agent, or of a run directory's last checkpoint, to one file.

    The file runs without reinforce: ``torch.jit.load(path)`` for ``format="torchscript"``,
    ``onnxruntime.InferenceSession(path)`` for ``format="onnx"`` (needs ``pip install 'reinforce[export]'``).
    It maps a float32 batch of raw observations ``[B, *obs_shape]`` to the actions of
    ``predict(observations, deterministic=True)`` (see `DeterministicPolicy` for the dtypes and shapes). The
    file is written whole or not at all; an existing file of that name is replaced, unless it is one of a run
    directory's own files (config.json, a state file, ...), which is refused.

    Example:
        >>> reinforce.export_policy("runs/cartpole", "cartpole.pt")  # doctest: +SKIP
        >>> policy = torch.jit.load("cartpole.pt")  # doctest: +SKIP
        >>> policy(torch.zeros(1, 4))  # doctest: +SKIP
        tensor([0])

    Args:
        agent_or_run_dir: a `Reinforce` agent (its policy is copied, on the CPU), or a run directory
            (loaded with `reinforce.load`, on the CPU).
        path: the file to write.
        format: ``"torchscript"`` or ``"onnx"``.

    Returns:
        ``path``, as a `Path`.

    Raises:
        ReinforceError: an unknown format, onnx not installed, a path that cannot be written or is a run
            directory's own file, a file name whose suffix names the other format (``.onnx``; ``.pt``, ``.pth``,
            ``.ts``, ``.jit``), a run directory that cannot be loaded, or an observation space that reinforce
            flattens (Dict, Tuple, MultiDiscrete, MultiBinary), which the file does not take.
    """
    checked = _check_format(format)
    if checked == "onnx":
        _require_onnx()
    out = _out_path(path)
    _check_suffix(out, checked)
    if isinstance(agent_or_run_dir, Reinforce):
        agent = agent_or_run_dir
    else:
        from reinforce.saved import load

        agent = load(agent_or_run_dir, device="cpu")
    try:
        _check_observation_space(agent)
        policy = copy.deepcopy(agent.policy).cpu().eval().requires_grad_(False)
        module = DeterministicPolicy(policy, agent.action_space)
        data = _serialize(module, _example_observations(agent.observation_space), checked, _description(agent))
    finally:
        if agent is not agent_or_run_dir:
            agent.close()
    atomic_write(out, data)
    return out
