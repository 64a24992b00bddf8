"""Metrics sinks of a run directory."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO


class CSVLogger:
    """Appends one row per call to a CSV file with a fixed header, flushed after every row.

    An existing non-empty file is continued (its header is kept), so a second ``learn`` call on the same run
    directory adds rows instead of replacing them.
    """

    def __init__(self, path: Path, fieldnames: Sequence[str]) -> None:
        self.path = path
        is_new = not path.exists() or path.stat().st_size == 0
        self._file: IO[str] = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=list(fieldnames), extrasaction="ignore")
        if is_new:
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: Mapping[str, object]) -> None:
        """Write one row; keys outside the header are ignored, missing ones left empty."""
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()
