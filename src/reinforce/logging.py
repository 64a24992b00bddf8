"""Metrics sinks of a run directory."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO


class CSVLogger:
    """Appends one row per call to a CSV file with a fixed header, flushed after every row."""

    def __init__(self, path: Path, fieldnames: Sequence[str]) -> None:
        self.path = path
        self._file: IO[str] = path.open("w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=list(fieldnames), extrasaction="ignore")
        self._writer.writeheader()
        self._file.flush()

    def write(self, row: Mapping[str, object]) -> None:
        """Write one row; keys outside the header are ignored, missing ones left empty."""
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()
