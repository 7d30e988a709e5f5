"""The commands a user sees first: help, env, and validate on a good file."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from costbench.cli import app

runner = CliRunner()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("sweep", "report", "validate", "env"):
        assert command in result.stdout
    for command in ("sweep", "report", "validate", "env"):
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "Usage" in sub.stdout


def test_env_json_describes_the_machine() -> None:
    result = runner.invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["cpu"]["logical_cores"] >= 1
    assert set(info["cpu"]["flags"]) >= {"avx512_bf16", "amx_bf16", "amx_int8", "avx512_fp16"}
    assert info["versions"]["torch"].startswith("2.")
    assert info["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert isinstance(info["gpus"], list)


def test_env_table_names_cpu_and_versions() -> None:
    result = runner.invoke(app, ["env"])
    assert result.exit_code == 0
    assert "CPU" in result.stdout and "torch" in result.stdout and "amx_int8" in result.stdout


def test_console_script_and_module_entry_point() -> None:
    """`python -m costbench` works like the installed `costbench` script (CI and Ray workers use it)."""
    out = subprocess.run([sys.executable, "-m", "costbench", "--help"], capture_output=True, text=True, check=True)
    assert "validate" in out.stdout


def test_sweep_help_documents_the_exit_codes() -> None:
    text = " ".join(runner.invoke(app, ["sweep", "--help"], terminal_width=200).stdout.split())
    for words in ("Exit status: 0 every trial ok or skipped", "1 some trial failed (0 with --allow-failures)",
                  "2 a mistake in the input, or a full disk", "130 Ctrl-C, 143 SIGTERM, 129 SIGHUP",
                  "--allow-failures"):
        assert words in text


def test_a_report_piped_into_a_reader_that_stops_early_exits_0_quietly(tmp_path) -> None:
    from pathlib import Path

    from tests.test_report import write_run

    run = write_run(tmp_path)
    repo = Path(__file__).resolve().parents[1]
    reader_gone = subprocess.Popen([sys.executable, "-m", "costbench", "report", str(run)], cwd=repo,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader_gone.stdout.close()  # like `| head` that has read what it wanted, before anything is written
    _, stderr = reader_gone.communicate(timeout=120)
    assert reader_gone.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr and b"BrokenPipe" not in stderr and b"Exception ignored" not in stderr
