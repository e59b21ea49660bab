"""TensorBoard and MLflow: a two-job sweep (one job fails) read back through each tool's own API, and their bad options.

One subprocess (~15 s): both trackers at once, two joblib workers opening one new MLflow SQLite store together.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from mbdl.config import ConfigError
from mbdl.results.loggers import _extra, mlflow_logger, tensorboard_logger
from mbdl.results.record import read_records
from tests.helpers import TINY, job_lr, run_cli, sweep_dir

ITERATIONS = 3


@pytest.fixture(scope="module")
def tracked_sweep(tmp_path_factory) -> tuple[Path, dict[float, dict]]:
    """A sane learning rate and one that makes the loss non-finite, logged to TensorBoard and MLflow by two joblib workers."""
    outputs = tmp_path_factory.mktemp("trackers") / "outputs"
    done = run_cli("-m", "logger=[tensorboard,mlflow]", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "method=unfolded",
                   f"method.iterations={ITERATIONS}", "method.optim.lr=1e-3,1e12", *TINY, "method.optim.epochs=2", outputs=outputs)
    assert done.returncode == 1, done.stderr[-3000:]  # a sweep with a failed job exits 1 (docs/reliability.md)
    assert "could not finish" not in done.stderr
    records = {job_lr(r): r for r in read_records(sweep_dir(outputs))}
    assert records[1e-3]["status"] == "ok" and records[1e12]["status"] == "failed"
    return outputs, records


def scalars(accumulator: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_tensorboard_holds_hparams_test_metrics_bounds_curve_and_status(tracked_sweep):
    _, records = tracked_sweep
    for record in records.values():
        events = EventAccumulator(str(Path(record["run_dir"]) / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
        events.Reload()
        hparams = events.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"]).session_start_info.hparams
        assert start["method.optim.lr"].number_value == pytest.approx(job_lr(record)) and start["task.n"].number_value == 20
        assert start["task.name"].string_value == "sparse_recovery" and start["seed"].number_value == record["seed"]
        experiment = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/experiment"]).experiment
        metric_names = {info.name.tag for info in experiment.metric_infos}
        status = events.Tensors("status/text_summary")[-1].tensor_proto.string_val[0].decode()
        if record["status"] == "ok":
            assert metric_names == {f"{split}/{m}" for split in ("val", "test") for m in ("nmse_db", "support_f1")} | {"bound/nmse_db"}, "the HParams columns: metrics and bound"
            for key in metric_names:
                assert scalars(events, key)[-1][1] == pytest.approx(record[key], rel=1e-6)
            assert [step for step, _ in scalars(events, "curve/nmse_db")] == list(range(1, ITERATIONS + 1))
            assert [v for _, v in scalars(events, "curve/nmse_db")] == pytest.approx(record["curve/nmse_db"], rel=1e-6)
            assert scalars(events, "params") == [(0, record["params"])]
            assert events.Images("figure"), "the run's figure"
            assert status == "ok"
        else:
            assert not metric_names and "test/nmse_db" not in events.Tags()["scalars"]
            assert status.startswith("failed: FloatingPointError: non-finite")


def test_mlflow_holds_params_metrics_tags_figure_and_status(tracked_sweep):
    from mlflow.tracking import MlflowClient

    outputs, records = tracked_sweep
    client = MlflowClient(f"sqlite:///{outputs / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mbdl")
    assert experiment.artifact_location == str(outputs / "mlartifacts")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.task = 'sparse_recovery' and tags.method = 'unfolded'")
    assert len(runs) == 2, "one MLflow run per job, both jobs' workers writing to one new store"
    by_dir = {run.data.tags["run_dir"]: run for run in runs}
    for record in records.values():
        run = by_dir[record["run_dir"]]
        assert run.info.run_name == "sparse_recovery-unfolded-supervised-seed0"
        assert float(run.data.params["method.optim.lr"]) == job_lr(record) and run.data.params["task.n"] == "20"
        assert run.data.params["method.iterations"] == str(ITERATIONS) and run.data.tags["group"] == Path(record["run_dir"]).parent.name
        artifacts = [artifact.path for artifact in client.list_artifacts(run.info.run_id)]
        if record["status"] == "ok":
            assert run.info.status == "FINISHED" and run.data.tags["status"] == "ok"
            for key in ("test/nmse_db", "test/support_f1", "bound/nmse_db", "params", "train_time_s"):
                assert run.data.metrics[key] == pytest.approx(record[key], rel=1e-6), key
            history = sorted(client.get_metric_history(run.info.run_id, "curve/nmse_db"), key=lambda m: m.step)
            assert [m.step for m in history] == list(range(1, ITERATIONS + 1))
            assert [m.value for m in history] == pytest.approx(record["curve/nmse_db"], rel=1e-6)
            assert artifacts == ["figure.png"]
        else:
            assert run.info.status == "FAILED" and run.data.tags["status"] == "failed"
            assert run.data.tags["error"] == record["error"] and not any(k.startswith("test/") for k in run.data.metrics)
            assert artifacts == []
        assert all(math.isfinite(v) for v in run.data.metrics.values())


@pytest.mark.parametrize(("build", "option"), [
    (lambda: mlflow_logger(tracking_uri="outputs/mlflow.db"), "logger.mlflow.tracking_uri"),
    (lambda: mlflow_logger(tracking_uri="sqlite:///x.db", experiment_name=""), "logger.mlflow.experiment_name"),
    (lambda: tensorboard_logger(save_dir=".", name="a/b"), "logger.tensorboard.name"),
])
def test_a_bad_tracker_option_is_one_line_naming_it(build, option):
    with pytest.raises(ConfigError, match=f"^{option}: ") as error:
        build()
    assert "\n" not in str(error.value)


def test_a_missing_tracker_package_names_the_extra_that_installs_it():
    with pytest.raises(ConfigError, match=r"^logger=mlflow needs the package not_installed_anywhere: pip install 'mbdl\[mlflow\]'$"):
        with _extra("mlflow"):
            import not_installed_anywhere  # noqa: F401
