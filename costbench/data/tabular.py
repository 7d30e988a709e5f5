"""A user's own purchase table (CSV or Parquet): read it, check it, split it and prepare it.

Every way a file can be unusable is a ``UserError`` of one line that names the file, the column and,
where there is one, the row (1-based data rows, header not counted; CSV adds the line number), and says
how to fix it. ``validate`` does all of the checking and nothing of the preparing, so ``check_data`` can
run it before any trial starts and ``load_data`` runs the very same code.

Preparation (``prepare.Preparer``) is fitted on the training split only. A missing categorical value
is the value ``<missing>``, a category like any other.

Column kinds are inferred from the file when ``data.numeric``/``data.categorical`` do not name them:
booleans are boolean, numbers numeric, text categorical; an integer column with 3..20 distinct values
(a code such as a store or a month) is used both ways, as a number and as a category ``<name>:cat``
(naming it under data.numeric or data.categorical picks one). Column names are stripped of spaces.

The protocol: a ``data.test_path`` file is used as it is, every row in its order (``dedupe`` applies to
the main file only); rows of the main file that also occur in the test file are counted as leakage and
reported. The validation share, when not set, grows from 0.1 to at most 0.25 to hold about 200 bought
rows, and a validation split with fewer than 50 is warned about.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from costbench.errors import UserError, did_you_mean
from costbench.store import human_size

if TYPE_CHECKING:
    from costbench.spec import DataConfig

MISSING = "<missing>"
TRUE_WORDS = ("true", "1", "yes", "y", "t")
FALSE_WORDS = ("false", "0", "no", "n", "f")
SEPARATORS = (";", "\t", "|")
MAX_FILE_BYTES = 20 << 30  # a table is read into memory whole, several times its size while prepared
NUMERIC_TEXT_SHARE = 0.9  # a text column this share of whose rows are numbers is a numeric column with typos
CODE_LEVELS = (3, 20)  # an integer column with this many distinct values is also used as a category
CATEGORY_SUFFIX = ":cat"
VAL_POSITIVES = 200  # what the automatic validation share aims for
VAL_POSITIVES_WARN = 50


@dataclass(frozen=True)
class Columns:
    """Which column plays which part."""

    label: str
    numeric: list[str]
    boolean: list[str]
    categorical: list[str]
    log1p: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # in the file, but neither listed nor inferred
    coded: list[str] = field(default_factory=list)  # integer codes used as numbers and as '<name>:cat'

    def by_kind(self) -> dict[str, list[str]]:
        return {"numeric": self.numeric, "boolean": self.boolean, "categorical": self.categorical,
                "log1p": self.log1p, "dropped": self.dropped, "ignored": self.ignored,
                "integer_codes_also_categorical": self.coded}

    @staticmethod
    def source_of(name: str) -> str:
        """The file column a feature reads ('store:cat' reads 'store')."""
        return name.removesuffix(CATEGORY_SUFFIX)


@dataclass
class Table:
    """A checked file: its used columns cleaned (numbers float64 with NaN, categories as pandas
    Categorical), and its label as bool."""

    path: Path
    frame: pd.DataFrame
    label: np.ndarray
    rows_read: int


@dataclass
class Validated:
    """Everything ``validate`` found out: what ``load_data`` prepares without reading the files again."""

    columns: Columns
    main: Table
    test: Table | None
    positive: str  # the label value that means bought, as written in the file
    duplicates_dropped: int
    leakage_rows: int | None  # main-file rows that also occur in the test file (None without one)
    splits: dict[str, np.ndarray]  # row indices into main (and 'test' into test.frame when it is given)
    warnings: list[str]


# ----------------------------------------------------------------------------------------- reading


def resolve_path(path: str) -> Path:
    """Relative paths are relative to the working directory (``costbench.spec`` makes a sweep file's
    data paths absolute, relative to the sweep file)."""
    return Path(path).expanduser()


def check_file(path: Path, source: str, key: str = "data.path") -> bytes:
    """That the file exists, is a file, can be opened and is not empty; returns its first bytes."""
    where = str(path)
    if not path.exists():
        raise UserError(f"no such file; check {key} (a sweep file's paths are relative to it; "
                        f"cwd is {Path.cwd()})", where=where)
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir() if p.suffix.lower() in (".csv", ".parquet", ".pq"))
        hint = f"; it holds {', '.join(found[:5])}" if found else ""
        raise UserError(f"is a directory, not a {source} file{hint}", where=where)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a device (/dev/zero), FIFO or socket: reading may never end
            raise UserError(f"is not a regular file (a device, pipe or socket); give a {source} file", where=where)
        if info.st_size > MAX_FILE_BYTES:
            raise UserError(f"the file is {human_size(info.st_size)}; costbench reads {source} files of up to "
                            f"{human_size(MAX_FILE_BYTES)} (prepared in memory); sample or split it", where=where)
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise UserError(f"cannot read the file: {exc.strerror or exc}", where=where) from None
    if not head:
        raise UserError("the file is empty; export the table again", where=where)
    return head


def read_table(path: Path, source: str, key: str = "data.path") -> pd.DataFrame:
    """Read a CSV or Parquet file, turning every way it can be unreadable into a UserError."""
    head = check_file(path, source, key)
    if source == "csv":
        if head == b"PAR1":
            raise UserError("this is a Parquet file, not CSV; set data.source: parquet", where=str(path))
        frame = _read_csv(path)
    else:
        frame = _read_parquet(path, head)
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise UserError(f"the file has columns ({_names(frame.columns)}) but no rows", where=str(path))
    return frame


def _read_csv(path: Path, sep: str = ",") -> pd.DataFrame:
    where = str(path)
    try:
        try:
            frame = pd.read_csv(path, sep=sep, low_memory=False, encoding="utf-8-sig")  # Excel writes a BOM
        except UnicodeDecodeError:  # spreadsheet exports are often Latin-1 / cp1252
            frame = pd.read_csv(path, sep=sep, low_memory=False, encoding="latin-1")
    except pd.errors.EmptyDataError:
        raise UserError("the file holds no header and no rows (only blank lines); export the table again",
                        where=where) from None
    except pd.errors.ParserError as exc:
        raise UserError(f"cannot parse as CSV: {str(exc).strip().splitlines()[-1]}", where=where) from None
    except OSError as exc:
        raise UserError(f"cannot read the file: {exc.strerror or exc}", where=where) from None
    if sep == "," and frame.shape[1] == 1:  # a ';' or tab separated export read as one column
        for other in SEPARATORS:
            if other in str(frame.columns[0]):
                return _read_csv(path, other)
    return frame


def _read_parquet(path: Path, head: bytes) -> pd.DataFrame:
    where = str(path)
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and friends
        with path.open("rb") as handle:
            start = handle.read(512)
        looks_like_text = all(32 <= b < 127 or b in b"\t\r\n" for b in start)
        hint = "; it looks like text: set data.source: csv" if looks_like_text else ""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = re.sub(r"^Could not open Parquet input source '[^']*': ", "", first)
        raise UserError(f"cannot read as Parquet ({first}){hint}", where=where) from None


def _names(names: Any, limit: int = 12) -> str:
    names = [str(n) for n in names]
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _row(path: Path, index: int) -> str:
    """'row 17 (line 18)' for CSV, 'row 17' otherwise: 1-based data rows, header not counted."""
    line = f" (line {index + 2})" if path.suffix.lower() in (".csv", ".txt", ".tsv") else ""
    return f"row {index + 1}{line}"


# ----------------------------------------------------------------------------------------- columns


def resolve_columns(cfg: DataConfig, frame: pd.DataFrame, path: Path) -> tuple[Columns, list[str]]:
    """Decide which column plays which part; every listed column must exist. Returns warnings too."""
    where = str(path)
    present = list(frame.columns)
    label = cfg.label
    if label not in present:
        raise UserError(f"label column '{label}' is not in the file{did_you_mean(label, present)}; "
                        f"its columns: {_names(present)}", where=where)
    listed = {"data.drop": cfg.drop, "data.numeric": cfg.numeric or [], "data.categorical": cfg.categorical or [],
              "data.log1p": cfg.log1p}
    for key, names in listed.items():
        for name in names:
            if name not in present:
                raise UserError(f"{key} names column '{name}', which is not in the file"
                                f"{did_you_mean(name, present)}; its columns: {_names(present)}", where=where)
            if name == label:
                raise UserError(f"{key} names the label column '{label}'; the label cannot also be a feature",
                                where=where)
    both = sorted(set(cfg.numeric or []) & set(cfg.categorical or []))
    if both:
        raise UserError(f"column '{both[0]}' is listed under both data.numeric and data.categorical; "
                        "keep it in one", where=where)

    warnings: list[str] = []
    candidates = [c for c in present if c != label and c not in cfg.drop]
    numeric, boolean, categorical, ignored, coded = [], [], [], [], []
    for name in candidates:
        series = frame[name]
        if cfg.numeric is not None and name in cfg.numeric:
            kind = "boolean" if _is_boolean(series) else "numeric"
        elif cfg.categorical is not None and name in cfg.categorical:
            kind = "categorical"
        elif cfg.numeric is not None and cfg.categorical is not None:
            kind = "ignored"
        else:
            kind = _infer_kind(series)
            if kind == "empty":
                warnings.append(f"column '{name}' is empty in every row; ignored")
                kind = "ignored"
            elif kind == "numeric" and _is_code(series) and name + CATEGORY_SUFFIX not in present:
                coded.append(name)
        if kind == "datetime":
            raise UserError(f"column '{name}' holds dates or times, which costbench does not encode; add it to "
                            "data.drop, or derive a number from it (days since, hour) in the file", where=where)
        {"numeric": numeric, "boolean": boolean, "categorical": categorical, "ignored": ignored}[kind].append(name)
    for name in cfg.log1p:
        if name not in numeric:
            raise UserError(f"data.log1p names column '{name}', which is not numeric here; log1p applies to "
                            f"numeric columns ({_names(numeric)})", where=where)
    if not (numeric or boolean or categorical):
        raise UserError(f"no feature columns left besides the label '{label}'; check data.drop, data.numeric and "
                        "data.categorical", where=where)
    categorical += [name + CATEGORY_SUFFIX for name in coded]
    columns = Columns(label=label, numeric=numeric, boolean=boolean, categorical=categorical,
                      log1p=list(cfg.log1p), dropped=list(cfg.drop), ignored=ignored, coded=coded)
    return columns, warnings


def _is_code(series: pd.Series) -> bool:
    """Integer values with few distinct levels: a code (store, month, segment) more than a quantity."""
    if not pd.api.types.is_numeric_dtype(series):
        return False
    values = series.dropna().to_numpy(dtype=np.float64)
    if not len(values) or not np.all(values == np.round(values)):
        return False
    low, high = CODE_LEVELS
    return low <= len(np.unique(values)) <= high


def _is_boolean(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series):
        return True
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
        return False
    values = pd.unique(series.dropna())
    return 0 < len(values) <= 8 and all(  # True/False written any which way
        isinstance(v, (bool, np.bool_)) or (isinstance(v, str) and v.strip().lower() in ("true", "false"))
        for v in values
    )


def _infer_kind(series: pd.Series) -> str:
    if _is_boolean(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric" if series.notna().any() else "empty"
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
        return "datetime"
    codes, uniques = pd.factorize(series)
    if len(uniques) == 0:
        return "empty"
    parses = pd.to_numeric(pd.Series(np.asarray(uniques, dtype=object)), errors="coerce").notna().to_numpy()
    share = parses[codes[codes >= 0]].mean()
    return "numeric" if share >= NUMERIC_TEXT_SHARE else "categorical"


# ----------------------------------------------------------------------------------------- values


def _canon(value: Any) -> str:
    """A label value as compared with data.positive: 'TRUE', True and 'true' agree, and so do 1 and 1.0."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value).strip().lower()


def label_values(series: pd.Series, path: Path, label: str) -> tuple[np.ndarray, list[Any], list[str]]:
    """Codes per row into the distinct label values, those values as written, and their canonical form."""
    codes, uniques = pd.factorize(series)
    if (codes < 0).any():
        row = int(np.argmax(codes < 0))
        raise UserError(f"label column '{label}' is empty in {_row(path, row)}; fill it in or remove the row",
                        where=str(path))
    if len(uniques) > 10:  # no need to look closer (and canonicalising a million values would be slow)
        counts = np.bincount(codes)
        shown = ", ".join(f"'{v}' ({int(n)} rows)" for v, n in zip(uniques[:5], counts[:5], strict=True))
        raise UserError(f"label column '{label}' has {len(uniques)} values ({shown}, ...); a bought / not-bought "
                        "label needs exactly two: pick another column or recode it", where=str(path))
    raw = list(uniques)
    canon = [_canon(v) for v in raw]
    # '1' and 1.0 in one object column are one value
    distinct = sorted(set(canon), key=canon.index)
    remap = np.array([distinct.index(c) for c in canon], dtype=np.int64)
    written = [raw[canon.index(c)] for c in distinct]
    return remap[codes], written, distinct


def choose_positive(written: list[Any], canon: list[str], counts: np.ndarray, positive: Any, path: Path,
                    label: str) -> int:
    """Index of the value meaning 'bought'; the label must have exactly two values."""
    where = str(path)
    shown = ", ".join(f"'{w}' ({int(n)} rows)" for w, n in list(zip(written, counts, strict=True))[:5])
    if len(canon) > 2:
        raise UserError(f"label column '{label}' has {len(canon)} values ({shown}{', ...' if len(canon) > 5 else ''}); "
                        "a bought / not-bought label needs exactly two: pick another column or recode it",
                        where=where)
    if len(canon) == 1:
        raise UserError(f"label column '{label}' holds only {shown}; a model needs both bought and not-bought "
                        "rows", where=where)
    if positive is None:
        for word in TRUE_WORDS:
            if word in canon:
                return canon.index(word)
        raise UserError(f"which value of label column '{label}' means bought? set data.positive to one of "
                        f"{', '.join(repr(str(w)) for w in written)}", where=where)
    want = _canon(positive)
    if want in canon:
        return canon.index(want)
    for words in (TRUE_WORDS, FALSE_WORDS):  # positive: yes / true / 1 for a column of true/false, 1/0, yes/no
        if want in words:
            for word in words:
                if word in canon:
                    return canon.index(word)
    raise UserError(f"data.positive '{positive}' is not a value of label column '{label}'"
                    f"{did_you_mean(positive, [str(w) for w in written])}; its values: "
                    f"{', '.join(repr(str(w)) for w in written)}", where=where)


def clean_numeric(series: pd.Series, name: str, path: Path) -> np.ndarray:
    """Float64 values with NaN for missing (and for +-inf); text in a numeric column is a UserError."""
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
        raise UserError(f"column '{name}' holds dates or times, not numbers; add it to data.drop, or derive a "
                        "number from it (days since, hour) in the file", where=str(path))
    if pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    elif _is_boolean(series):
        return series.map(lambda v: v if pd.isna(v) else float(_canon(v) == "true")).to_numpy(
            dtype=np.float64, na_value=np.nan)
    else:
        parsed = pd.to_numeric(series.astype(object).map(_strip), errors="coerce")
        bad = (parsed.isna() & series.notna()).to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise UserError(f"column '{name}' is numeric but {_row(path, row)} holds {str(series.iloc[row])!r}; "
                            f"fix that value, or list '{name}' under data.categorical to treat it as categories",
                            where=str(path))
        values = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
    values = values.copy()
    values[~np.isfinite(values)] = np.nan
    return values


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def clean_categorical(series: pd.Series) -> pd.Categorical:
    """Values as text categories ('3', not '3.0'), a missing value as the category '<missing>'."""
    codes, uniques = pd.factorize(series)
    names = [_category_name(v) for v in uniques] + [MISSING]
    codes = np.where(codes < 0, len(uniques), codes)
    distinct, inverse = np.unique(np.asarray(names, dtype=object).astype(str), return_inverse=True)
    return pd.Categorical.from_codes(inverse[codes], categories=distinct)


def _category_name(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def clean_table(frame: pd.DataFrame, columns: Columns, path: Path) -> pd.DataFrame:
    """The used columns of a file as clean values (numbers float64 with NaN, categories Categorical)."""
    data: dict[str, Any] = {}
    for name in columns.numeric + columns.boolean:
        if name not in frame.columns:
            raise _absent(name, frame, path)
        data[name] = clean_numeric(frame[name], name, path)
    for name in columns.categorical:
        source = Columns.source_of(name) if name.endswith(CATEGORY_SUFFIX) and Columns.source_of(
            name) in columns.coded else name
        if source not in frame.columns:
            raise _absent(source, frame, path)
        data[name] = clean_categorical(frame[source])
    return pd.DataFrame(data, index=pd.RangeIndex(len(frame)))


def _absent(name: str, frame: pd.DataFrame, path: Path) -> UserError:
    return UserError(f"column '{name}' (a feature of the main file) is not in this file"
                     f"{did_you_mean(name, frame.columns)}; its columns: {_names(frame.columns)}", where=str(path))


# ----------------------------------------------------------------------------------------- splits


def stratified_split(label: np.ndarray, shares: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Row indices per split, each class divided by the same shares; 'train' gets the rest.
    The same labels, shares and seed give the same split on any machine."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], **{name: [] for name in shares}}
    for cls in (False, True):
        idx = rng.permutation(np.flatnonzero(label == cls))
        start = 0
        for name, share in shares.items():
            take = round(share * len(idx))
            parts[name].append(idx[start:start + take])
            start += take
        parts["train"].append(idx[start:])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def check_splits(label_by_split: dict[str, np.ndarray], where: str, fix: str) -> None:
    """Every split needs rows of both classes (AUC, early stopping and thresholds need them)."""
    for name, label in label_by_split.items():
        pos = int(label.sum())
        if pos == 0 or pos == len(label):
            missing = "bought" if pos == 0 else "not-bought"
            raise UserError(f"the {name} split gets no {missing} rows ({len(label)} rows, {pos} bought); {fix}",
                            where=where)


def oversample(train: np.ndarray, label: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Train indices with positives repeated (drawn with replacement) until positives : negatives
    reaches ``ratio``; unchanged when it is already there."""
    pos = train[label[train]]
    n_neg = len(train) - len(pos)
    need = int(np.ceil(ratio * n_neg)) - len(pos)
    if need <= 0 or len(pos) == 0:
        return train
    extra = np.random.default_rng([seed, 1]).choice(pos, size=need, replace=True)
    return np.concatenate([train, extra])


# ----------------------------------------------------------------------------------------- checking


def _read_checked(path: Path, cfg: DataConfig, columns: Columns | None) -> tuple[pd.DataFrame, Columns | None,
                                                                          list[str]]:
    frame = read_table(path, cfg.source, "data.path" if columns is None else "data.test_path")
    warnings: list[str] = []
    if columns is None:
        columns, warnings = resolve_columns(cfg, frame, path)
    elif columns.label not in frame.columns:
        raise UserError(f"label column '{columns.label}' is not in the test file"
                        f"{did_you_mean(columns.label, frame.columns)}; its columns: {_names(frame.columns)}",
                        where=str(path))
    return frame, columns, warnings


def validate(cfg: DataConfig) -> Validated:
    """Read and check the file(s) of a csv/parquet DataConfig; dedupe and split. Raises UserError."""
    main_path = resolve_path(cfg.path)
    frame, columns, warnings = _read_checked(main_path, cfg, None)
    assert columns is not None
    codes, written, canon = label_values(frame[columns.label], main_path, columns.label)
    pos_code = choose_positive(written, canon, np.bincount(codes, minlength=len(canon)), cfg.positive,
                               main_path, columns.label)
    main = Table(main_path, clean_table(frame, columns, main_path), codes == pos_code, len(frame))
    del frame

    test = None
    if cfg.test_path:
        test_path = resolve_path(cfg.test_path)
        test_frame, _, _ = _read_checked(test_path, cfg, columns)
        t_codes, t_written, t_canon = label_values(test_frame[columns.label], test_path, columns.label)
        foreign = [w for w, c in zip(t_written, t_canon, strict=True) if c not in canon]
        if foreign:
            raise UserError(f"label column '{columns.label}' holds '{foreign[0]}', which the main file "
                            f"{main_path.name} never has (its values: {', '.join(repr(str(w)) for w in written)})",
                            where=str(test_path))
        test_label = np.array([c == canon[pos_code] for c in t_canon])[t_codes]
        test = Table(test_path, clean_table(test_frame, columns, test_path), test_label, len(test_frame))

    duplicates = 0
    if cfg.dedupe:  # the main file only: a test file is the user's yardstick, used exactly as it is
        dup = main.frame.assign(__label__=main.label).duplicated(keep="first").to_numpy()
        if dup.any():
            duplicates = int(dup.sum())
            main.frame = main.frame.loc[~dup].reset_index(drop=True)
            main.label = main.label[~dup]
    leakage = None
    if test is not None:
        leakage = count_shared_rows(main.frame, test.frame)
        if leakage:
            warnings.append(f"{leakage} rows of {main_path.name} also occur in the test file {test.path.name} "
                            "(same feature values): the test AUC may be optimistic")

    val_share = resolve_val_share(cfg.split.val, int(main.label.sum()))
    shares = {"val": val_share} if test is not None else {"val": val_share, "test": cfg.split.test}
    splits = stratified_split(main.label, shares, cfg.split.seed)
    val_pos = int(main.label[splits["val"]].sum())
    if val_pos < VAL_POSITIVES_WARN:
        warnings.append(f"the validation split holds only {val_pos} bought rows: early stopping and the "
                        "threshold will be noisy; add rows or raise data.split.val")
    check_splits({name: main.label[idx] for name, idx in splits.items()}, str(main_path),
                 "the file is too small or too unbalanced for data.split; add rows, or raise data.split.val "
                 "and data.split.test")
    if test is not None:
        check_splits({"test": test.label}, str(test.path), "a test file needs both")
        splits["test"] = np.arange(len(test.label))

    for name in columns.categorical:
        n_values = main.frame[name].nunique()
        if n_values > 1000 and n_values > 0.5 * len(main.frame):
            warnings.append(f"column '{name}' has {n_values} distinct values in {len(main.frame)} rows: an id? "
                            "add it to data.drop")
    return Validated(columns=columns, main=main, test=test, positive=str(written[pos_code]),
                     duplicates_dropped=duplicates, leakage_rows=leakage, splits=splits, warnings=warnings)


def resolve_val_share(share: float | None, positives: int) -> float:
    """The validation share: as set, or 0.1 raised (up to 0.25) until it holds about VAL_POSITIVES."""
    if share is not None:
        return share
    return float(min(0.25, max(0.1, VAL_POSITIVES / max(positives, 1))))


def count_shared_rows(main: pd.DataFrame, test: pd.DataFrame) -> int:
    """Rows of ``main`` whose used feature values equal some row of ``test``."""
    def hashes(frame: pd.DataFrame) -> np.ndarray:
        return pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return int(np.isin(hashes(main), hashes(test)).sum())
