"""Methods: one module per task holds that task's points on the spectrum.

A method is an :class:`mbdl.methods.base.Method` built from ``cfg.method`` by
``hydra.utils.instantiate(..., task=task)``; its config lives in
``configs/spectrum/<task>/<method>.yaml``."""
