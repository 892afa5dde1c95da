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


def test_opt_in_conditions_run_only_when_asked():
    from xsearch.eval.benchmark import Benchmark
    from xsearch.eval.runner import _select

    raw = {"name": "b", "baseline": "a", "indexes": {"i": {}},
           "conditions": [{"name": "a", "index": "i", "route": "bm25"},
                          {"name": "x", "index": "i", "route": "bm25-rm3", "opt_in": True},
                          {"name": "f", "fuse": ["a", "x"], "opt_in": True}]}
    bench = Benchmark.model_validate(raw)
    assert [c.name for c in _select(bench, None)] == ["a"]
    assert [c.name for c in _select(bench, None, everything=True)] == ["a", "x", "f"]
    assert [c.name for c in _select(bench, ["f"])] == ["a", "x", "f"]
    raw["conditions"][2]["opt_in"] = False                     # a default fusion of an opt-in part: refused
    with pytest.raises(ValueError, match="opt-in"):
        Benchmark.model_validate(raw)
