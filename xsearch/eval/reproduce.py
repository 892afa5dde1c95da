"""Reproduction table (Pyserini's two-click reproductions): each row is a condition, the command that produces it,
the expected score and a tolerance; `check` reruns the rows and prints OK / FAIL per row."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import InputError
from .benchmark import Benchmark


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid")
    condition: str
    measure: str
    expected: float
    tolerance: float = 0.01
    fast: bool = False


class Table(BaseModel):
    model_config = ConfigDict(extra="forbid")
    benchmark: str
    rows: list[Row]

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Table":
        path = Path(path)
        try:
            return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise InputError(f"invalid reproduction table: {exc}", source=str(path)) from None


def check(table_path: str | Path, out_dir: str | Path, fast_only: bool = False, log: Callable[[str], None] = print,
          show_progress: bool = False) -> list[tuple[Row, float, bool]]:
    """Rerun the table's conditions, compare each measure with its expected value, print OK / FAIL per row."""
    from .runner import run_benchmark

    table_path = Path(table_path)
    table = Table.from_yaml(table_path)
    bench_path = (table_path.parent / table.benchmark).resolve()
    bench = Benchmark.from_yaml(bench_path)
    rows = [r for r in table.rows if r.fast or not fast_only]
    if not rows:
        raise InputError("no rows to check", source=str(table_path))
    result = run_benchmark(bench, out_dir, only=sorted({r.condition for r in rows}), log=log,
                           show_progress=show_progress)
    out = []
    for r in rows:
        df = result.per_query[r.condition]
        col = next((c for c in df.columns if c == r.measure or c.startswith(r.measure)), None)
        if col is None:
            raise InputError(f"measure {r.measure!r} not computed; the benchmark scores {list(df.columns)}")
        got = float(df[col].mean())
        ok = abs(got - r.expected) <= r.tolerance
        out.append((r, got, ok))
        log(f"{'OK  ' if ok else 'FAIL'} {r.condition:16s} {r.measure:8s} got {got:.4f} expected {r.expected:.4f} "
            f"± {r.tolerance}   (xsearch eval run {bench_path.name} --only {r.condition})")
    return out
