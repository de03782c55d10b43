import math

from sweeps.metrics import MetricReader, parse_line


def test_parse_line_reads_numeric_tokens_only():
    assert parse_line("epoch=3 val_loss=0.41 kernel=rbf") == {"epoch": 3.0, "val_loss": 0.41}
    assert parse_line("loss=-1.5e-3, acc=0.9; lr=1e-4") == {"loss": -1.5e-3, "acc": 0.9, "lr": 1e-4}
    assert parse_line("train/loss=2 val.acc=0.5") == {"train/loss": 2.0, "val.acc": 0.5}
    assert math.isnan(parse_line("loss=nan")["loss"])
    assert parse_line("no metrics here, x = 3") == {}
    assert parse_line("url=http://a=b") == {}


def test_reader_keeps_every_value_with_its_step_and_the_last_as_final():
    reader = MetricReader(["val_loss"])
    reader.write("starting\nepoch=1 val_loss=0.9\n")
    reader.write("epoch=2 train_loss=0.5\nepoch=2 val_loss=0.7\n")
    assert reader.values == [(1, 0.9), (2, 0.7)]
    assert reader.final == 0.7


def test_reader_counts_steps_when_the_line_has_none_and_joins_partial_writes():
    reader = MetricReader(["loss"])
    for chunk in ["lo", "ss=3\nloss", "=2\n", "loss=0"]:
        reader.write(chunk)
    assert reader.values == [(0, 3.0), (1, 2.0)]
    reader.close()
    assert reader.values == [(0, 3.0), (1, 2.0), (2, 0.0)]
    assert reader.final == 0.0


def test_reader_keeps_the_last_lines_for_failure_reasons():
    reader = MetricReader(["loss"], tail_lines=2)
    reader.write("a\nb\nc\n")
    assert reader.tail == "b\nc"
    assert reader.final is None


def test_what_a_wandb_run_logs_is_the_scripts_own_report_and_its_summary_the_final_value():
    from sweeps import wandb_runs

    reader = MetricReader(["loss"])
    reader.write(wandb_runs.line(wandb_runs.LOG, {"step": 0, "logged": {"loss": 3.0, "acc": 0.1}}) + "\n")
    reader.write("epoch 1 done\n")
    reader.write(wandb_runs.line(wandb_runs.LOG, {"step": 10, "logged": {"loss": 1.0}}) + "\n")
    assert (reader.values, reader.final, reader.printed) == ([(0, 3.0), (10, 1.0)], 1.0, True)
    reader.write(wandb_runs.line(wandb_runs.SUMMARY, {"loss": 2.0, "acc": 0.1, "best": 0.5}) + "\n")
    reader.close()
    assert reader.final == 2.0, "the summary, as W&B takes the run's value"
    assert reader.reported == {"loss": 2.0, "acc": 0.1, "best": 0.5}
    assert reader.tail == "epoch 1 done", "the tracer's lines are not the script's output"


def test_a_reader_without_a_metric_keeps_every_metric_reported():
    from sweeps import wandb_runs

    reader = MetricReader([])
    reader.write("loss=1\n" + wandb_runs.line(wandb_runs.LOG, {"step": 0, "logged": {"acc": 0.5}}) + "\n")
    assert (reader.values, reader.final, reader.reported) == ([], None, {"loss": 1.0, "acc": 0.5})
