"""Validation of user options: one clear line naming the option, before any work starts.

Two passes refuse a bad option. :func:`preflight` runs on the composed config before torch or Lightning is
imported (a fraction of a second): values that no option may take (NaN, infinities, integers beyond 64 bits), the
options of ``config.yaml``, the runner's own keys (``method.optim``, ``regime``, ``trainer``), and the checks that a
task's or method's constructor declares on its own arguments, read from its source (:func:`declared_checks`).
The constructors then run every check again, and the ones :func:`preflight` cannot read (conditions between
options, the memory the data sets need), once torch is imported and before any data are simulated.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.machinery
import importlib.util
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


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


def check_bool(value: Any, option: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` is ``true`` or ``false`` (``resume=maybe`` is not)."""
    require(isinstance(value, bool), option, f"must be true or false, got {value!r}")


def primary_direction(task_target: str) -> str:
    """``"maximize"`` or ``"minimize"``: the direction of the primary metric of the task class ``task_target``
    (its declared :class:`~mbdl.tasks.base.Metric`), for a sweeper's ``direction``."""
    from hydra.utils import get_class

    task = get_class(task_target)
    return task.metrics[task.primary_metric].direction


def same_job(overrides: Iterable[str]) -> tuple[str, ...]:
    """The overrides that define a job, in a canonical order: ``resume=`` changes no result and is left out."""
    return tuple(sorted(o for o in overrides if not o.lstrip("+~").startswith("resume=")))


def job_key(overrides: Iterable[str]) -> str:
    """Eight hex digits that name a job by all of its overrides (a sweep's job directory ends with them), so that a
    job keeps its directory in any grid that holds it and two different jobs never share one."""
    return hashlib.sha1("\n".join(same_job(overrides)).encode()).hexdigest()[:8]


# configs/hydra/launcher/joblib.yaml takes the joblib launcher's options by Hydra's matching of a config file to the
# schema of the same name, on purpose; the notice (in the sweep's process and in every worker) is for accidents
warnings.filterwarnings("ignore", message="\n'hydra/launcher/joblib' is validated against ConfigStore schema")
# hparams_search configs set ``direction: ${mbdl.direction:${task._target_}}``
OmegaConf.register_new_resolver("mbdl.direction", primary_direction, replace=True)
# configs/hydra/default.yaml names a sweep's job directories ``..._${mbdl.job_key:${hydra.overrides.task}}``
OmegaConf.register_new_resolver("mbdl.job_key", lambda overrides: job_key(list(overrides)), replace=True)

#: the largest seed: numpy's (and so Lightning's) seeds are 32-bit.
MAX_SEED = 2**32 - 1
#: trainer keys that the runner sets, and the option that sets each.
RUNNER_TRAINER_KEYS = {
    "max_epochs": "method.optim.epochs (the epochs of every fit)",
    "logger": "logger=csv|wandb|[csv,wandb] or ~logger",
    "callbacks": "nothing: the runner keeps the best weights itself",
    "default_root_dir": "paths.root (or hydra.run.dir)",
}


def _leaves(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every ``(dotted path, value)`` of a resolved config tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{path}[{index}]")
    else:
        yield path, node


def check_values(tree: dict[str, Any]) -> None:
    """Refuse a value that no option takes: NaN or an infinity (``task.snr_db=-inf``), an integer beyond 64 bits."""
    for path, value in _leaves(tree, ""):
        if isinstance(value, float):
            require(math.isfinite(value), path, f"must be a finite number, got {value}")
        elif isinstance(value, int) and not isinstance(value, bool):
            require(abs(value) < 2**63, path, f"is too large for a 64-bit integer, got {value}")


def check_runner_options(cfg: DictConfig) -> None:
    """The options of ``config.yaml`` and the keys the runner itself reads (``regime``, ``method.optim``, ``trainer``)."""
    seed = cfg.get("seed")
    require(isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED, "seed", f"must be an integer in [0, {MAX_SEED}] (numpy's seeds are 32-bit), got {seed!r}")
    if cfg.get("threads") is not None:
        check_positive(cfg.threads, "threads", integer=True)
    check_bool(cfg.get("resume", False), "resume")
    if cfg.get("weights") is not None:
        require(Path(str(cfg.weights)).is_file(), "weights", f"{str(cfg.weights)!r} is not a file (a run's weights.pt, or null)")
    for option in ("n_train", "n_val", "n_test"):
        if cfg.task.get(option) is not None:  # null: the task's own choice (e.g. every image of a test folder)
            check_positive(cfg.task[option], f"task.{option}", integer=True)
    regime = cfg.get("regime") or {}
    if regime.get("n_train") is not None:
        check_positive(regime.n_train, "regime.n_train", integer=True)
    for option in ("fresh_data", "warm_start"):
        if option in regime:
            check_bool(regime[option], f"regime.{option}")
    for index, decay in enumerate(regime.get("lr_decay") or []):
        check_positive(decay, f"regime.lr_decay[{index}]")
    optim = cfg.method.get("optim") or {}
    if "epochs" in optim:
        check_positive(optim.epochs, "method.optim.epochs", strict=False, integer=True)
    if "batch_size" in optim:
        check_positive(optim.batch_size, "method.optim.batch_size", integer=True)
    if "lr" in optim:
        check_positive(optim.lr, "method.optim.lr")
    trainer = cfg.get("trainer") or {}
    for key, owner in RUNNER_TRAINER_KEYS.items():
        require(key not in trainer, f"trainer.{key}", f"is set by the runner from {owner}; remove trainer.{key}")
    if trainer.get("gradient_clip_val") is not None:
        check_positive(trainer.gradient_clip_val, "trainer.gradient_clip_val", strict=False)
    for key in ("log_every_n_steps", "check_val_every_n_epoch"):
        if key in trainer:
            check_positive(trainer[key], f"trainer.{key}", integer=True)


@dataclass(frozen=True)
class DeclaredCheck:
    """One ``check_choice`` or ``check_positive`` call of a constructor on one of its arguments."""

    function: str
    parameter: str
    option: str
    choices: tuple[Any, ...] = ()
    strict: bool = True
    integer: bool = False
    unless_none: bool = False

    def apply(self, value: Any) -> None:
        """Run the same check the constructor runs on ``value``."""
        if self.unless_none and value is None:
            return
        if self.function == "check_choice":
            check_choice(value, self.option, self.choices)
        else:
            check_positive(value, self.option, strict=self.strict, integer=self.integer)


def _source(module: str) -> Path | None:
    """The source file of ``module``, found without importing it or its packages (their imports are torch's)."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)
    for part in rest:
        if spec is None or spec.submodule_search_locations is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _constants(tree: ast.Module) -> dict[str, Any]:
    """The module's ``NAME = <literal>`` assignments (the tuples of choices)."""
    constants = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else getattr(node, "target", None)
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(target, ast.Name) and node.value is not None:
            try:
                constants[target.id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return constants


def _read_check(call: ast.expr, parameters: set[str], constants: dict[str, Any], bindings: dict[str, str] | None = None) -> DeclaredCheck | None:
    """The check of one call ``check_choice(p, "opt", CHOICES)`` or ``check_positive(p, "opt", strict=..., integer=...)``
    on a parameter ``p``; inside a ``for option, value in (("n", n), ...)`` loop, ``bindings`` maps the loop names."""
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in ("check_choice", "check_positive") and len(call.args) >= 2):
        return None
    bindings = bindings or {}
    name, option = call.args[0], call.args[1]
    if not isinstance(name, ast.Name):
        return None
    parameter = bindings.get(name.id, name.id)
    if isinstance(option, ast.Constant) and isinstance(option.value, str):
        option_text = option.value
    elif isinstance(option, ast.JoinedStr) and all(isinstance(v, ast.Constant) or (isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name) and f"{v.value.id}:text" in bindings) for v in option.values):
        option_text = "".join(str(v.value) if isinstance(v, ast.Constant) else bindings[f"{v.value.id}:text"] for v in option.values)
    else:
        return None
    if parameter not in parameters:
        return None
    keywords = {k.arg: k.value.value for k in call.keywords if isinstance(k.value, ast.Constant)}
    if call.func.id == "check_choice":
        if len(call.args) < 3:
            return None
        choices = call.args[2]
        value = constants.get(choices.id) if isinstance(choices, ast.Name) else None
        if value is None and not isinstance(choices, ast.Name):
            try:
                value = ast.literal_eval(choices)
            except ValueError:
                return None
        if not isinstance(value, (tuple, list, set, frozenset)):
            return None
        return DeclaredCheck("check_choice", parameter, option_text, choices=tuple(value))
    if len(keywords) != len(call.keywords):
        return None
    return DeclaredCheck("check_positive", parameter, option_text, strict=keywords.get("strict", True), integer=keywords.get("integer", False))


def _loop_checks(loop: ast.For, parameters: set[str], constants: dict[str, Any]) -> list[DeclaredCheck]:
    """``for option, value in (("n", n), ("m", m)): check_positive(value, f"task.{option}", ...)`` unrolled."""
    target, items = loop.target, loop.iter
    if not (isinstance(target, ast.Tuple) and len(target.elts) == 2 and all(isinstance(e, ast.Name) for e in target.elts) and isinstance(items, (ast.Tuple, ast.List))):
        return []
    if loop.orelse or len(loop.body) != 1 or not isinstance(loop.body[0], ast.Expr):
        return []
    label, value = (e.id for e in target.elts)
    checks = []
    for item in items.elts:
        if not (isinstance(item, ast.Tuple) and len(item.elts) == 2 and isinstance(item.elts[0], ast.Constant) and isinstance(item.elts[1], ast.Name)):
            return []
        bindings = {value: item.elts[1].id, f"{label}:text": str(item.elts[0].value)}
        check = _read_check(loop.body[0].value, parameters, constants, bindings)
        if check is None:
            return []
        checks.append(check)
    return checks


@functools.cache
def declared_checks(target: str) -> tuple[DeclaredCheck, ...]:
    """The checks that the constructor of ``target`` (a class's ``__init__``, or a function) runs on its own arguments
    before anything else could change them, read from its source without importing it: calls of :func:`check_choice`
    and :func:`check_positive` at the top of its body, in ``for option, value in ((name, arg), ...)`` loops, and under
    ``if arg is not None``. Checks written any other way are left to the constructor (they run after the imports)."""
    module, _, name = target.rpartition(".")
    path = _source(module) if module else None
    if path is None:
        return ()
    tree = ast.parse(path.read_text())
    definition = next((n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == name), None)
    if isinstance(definition, ast.ClassDef):
        definition = next((n for n in definition.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if definition is None:
        return ()
    arguments = definition.args
    parameters = {a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)}
    constants = _constants(tree)
    checks: list[DeclaredCheck] = []
    for statement in definition.body:
        if isinstance(statement, ast.Expr) and (check := _read_check(statement.value, parameters, constants)):
            checks.append(check)
        elif isinstance(statement, ast.For):
            checks += _loop_checks(statement, parameters, constants)
        elif isinstance(statement, ast.If) and not statement.orelse and _is_not_none(statement.test, parameters):
            guarded = [_read_check(s.value, parameters, constants) if isinstance(s, ast.Expr) else None for s in statement.body]
            checks += [replace(c, unless_none=True) for c in guarded if c is not None and c.parameter == statement.test.left.id]
        elif isinstance(statement, (ast.Expr, ast.Assign, ast.AnnAssign, ast.AugAssign)):
            # another call or an assignment may rebind an argument: its later checks are the constructor's
            parameters -= {n.id for n in ast.walk(statement) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        else:  # control flow (if, return, try, ...): whether what follows runs depends on more than the arguments
            break
    return tuple(checks)


def _is_not_none(test: ast.expr, parameters: set[str]) -> bool:
    """Whether ``test`` is ``<argument> is not None``."""
    return (
        isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id in parameters
        and len(test.ops) == 1 and isinstance(test.ops[0], ast.IsNot) and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value is None
    )


def check_declared(tree: dict[str, Any], path: str = "") -> None:
    """Apply :func:`declared_checks` to every node of ``tree`` that has a ``_target_``, on the arguments it passes."""
    if not isinstance(tree, dict):
        return
    target = tree.get("_target_")
    if isinstance(target, str):
        for check in declared_checks(target):
            if check.option == f"{path}.{check.parameter}" and check.parameter in tree:
                check.apply(tree[check.parameter])
    for key, value in tree.items():
        check_declared(value, f"{path}.{key}" if path else str(key))


def preflight(cfg: DictConfig, *, declared: bool = True) -> None:
    """The checks of a job's composed config that need neither torch nor Lightning; raises :class:`ConfigError`.

    ``declared=False`` leaves out the constructors' checks (:func:`check_declared`): a multirun's base config holds
    the default task and method, not every job's.
    """
    tree = {}
    for key in cfg:
        if key == "hydra":
            continue
        try:  # a key that cannot be resolved yet (the logger's run directory, before the run starts) is left to the job
            tree[key] = OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
        except OmegaConfBaseException:
            continue
    check_runner_options(cfg)
    check_values(tree)
    if declared:
        check_declared({key: tree[key] for key in ("task", "method") if key in tree})


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of ``/proc/meminfo``; free pages elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _bytes(size: float) -> str:
    """``1.9 TiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.3g} {unit}"
        size /= 1024
    raise AssertionError


def check_memory(samples: dict[str, int], bytes_per_sample: int, available: int | None = None) -> None:
    """Refuse data sets that cannot fit in memory: ``samples`` maps each size option to the samples it holds; the
    estimate (``bytes_per_sample`` times their sum, what the data alone need) must not exceed ``available``
    (default :func:`available_memory`). The option named is the largest set."""
    available = available_memory() if available is None else available
    total = sum(samples.values())
    need = total * bytes_per_sample
    if available is None or need <= available:
        return
    option = max(samples, key=samples.__getitem__)
    raise ConfigError(f"{option}: the data sets need about {_bytes(need)} ({total} samples of {bytes_per_sample} B), more than the {_bytes(available)} of memory available")


def check_writable(directory: str | Path, option: str, under: str | Path | None = None) -> Path:
    """Refuse a run or sweep directory that cannot be created (a read-only folder, a file in its path); return the
    nearest folder of its path that exists (nothing is created). ``under``: the folder the message names (the
    directory itself by default)."""
    directory = Path(directory).absolute()
    place = f"a directory under {under}" if under is not None else str(directory)
    existing = directory
    while not existing.exists():
        existing = existing.parent
    require(existing.is_dir(), option, f"cannot create {place}: {existing} is not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".mbdl-write-test-"))
    except OSError as error:
        raise ConfigError(f"{option}: cannot create {place}: {existing} is not writable ({error.strerror})") from None
    return existing


def sweep_grid(config: DictConfig) -> list[list[str]] | None:
    """The jobs of a multirun with Hydra's basic sweeper, each as its list of overrides (``None`` for other sweepers,
    e.g. Optuna's, whose trials are drawn as it goes)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if config.hydra.sweeper.get("_target_") != f"{BasicSweeper.__module__}.{BasicSweeper.__name__}":
        return None
    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    overrides = OverridesParser.create().parse_overrides(arguments)
    return [list(job) for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
