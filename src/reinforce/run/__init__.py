"""The run directory: its files, the checkpoint, the metrics logs, plots and video."""
