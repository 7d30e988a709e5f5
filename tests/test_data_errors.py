"""Every way a user's file can be bad: one line naming the file, the column and the row, and the fix;
caught by check_data before any trial starts, and exit status 2 through `costbench sweep`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from costbench.cli import app
from costbench.data.load import check_data, load_data
from costbench.errors import UserError
from costbench.spec import DataConfig

GOOD = pd.DataFrame({
    "PageValues": np.linspace(0, 50, 40),
    "Month": ["Feb", "Mar", "May", "Nov"] * 10,
    "Revenue": [True, False, False, False] * 10,
})


def csv(tmp_path: Path, frame: pd.DataFrame = GOOD, name: str = "sessions.csv") -> Path:
    frame.to_csv(tmp_path / name, index=False)
    return tmp_path / name


def text(tmp_path: Path, content: str | bytes, name: str = "sessions.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def cfg_for(path: Path, **overrides) -> DataConfig:
    source = "parquet" if path.suffix == ".parquet" else "csv"
    return DataConfig(**{"source": source, "path": str(path), "label": "Revenue", **overrides})


def with_column(**columns) -> pd.DataFrame:
    return GOOD.assign(**columns)


# (case id, build(tmp_path) -> (path, config overrides), the message, as a regex)
CASES = [
    ("missing file", lambda t: (t / "nope.csv", {}), r"nope\.csv: no such file; check data\.path"),
    ("directory", lambda t: (t, {}), r"is a directory, not a csv file"),
    ("empty file", lambda t: (text(t, ""), {}), r"sessions\.csv: the file is empty"),
    ("blank lines only", lambda t: (text(t, "\n\n\n"), {}), r"holds no header and no rows"),
    ("header only", lambda t: (text(t, "PageValues,Revenue\n"), {}),
     r"has columns \(PageValues, Revenue\) but no rows"),
    ("unparseable csv", lambda t: (text(t, "PageValues,Revenue\n1,True\n2,False,7\n"), {}),
     r"cannot parse as CSV: .*line 3"),
    ("parquet read as csv", lambda t: (_parquet(t), {"source": "csv"}),
     r"this is a Parquet file, not CSV; set data\.source: parquet"),
    ("csv read as parquet", lambda t: (csv(t), {"source": "parquet"}),
     r"cannot read as Parquet \(Parquet magic bytes not found in footer.*\); "
     r"it looks like text: set data\.source: csv"),
    ("garbage parquet", lambda t: (text(t, b"\x00\x01\x02\x03garbage", "x.parquet"), {}),
     r"x\.parquet: cannot read as Parquet \([^)]*\)$"),
    ("label absent", lambda t: (csv(t), {"label": "revenue"}),
     r"label column 'revenue' is not in the file \(did you mean 'Revenue'\?\); "
     r"its columns: PageValues, Month, Revenue"),
    ("label with three values", lambda t: (csv(t, with_column(Revenue=["yes", "no", "maybe", "no"] * 10)), {}),
     r"label column 'Revenue' has 3 values \('yes' \(10 rows\), 'no' \(20 rows\), 'maybe' \(10 rows\)\); "
     r"a bought / not-bought label needs exactly two"),
    ("label with one class", lambda t: (csv(t, with_column(Revenue=False)), {}),
     r"label column 'Revenue' holds only 'False' \(40 rows\); a model needs both bought and not-bought rows"),
    ("positive not present", lambda t: (csv(t, with_column(Revenue=["Bought", "Left"] * 20)), {"positive": "Buoght"}),
     r"data\.positive 'Buoght' is not a value of label column 'Revenue' \(did you mean 'Bought'\?\); "
     r"its values: 'Bought', 'Left'"),
    ("positive unknown", lambda t: (csv(t, with_column(Revenue=["Bought", "Left"] * 20)), {}),
     r"which value of label column 'Revenue' means bought\? set data\.positive to one of 'Bought', 'Left'"),
    ("label empty in a row", lambda t: (csv(t, with_column(Revenue=[True, False, None, False] * 10)), {}),
     r"label column 'Revenue' is empty in row 3 \(line 4\); fill it in or remove the row"),
    ("numeric column absent", lambda t: (csv(t), {"numeric": ["PageValue"]}),
     r"data\.numeric names column 'PageValue', which is not in the file \(did you mean 'PageValues'\?\)"),
    ("categorical column absent", lambda t: (csv(t), {"categorical": ["month"]}),
     r"data\.categorical names column 'month', which is not in the file \(did you mean 'Month'\?\)"),
    ("drop column absent", lambda t: (csv(t), {"drop": ["session_id"]}),
     r"data\.drop names column 'session_id', which is not in the file"),
    ("log1p column absent", lambda t: (csv(t), {"log1p": ["PageValue"]}),
     r"data\.log1p names column 'PageValue', which is not in the file"),
    ("log1p of a categorical", lambda t: (csv(t), {"log1p": ["Month"]}),
     r"data\.log1p names column 'Month', which is not numeric here"),
    ("label as a feature", lambda t: (csv(t), {"numeric": ["Revenue"]}),
     r"data\.numeric names the label column 'Revenue'"),
    ("column listed twice", lambda t: (csv(t), {"numeric": ["Month"], "categorical": ["Month"]}),
     r"column 'Month' is listed under both data\.numeric and data\.categorical"),
    ("text in a listed numeric column",
     lambda t: (csv(t, with_column(Month=["1", "2", "3", "4"] * 9 + ["5", "six", "7", "8"])), {"numeric": ["Month"]}),
     r"column 'Month' is numeric but row 38 \(line 39\) holds 'six'; fix that value, or list 'Month' under "
     r"data\.categorical"),
    ("text in an inferred numeric column",
     lambda t: (csv(t, with_column(PageValues=[str(v) for v in range(39)] + ["12,5"])), {}),
     r"column 'PageValues' is numeric but row 40 \(line 41\) holds '12,5'"),
    ("dates", lambda t: (_parquet(t, with_column(Seen=pd.date_range("2026-01-01", periods=40))), {}),
     r"column 'Seen' holds dates or times.*add it to data\.drop"),
    ("no feature columns", lambda t: (csv(t), {"drop": ["PageValues", "Month"]}),
     r"no feature columns left besides the label 'Revenue'"),
    ("too few positives to split", lambda t: (csv(t, with_column(Revenue=[True] * 2 + [False] * 38)), {}),
     r"the (val|test) split gets no bought rows"),
    ("test file lacks a column", lambda t: (csv(t), {"test_path": str(csv(t, GOOD.drop(columns="Month"), "t.csv"))}),
     r"t\.csv: column 'Month' \(a feature of the main file\) is not in this file"),
    ("test file lacks the label", lambda t: (csv(t), {"test_path": str(csv(t, GOOD.drop(columns="Revenue"), "t.csv"))}),
     r"t\.csv: label column 'Revenue' is not in the test file"),
    ("test file with another label value",
     lambda t: (csv(t), {"test_path": str(csv(t, with_column(Revenue=["True", "False", "Maybe", "False"] * 10),
                                              "t.csv"))}),
     r"t\.csv: label column 'Revenue' holds 'Maybe', which the main file sessions\.csv never has"),
    ("test file with one class", lambda t: (csv(t), {"test_path": str(csv(t, with_column(Revenue=False), "t.csv"))}),
     r"t\.csv: the test split gets no bought rows \(40 rows, 0 bought\); a test file needs both"),
    ("missing test file", lambda t: (csv(t), {"test_path": str(t / "holdout.csv")}),
     r"holdout\.csv: no such file; check data\.test_path"),
]


def _parquet(tmp_path: Path, frame: pd.DataFrame = GOOD) -> Path:
    path = tmp_path / "sessions.parquet"
    frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize(("build", "message"), [(b, m) for _, b, m in CASES], ids=[c[0] for c in CASES])
def test_bad_file_is_one_clear_line(tmp_path, build, message):
    path, overrides = build(tmp_path)
    cfg = cfg_for(path, **overrides)
    with pytest.raises(UserError) as checked:
        check_data(cfg)
    line = str(checked.value)
    assert "\n" not in line
    assert re.search(message, line), line
    assert checked.value.exit_code == 2
    # the file is named: the main file, or the test file the case is about
    assert re.search(r"(sessions|nope|x|t|holdout)\.(csv|parquet)|is a directory", line), line
    # load_data says exactly the same, with and without a cache folder
    for cache in (None, tmp_path / "cache"):
        with pytest.raises(UserError) as loaded:
            load_data(cfg, cache)
        assert str(loaded.value) == line


def test_good_file_passes_the_check(tmp_path):
    check_data(cfg_for(csv(tmp_path)))


def test_sweep_with_a_bad_csv_exits_2_before_any_trial(tmp_path):
    bad = csv(tmp_path, with_column(PageValues=[str(v) for v in range(39)] + ["n/a?"]))
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(f"name: bad\ndata: {{source: csv, path: {bad.name}, label: Revenue}}\n"
                     "model: {family: logreg}\n")
    result = CliRunner().invoke(app, ["sweep", str(sweep), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "column 'PageValues' is numeric but row 40 (line 41) holds 'n/a?'" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "trials.jsonl").exists()


@pytest.mark.parametrize("source", ["csv", "parquet"])
def test_a_device_file_is_refused_instead_of_read_without_end(source):
    with pytest.raises(UserError, match=r"^/dev/zero: is not a regular file \(a device, pipe or socket\)"):
        check_data(DataConfig(source=source, path="/dev/zero", label="Revenue"))


def test_a_fifo_is_refused_without_blocking_on_open(tmp_path):
    import os

    fifo = tmp_path / "sessions.csv"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    with pytest.raises(UserError, match="is not a regular file"):
        check_data(cfg_for(fifo))


def test_a_file_over_the_size_limit_is_refused_naming_the_limit(tmp_path, monkeypatch):
    from costbench.data import tabular

    monkeypatch.setattr(tabular, "MAX_FILE_BYTES", 100)
    with pytest.raises(UserError, match=r"the file is 199 bytes; costbench reads csv files of up to 100 bytes"):
        check_data(cfg_for(text(tmp_path, "PageValues,Revenue\n" + "1.0,True\n" * 20)))
