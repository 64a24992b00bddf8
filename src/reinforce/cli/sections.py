"""The sections of ``train --help`` (and of ``config`` and ``sweep``), with one style for defaults and ranges.

`OPTION_SECTIONS` is the table of option -> section; `SectionedCommand` writes the help by it.
"""

from __future__ import annotations

import re

import click

SECTIONS = (
    "Sweep options",
    "Run options",
    "Algorithm options",
    "Network options",
    "Continuous-action options",
    "Environment and compute options",
    "Distributed (Ray) options",
)
"""The sections (their headings), in the order the help shows them; a command shows those it has options in."""

OPTION_SECTIONS = {
    # what the run is, where it goes, how it is watched
    "--config": "Run options",
    "--preset": "Run options",
    "--seed": "Run options",
    "--total-steps": "Run options",
    "--run-dir": "Run options",
    "--resume": "Run options",
    "--checkpoint-every": "Run options",
    "--eval-episodes": "Run options",
    "--eval-every": "Run options",
    "--reward-threshold": "Run options",
    "--stop-on-solve": "Run options",
    "--solve-criterion": "Run options",
    "--verify-every": "Run options",
    "--verify-episodes": "Run options",
    "--tensorboard": "Run options",
    "--quiet": "Run options",
    "--help": "Run options",
    # reinforce sweep
    "--seeds": "Sweep options",
    "--grid": "Sweep options",
    "--out": "Sweep options",
    # the estimator and its optimisation
    "--episodes-per-update": "Algorithm options",
    "--gamma": "Algorithm options",
    "--reward-to-go": "Algorithm options",
    "--discount-gradient": "Algorithm options",
    "--baseline": "Algorithm options",
    "--return-normalization": "Algorithm options",
    "--bootstrap-truncated": "Algorithm options",
    "--entropy-coef": "Algorithm options",
    "--loss-reduction": "Algorithm options",
    "--update": "Algorithm options",
    "--lr": "Algorithm options",
    "--optimizer": "Algorithm options",
    "--lr-schedule": "Algorithm options",
    "--max-grad-norm": "Algorithm options",
    "--value-lr": "Algorithm options",
    "--value-steps": "Algorithm options",
    # the networks
    "--hidden-sizes": "Network options",
    "--activation": "Network options",
    "--init": "Network options",
    "--value-hidden-sizes": "Network options",
    "--normalize-observations": "Network options",
    # Box action spaces
    "--action-squash": "Continuous-action options",
    "--log-std": "Continuous-action options",
    "--log-std-init": "Continuous-action options",
    # where the episodes are collected and the tensors computed
    "--env-kwargs": "Environment and compute options",
    "--num-envs": "Environment and compute options",
    "--vectorization-mode": "Environment and compute options",
    "--device": "Environment and compute options",
    "--num-threads": "Environment and compute options",
    # rollouts on Ray
    "--backend": "Distributed (Ray) options",
    "--workers": "Distributed (Ray) options",
    "--envs-per-worker": "Distributed (Ray) options",
    "--address": "Distributed (Ray) options",
}
"""The section of each option of the sectioned commands, by its first long flag (``--reward-to-go`` for
``--reward-to-go/--no-reward-to-go``). A new option needs one line here: one that is missing is shown under
`UNSORTED` and fails ``tests/integration/test_cli.py::test_every_option_is_in_exactly_one_help_section``."""

COMMAND_SECTIONS = {("train", "--seeds"): "Run options"}
"""Where a command lists an option elsewhere than `OPTION_SECTIONS` says: ``train --seeds`` (a population of
runs) beside ``--seed``, where ``sweep`` lists it with its grid."""

UNSORTED = "Other options"
"""The section of an option missing from `OPTION_SECTIONS`."""

_EXTRA = re.compile(r"\s*\[(?P<body>default: [^\[\]]*|[^\[\]]*x[<>]=?[^\[\]]*)\]\.?")
"""A ``[default: ...]`` of a field's help, or click's own ``[default: 10; x>=0]`` / ``[x>=0]``."""


def option_section(option: click.Option, command: str | None = None) -> str:
    """The section of ``option`` in ``command``'s help (`COMMAND_SECTIONS`, `OPTION_SECTIONS`, or `UNSORTED`)."""
    key = section_key(option)
    return COMMAND_SECTIONS.get((command or "", key)) or OPTION_SECTIONS.get(key, UNSORTED)


def section_key(option: click.Option) -> str:
    """The flag that names ``option`` in `OPTION_SECTIONS`: its first long flag."""
    return next((flag for flag in option.opts if flag.startswith("--")), option.opts[0])


_INLINE = re.compile(
    r"(?P<space>\s*)\((?P<before>[^()]*?)(?:; )?default: (?P<value>[^;()]*?)(?:; (?P<after>[^()]*))?\)"
)
"""A default written in a field's docstring: ``(default: X)``, ``(default: X; more)`` or ``(some; default: X)``."""


def one_style(help_text: str) -> str:
    """``help_text`` with its default and range written once, at the end: ``... [default: 10; x>=0]``."""
    parts: list[str] = []

    def inline_default(match: re.Match[str]) -> str:
        parts.append(f"default: {match.group('value')}")
        rest = [part for part in (match.group("before").rstrip("; "), match.group("after")) if part]
        return f"{match.group('space')}({'; '.join(rest)})" if rest else ""

    text = _INLINE.sub(inline_default, help_text.replace("``", ""))
    for match in _EXTRA.finditer(text):
        parts += [part.strip() for part in match.group("body").split(";") if part.strip()]
    text = _EXTRA.sub("", text).rstrip()
    if not parts:
        return text
    parts.sort(key=lambda part: not part.startswith("default:"))  # the default first, then the range
    return f"{text} [{'; '.join(parts)}]"


class SectionedCommand(click.Command):
    """A command whose help lists its options in `SECTIONS` (by `OPTION_SECTIONS`), defaults in one style."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the options, one section after another."""
        sections: dict[str, list[tuple[str, str]]] = {name: [] for name in (*SECTIONS, UNSORTED)}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None or not isinstance(param, click.Option):
                continue
            sections[option_section(param, self.name)].append((record[0], one_style(record[1])))
        for name, rows in sections.items():
            if rows:
                with formatter.section(name):
                    formatter.write_dl(rows)
