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
