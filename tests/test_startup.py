import pytest

from sweeps.startup import start_or_exit
from tests.conftest import report_config


def test_start_or_exit_warns_once_about_ignored_keys(tmp_path, write_config, capsys):
    start_or_exit(write_config(report_config(tmp_path, project="p")))
    assert capsys.readouterr().err == "sweeps: W&B keys not acted on, ignored: project\n"
    with pytest.raises(SystemExit) as caught:
        start_or_exit(write_config(report_config(tmp_path, parallel=-1)))
    assert caught.value.code == "sweeps: invalid sweep config: parallel: Input should be greater than 0 (got -1)"


def test_start_or_exit_refuses_a_claimed_sqlite_file(tmp_path, write_config):
    path = write_config(report_config(tmp_path))
    start_or_exit(path)
    with pytest.raises(SystemExit) as caught:
        start_or_exit(path)
    assert (
        caught.value.code.startswith("sweeps: storage: sqlite:///")
        and "in use by another Sweeps app" in caught.value.code
    )


def test_start_or_exit_names_a_proxy_that_does_not_answer(tmp_path, write_config):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free: nothing answers there
    with pytest.raises(SystemExit) as caught:
        start_or_exit(write_config(report_config(tmp_path, storage=f"grpc://127.0.0.1:{port}")))
    assert caught.value.code.startswith(f"sweeps: storage: no gRPC storage proxy answers at grpc://127.0.0.1:{port}")
