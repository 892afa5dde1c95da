"""The `xsearch` command line. Options and their defaults come from xsearch.config, the one source of defaults."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from .config import BM25Spec, CorpusSpec, DenseSpec, IndexConfig, SearchDefaults, SpladeSpec, TranslationSpec
from .errors import XsearchError

SEARCH = SearchDefaults()


def _index_parser(sub) -> None:
    p = sub.add_parser("index", help="build an index folder from a corpus or a recipe (indexes/*.yaml)")
    p.add_argument("source", help="a recipe (.yaml) or a corpus path (JSONL file, TALN XML file or folder)")
    p.add_argument("out", nargs="?", help="index folder (default: indexes/<recipe name>)")
    p.add_argument("--format", default=CorpusSpec.model_fields["format"].default, choices=["auto", "jsonl", "taln"])
    p.add_argument("--lang", default=None, help="language of records that carry none")
    p.add_argument("--encoder", default=DenseSpec.model_fields["encoder"].default,
                   help="e5-small | e5-small-st | use-m3 | minilm | st:<folder or hub id>")
    p.add_argument("--dense-kind", default=DenseSpec.model_fields["kind"].default, choices=["flat", "hnsw", "ivfpq"])
    p.add_argument("--no-dense", action="store_true", help="skip the dense index")
    p.add_argument("--no-bm25", action="store_true", help="skip the BM25 index")
    p.add_argument("--translate", default=TranslationSpec.model_fields["translator"].default,
                   help="document translation: apertium | ct2:<folder>")
    p.add_argument("--target-lang", default=TranslationSpec.model_fields["target_lang"].default)
    p.add_argument("--splade", action="store_true", default=SpladeSpec.model_fields["enabled"].default,
                   help="also build a SPLADE impact index (on the translation when there is one)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--shards", type=int, default=None,
                   help="split the collection into N shard indexes by a hash of each id (searched as one)")
    p.add_argument("--ray", default=None, metavar="local|auto|ADDRESS",
                   help="build the shards on Ray (needs --shards and the `ray` extra): a local Ray, the running "
                        "cluster, or a cluster address")
    p.add_argument("--workers", type=int, default=None, help="Ray shard builders (default: one per CPU)")
    p.set_defaults(func=cmd_index)


def _search_parser(sub) -> None:
    p = sub.add_parser("search", help="search an index")
    p.add_argument("index", help="index folder")
    p.add_argument("query", nargs="*", help="query text (omit for an interactive prompt)")
    p.add_argument("--method", "--route", dest="route", default=None,
                   help="route: bm25 | bm25-qt | bm25-dt | dense | hybrid | ... (default: the index's default)")
    p.add_argument("-k", type=int, default=SEARCH.k)
    p.add_argument("--lang", default=SEARCH.query_lang, help="query language")
    p.add_argument("--filter", dest="filters", action="append", default=[], metavar="FIELD=VALUE",
                   help="only documents whose stored field equals VALUE (e.g. year=2005; repeat: all must hold, "
                        "the same field twice: either value); the top SearchDefaults.filter_depth candidates are "
                        "filtered")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(func=cmd_search)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xsearch", description="cross-lingual search: index, search, evaluate")
    sub = parser.add_subparsers(dest="command", required=True)
    _index_parser(sub)
    _search_parser(sub)
    from .cli_more import add_more_commands

    add_more_commands(sub)
    _add_serve(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except XsearchError as exc:
        print(f"xsearch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xsearch: interrupted", file=sys.stderr)
        return 130


def _add_serve(sub) -> None:  # noqa: ANN001
    """Commands of other packages, e.g. `xsearch serve` from server/ (entry-point group "xsearch.commands"):
    the library never imports the server."""
    from importlib import metadata

    for ep in metadata.entry_points(group="xsearch.commands"):
        ep.load()(sub)


def cmd_index(args: argparse.Namespace) -> int:
    from .build import build_index

    src = Path(args.source)
    if src.suffix in (".yaml", ".yml"):
        config = IndexConfig.from_yaml(src)
        out = Path(args.out) if args.out else src.parent / config.name
    else:
        if not args.out:
            raise XsearchError("give an output folder: xsearch index CORPUS OUT")
        config = IndexConfig(
            name=Path(args.out).name,
            corpus=CorpusSpec(path=str(src), format=args.format, lang=args.lang),
            bm25=BM25Spec(enabled=not args.no_bm25),
            dense=DenseSpec(enabled=not args.no_dense, encoder=args.encoder, kind=args.dense_kind),
            translate=TranslationSpec(translator=args.translate, target_lang=args.target_lang),
            splade=SpladeSpec(enabled=args.splade),
        )
        out = Path(args.out)
    t = time.perf_counter()
    if args.shards is None and (args.ray or args.workers):
        raise XsearchError("--ray and --workers build shards: give --shards N too")
    if args.shards is not None:
        from .shard.build import build_sharded

        build_sharded(config, out, shards=args.shards, ray=args.ray, workers=args.workers,
                      show_progress=not args.quiet)
    else:
        build_index(config, out, show_progress=not args.quiet)
    print(f"built {out} in {time.perf_counter() - t:.1f}s")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .index import open_index

    index = open_index(args.index)
    if args.query:
        _print_hits(index, " ".join(args.query), args)
        return 0
    print(f"{index.manifest['name']}: {index.doc_count} documents; routes: {', '.join(index.routes)}. "
          "Empty line or Ctrl-D to quit.")
    while True:
        try:
            line = input("query> ").strip()
        except EOFError:
            break
        if not line:
            break
        _print_hits(index, line, args)
    return 0


def _print_hits(index, query: str, args: argparse.Namespace) -> None:
    from .filters import parse_filter

    filters: dict[str, list[str]] = {}
    for text in getattr(args, "filters", []):
        name, value = parse_filter(text)
        filters.setdefault(name, []).append(value)
    t = time.perf_counter()
    hits = index.search(query, route=args.route, k=args.k, lang=args.lang, filters=filters or None)
    ms = (time.perf_counter() - t) * 1000
    if args.json:
        for h in hits:
            doc = h.doc
            print(json.dumps({"rank": h.rank, "doc_id": h.doc_id, "score": h.score,
                              "title": doc.title if doc else None, "lang": doc.lang if doc else None,
                              "route_scores": dict(h.route_scores)}, ensure_ascii=False))
        return
    where = "".join(f" {n}={'|'.join(v)}" for n, v in filters.items())
    print(f"{query!r} [{args.route or index.default_route}]{where} {len(hits)} hits in {ms:.0f} ms")
    for h in hits:
        title = (h.doc.title or h.doc.text[:80]) if h.doc else "(not in doc store)"
        print(f"{h.rank:3d}. {h.score:8.4f}  {h.doc_id:28s} {title}")


if __name__ == "__main__":
    sys.exit(main())
