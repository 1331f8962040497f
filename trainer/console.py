"""A readable console: the notices, warnings and progress bars of libraries that say nothing a
turnwise user can act on are turned off before a run starts."""

from __future__ import annotations

import os
import warnings


def quiet_libraries() -> None:
    """Silence what every run would otherwise print, whatever the recipe."""
    import torch

    # accelerate imports DeepSpeed whenever transformers saves a model (torch backend too), and
    # DeepSpeed then warns "Setting accelerator to CPU ... unable to detect it" on any machine
    # without a GPU. Naming the CPU picks what it would pick, without the warning.
    if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"
    # DeepSpeed's ZeRO collectives call torch.distributed functions that torch deprecates, one
    # FutureWarning per call (315 lines in a short two-rank run).
    warnings.filterwarnings("ignore", message=r"`torch\.distributed\.\w+` is deprecated",
                            category=FutureWarning)
    _quiet_weight_bars()


def _quiet_weight_bars() -> None:
    """transformers' "Loading weights" and "Writing model shards" bars (a tiny model, loaded and
    saved many times a run); the hub's download bars stay as they were."""
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging

    downloads_shown = not are_progress_bars_disabled()
    logging.disable_progress_bar()  # also turns the hub's off
    if downloads_shown:
        enable_progress_bars()
