"""The reproduction table's fast rows (BM25 without translation and on the human translation) rerun on TALN."""
import pytest

from xsearch.eval.reproduce import Table, check
from xsearch.paths import default_data_dir


def test_table_parses_and_names_known_conditions():
    from xsearch.eval.benchmark import Benchmark

    table = Table.from_yaml("eval/reproduce.yaml")
    names = {c.name for c in Benchmark.from_yaml("eval/taln.yaml").conditions}
    assert {r.condition for r in table.rows} <= names
    assert any(r.fast for r in table.rows)


@pytest.mark.slow
def test_fast_rows_reproduce(tmp_path):
    if not (default_data_dir() / "taln-archives").is_dir():
        pytest.skip("TALN data not found")
    rows = check("eval/reproduce.yaml", tmp_path, fast_only=True, log=print)
    assert rows and all(ok for _, _, ok in rows), [(r.condition, r.measure, got) for r, got, ok in rows if not ok]
