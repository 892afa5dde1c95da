"""The transfer-task report: one Markdown table per task family, one column per encoder, plus timings."""
from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from .transfer import run_transfer

_BITEXT = ("tatoeba", "diabla", "sib200-bitext")
_CLF = ("sib200-clf", "umsab-clf")


def run_and_write(encoders: Sequence[str], tasks: Sequence[str] | None, out_dir: str | Path, command: str) -> Path:
    from ..encoders import make_encoder

    results = {}
    for spec in encoders:
        enc = make_encoder(spec)
        print(f"== {spec} ({enc.name})")
        results[spec] = run_transfer(enc, tasks)
        for task, scores in results[spec].items():
            print(f"  {task}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in scores.items() if k != "encoder"))
    return write_transfer_report(results, out_dir, command)


def write_transfer_report(results: dict[str, dict[str, dict]], out_dir: str | Path, command: str) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = list(results)
    tasks = list(dict.fromkeys(t for r in results.values() for t in r))
    head = "| task | " + " | ".join(specs) + " |"
    sep = "|---|" + "---:|" * len(specs)

    def cell(spec: str, task: str, key: str, scale: float = 100.0) -> str:
        v = results[spec].get(task, {}).get(key)
        return "—" if v is None else f"{scale * v:.1f}"

    lines = ["# Cross-lingual transfer tasks (English ↔ French)", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{command}` on {os.cpu_count()} CPU "
             f"cores ({platform.platform()}). Encoders: "
             + ", ".join(f"`{s}` = {next(iter(results[s].values()))['encoder']}" for s in specs if results[s]) + ".",
             "", "## Bitext mining: nearest-neighbour accuracy (%), cosine over the whole set", "", head, sep]
    for t in (t for t in _BITEXT if t in tasks):
        lines.append(f"| {t} en→fr | " + " | ".join(cell(s, t, "acc_en2fr") for s in specs) + " |")
        lines.append(f"| {t} fr→en | " + " | ".join(cell(s, t, "acc_fr2en") for s in specs) + " |")
    if "stsb-en-fr" in tasks:
        lines += ["", "## Cross-lingual STS: STSb English sentence1 vs French sentence2 (Spearman × 100)", "",
                  head, sep, "| stsb en–fr test | " + " | ".join(cell(s, "stsb-en-fr", "spearman", 1.0)
                                                           for s in specs) + " |"]
    clf = [t for t in _CLF if t in tasks]
    if clf:
        lines += ["", "## Zero-shot cross-lingual classification: logistic regression on English embeddings",
                  "", "Accuracy / macro-F1 (%) on the English test (no transfer) and the French test (zero-shot); "
                  "the gap is the cost of crossing languages.", "", head, sep]
        for t in clf:
            for side in ("en", "fr"):
                lines.append(f"| {t} train en → test {side} | " + " | ".join(
                    f"{cell(s, t, side + '_accuracy')} / {cell(s, t, side + '_macro_f1')}" for s in specs) + " |")
            lines.append(f"| {t} transfer gap (accuracy) | " + " | ".join(
                _gap(results[s].get(t, {})) for s in specs) + " |")
    lines += ["", "## Time (s per task, encoding + scoring)", "", head, sep]
    for t in tasks:
        lines.append(f"| {t} | " + " | ".join(f"{results[s].get(t, {}).get('seconds', float('nan')):.1f}"
                                              for s in specs) + " |")
    path = out_dir / "transfer.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out_dir / "transfer.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return path


def _gap(r: dict) -> str:
    if "en_accuracy" not in r or "fr_accuracy" not in r:
        return "—"
    return f"{100 * (r['fr_accuracy'] - r['en_accuracy']):+.1f}"
