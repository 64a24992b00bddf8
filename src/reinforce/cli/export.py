"""``reinforce export``: a run directory's policy as one TorchScript or ONNX file that runs without reinforce."""

from __future__ import annotations

from pathlib import Path

import click

from reinforce.cli.app import TRAINING_MODULES, cli, import_long_lived


@cli.command(name="export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "file_format",
    default="torchscript",
    show_default=True,
    help="torchscript (load it with torch.jit.load) or onnx (run it with onnxruntime; needs reinforce[export]).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The file to write: a float32 batch of raw observations in, the deterministic actions out.",
)
def export_command(run_dir: Path, file_format: str, out: Path) -> None:
    """Export the policy saved in RUN_DIR to one file that runs without reinforce."""
    import_long_lived(*TRAINING_MODULES)
    from reinforce.export import export_policy

    export_policy(run_dir, out, format=file_format)
    click.echo(f"wrote {out} ({file_format})")
