"""Stored-field filters and facets in the library search (bounded candidate depth), and `xsearch search --filter`."""
from __future__ import annotations

import json

import pytest

from server_helpers import build_template
from xsearch.errors import InputError
from xsearch.filters import as_filters, facet_counts, matches, parse_filter
from xsearch.index import open_index

ALL = "traduction reconnaissance analyse chats"   # every tiny document matches one of these words


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return open_index(build_template(tmp_path_factory.mktemp("bm25"), dense=False, translate=False))


def test_filter_rules():
    assert as_filters({"year": 2010, "venue": ["TALN", "recital"]}) == {"year": ["2010"], "venue": ["TALN", "recital"]}
    assert matches({"year": 2010, "venue": "taln"}, as_filters({"year": "2010", "venue": "TALN"}))
    assert not matches({"year": 2010}, {"venue": ["taln"]}) and not matches(None, {})
    assert matches({"authors": ["A. B", "C. D"]}, {"authors": ["c. d"]})
    assert parse_filter(" year = 2005 ") == ("year", "2005")
    for bad in ("year", "=2005", "year="):
        with pytest.raises(InputError, match="field=value"):
            parse_filter(bad)
    with pytest.raises(InputError, match="non-empty values"):
        as_filters({"year": []})
    rows = [{"year": 2010, "venue": "taln"}, {"year": 2010, "venue": "TALN"}, {"year": 2008, "authors": ["x", "x"]}]
    assert facet_counts(rows, ["year", "venue", "authors", "none"], top=1) == {
        "year": {"2010": 2}, "venue": {"taln": 2}, "authors": {"x": 1}, "none": {}}


def test_search_filters_and_facets_over_bounded_candidates(index):
    with index.reading() as view:
        hits = view.search("traduction", route="bm25", lang="fr", filters={"year": "2010"})
        assert sorted(h.doc_id for h in hits) == ["d1", "d5"] and [h.rank for h in hits] == [1, 2]
        page = view.page(ALL, route="bm25", lang="fr", k=1, filters={"venue": "taln"}, facets=True)
        assert (page.candidates, page.matched, page.more, len(page.hits)) == (5, 3, True, 1)
        assert page.facets == {"year": {"2010": 1, "2012": 1, "2015": 1}, "venue": {"taln": 3}}
        second = view.page(ALL, route="bm25", lang="fr", k=1, offset=1, filters={"venue": "taln"})
        assert second.hits[0].rank == 2 and second.hits[0].doc_id != page.hits[0].doc_id
        bounded = view.page(ALL, route="bm25", lang="fr", k=1, facets=True, filter_depth=2)
        assert bounded.candidates == 2 and sum(bounded.facets["venue"].values()) == 2
        plain = view.page(ALL, route="bm25", lang="fr", k=2)
        assert (plain.candidates, plain.facets, plain.more) == (3, {}, True)   # the page and one more
        assert view.facet_fields() == ["year", "venue"]
        assert view.docstore.fields_many(["d1", "nope"], ["venue", "absent"]) == {"d1": {"venue": "taln"}}
        assert view.docstore.fields_many(["d1"], ['a"b', "year"]) == {"d1": {"year": 2010}}
    run = index.run({"q1": "traduction", "q2": "chats"}, route="bm25", k=5, lang="fr", filters={"venue": "recital"})
    assert sorted(run["q1"]) == ["d5"] and sorted(run["q2"]) == ["d3"]


def test_cli_search_filter(index, capsys):
    from xsearch.cli import main

    assert main(["search", str(index.path), "traduction", "--route", "bm25", "--lang", "fr", "--json",
                 "--filter", "year=2010", "--filter", "venue=recital"]) == 0
    assert [json.loads(line)["doc_id"] for line in capsys.readouterr().out.splitlines()] == ["d5"]
    assert main(["search", str(index.path), "traduction", "--route", "bm25", "--lang", "fr",
                 "--filter", "year=2010"]) == 0
    assert "[bm25] year=2010 2 hits" in capsys.readouterr().out
    assert main(["search", str(index.path), "x", "--filter", "year"]) == 2
    assert "field=value" in capsys.readouterr().err


def test_field_names_a_json_path_cannot_hold_are_picked_in_python(tmp_path):
    """A filter on a field named with a control character, a quote or a backslash (schemathesis sent NUL) reads the
    field instead of failing in SQLite's JSON path parser."""
    from xsearch.docstore import DocStore
    from xsearch.records import Doc

    path = tmp_path / "d.sqlite"
    store = DocStore(path, writable=True)
    store.write(1, [Doc("a", "fr", "t", "x", {"\x00": 1, 'q"': 2, "b\\c": 3, "year": 4})], {}, [])
    store.close()
    view = DocStore(path, 1)
    assert view.fields_many(["a"], ["\x00", 'q"', "b\\c"]) == {"a": {"\x00": 1, 'q"': 2, "b\\c": 3}}
    assert view.fields_many(["a"], ["year"]) == {"a": {"year": 4}}
    view.close()
