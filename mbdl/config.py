"""Validation of user options: one clear line naming the option, before any work starts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omegaconf import OmegaConf


class ConfigError(ValueError):
    """An impossible or unknown option value. The message names the option and what is valid."""


def require(condition: bool, option: str, message: str) -> None:
    """Raise :class:`ConfigError` ``"<option>: <message>"`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{option}: {message}")


def check_choice(value: Any, option: str, choices: Iterable[Any]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``, listing them."""
    choices = list(choices)
    require(value in choices, option, f"got {value!r}, valid choices are {', '.join(map(str, choices))}")


def check_positive(value: Any, option: str, *, strict: bool = True, integer: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a (strictly) positive number (integer)."""
    kind = "integer" if integer else "number"
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    ok = ok and not isinstance(value, bool) and (value > 0 if strict else value >= 0)
    require(ok, option, f"must be a {'positive' if strict else 'non-negative'} {kind}, got {value!r}")


def primary_direction(task_target: str) -> str:
    """``"maximize"`` or ``"minimize"``: the direction of the primary metric of the task class ``task_target``
    (its declared :class:`~mbdl.tasks.base.Metric`), for a sweeper's ``direction``."""
    from hydra.utils import get_class

    task = get_class(task_target)
    return task.metrics[task.primary_metric].direction


# hparams_search configs set ``direction: ${mbdl.direction:${task._target_}}``
OmegaConf.register_new_resolver("mbdl.direction", primary_direction, replace=True)
