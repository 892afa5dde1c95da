"""Real data: the TALN demo index (1,386 French abstracts) searched with English keyword queries."""
import statistics
import time

import pytest

from xsearch.build import build_index
from xsearch.config import IndexConfig, SpladeSpec, TranslationSpec
from xsearch.index import open_index
from xsearch.paths import default_data_dir
from xsearch.records import Query

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def taln_index(tmp_path_factory):
    if not (default_data_dir() / "taln-archives" / "xml").is_dir():
        pytest.skip(f"TALN data not found under {default_data_dir()}")
    # the demo recipe without its translation and SPLADE stages and the extra routes built on them (tested
    # elsewhere): BM25 + dense is what is checked
    config = IndexConfig.from_yaml("indexes/taln.yaml").model_copy(
        update={"translate": TranslationSpec(), "splade": SpladeSpec(), "components": [], "fusions": []})
    out = tmp_path_factory.mktemp("taln") / "taln"
    build_index(config, out, show_progress=False, log=print)
    return open_index(out)


def test_taln_index_counts(taln_index):
    m = taln_index.manifest
    assert m["doc_count"] == 1386 and m["languages"] == {"fr": 1386}
    assert m["components"]["bm25-fr"]["docs"] == 1386 and m["components"]["dense"]["docs"] == 1386


def test_dense_finds_the_article_of_its_english_keywords(taln_index):
    """20 articles, each queried by its first three English author keywords: the article should be in the top 10."""
    docs = [d for d in taln_index.docstore if len(d.fields.get("keywords_en", [])) >= 3]
    step = len(docs) // 20
    picked = [docs[i * step] for i in range(20)]
    queries = [Query(d.doc_id, " ".join(d.fields["keywords_en"][:3])) for d in picked]
    found = {}
    for route in ("dense", "bm25", "hybrid"):
        run = taln_index.run(queries, route=route, k=10)
        found[route] = sum(q.query_id in run[q.query_id] for q in queries)
    print(f"articles in the top 10 for their own English keywords (of 20): {found}")
    assert found["dense"] >= 12, found


def test_query_latency_per_route(taln_index):
    """Median latency over 100 single queries per route (printed for the record; no timing assertion)."""
    docs = list(taln_index.docstore)[:100]
    texts = [" ".join(d.fields.get("keywords_en", [])[:3]) or d.fields.get("title_en") or "parsing" for d in docs]
    for route in ("bm25", "dense", "hybrid"):
        taln_index = open_index(taln_index.path)  # a fresh query-vector memo per route: no route reuses another's
        taln_index.search("warm-up query", route=route)  # warm-up (JVM, model load)
        times = []
        for t in texts:
            start = time.perf_counter()
            hits = taln_index.search(t, route=route, k=10)
            times.append(time.perf_counter() - start)
            assert hits and hits[0].doc is not None
        print(f"{route}: median {1000 * statistics.median(times):.1f} ms over {len(times)} queries")
