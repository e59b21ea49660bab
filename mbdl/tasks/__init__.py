"""Tasks: a simulator of the true model, the model the methods are told, a metric and a bound."""

from mbdl.tasks.base import Batch, Task

__all__ = ["Batch", "Task"]
