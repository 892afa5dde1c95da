"""Routes as data: a recipe expands into named components, components declare the routes they serve, and fused
routes are templates over route names, declared once here.

A route is the components it searches (several = one per document language, fused by RRF) with the query as typed
or translated, or a fusion of other routes. Adding a retriever is a kind module (xsearch.components) plus a recipe
line; adding a fusion is a line in FUSIONS or in the recipe's `fusions`.
"""
from __future__ import annotations

from typing import Iterable

from .components import ComponentSpec, get_kind, parse_spec
from .config import IndexConfig
from .errors import InputError
from .storage.manifest import ComponentEntry, RouteEntry

# (name, the routes it fuses): added wherever all of its parts exist
FUSIONS: list[tuple[str, list[str]]] = [("hybrid", ["bm25", "dense"]), ("hybrid-dt", ["bm25-dt", "dense"])]
# `best`: RRF of those of these routes the index has (at least two), the strongest single routes of the TALN
# evaluation (eval/reports/taln.md; bm25-c4 where a recipe adds a `chargram` component by that name); a recipe
# fusion named `best` (weights from `xsearch eval tune`) replaces it.
BEST_PARTS: tuple[str, ...] = ("bm25-qt", "bm25-dt", "bm25-c4", "dense", "dense-dt", "splade")
DEFAULT_ROUTES = ("best", "hybrid")


def component_specs(config: IndexConfig, languages: Iterable[str]) -> dict[str, ComponentSpec]:
    """The components a recipe asks for, given the document languages the index holds (one BM25 component per
    language on the original text)."""
    from .components.bm25 import BM25Spec
    from .components.dense import DenseSpec
    from .components.impact import ImpactSpec
    from .components.xqg import XQGSpec

    langs = sorted(set(languages))
    tr = config.translate
    translated = bool(tr.translator and tr.translator != "none")
    out: dict[str, ComponentSpec] = {}
    if config.bm25.enabled:
        for lang in langs:
            out[f"bm25-{lang}"] = BM25Spec(lang=lang, k1=config.bm25.k1, b=config.bm25.b)
        if translated:
            out["bm25-dt"] = BM25Spec(lang=tr.target_lang, text="translation", k1=config.bm25.k1, b=config.bm25.b,
                                      route="bm25-dt")
    d = config.dense
    if d.enabled:
        common = dict(encoder=d.encoder, query_encoder=d.query_encoder or d.encoder, index=d.kind,
                      batch_size=d.batch_size)
        out["dense"] = DenseSpec(**common)
        if translated and tr.dense:
            out["dense-dt"] = DenseSpec(**common, text="translation")
        x = config.xqg
        if x.enabled:
            from .qgen.augment import variant_name

            xcommon = dict(common, generator=x.generator, n=x.n, lang=x.lang, translate=x.translate)
            out["dense-xqg"] = XQGSpec(**xcommon, alpha=x.alpha, formula=x.formula)
            for v in x.sweep:
                out[f"dense-xqg@{variant_name(v.formula, v.alpha)}"] = XQGSpec(**xcommon, alpha=v.alpha,
                                                                               formula=v.formula)
    if config.splade.enabled:
        on_tr = config.splade.on == "translation" and translated
        out["splade"] = ImpactSpec(encoder=config.splade.encoder, text="translation" if on_tr else "original",
                                   lang=tr.target_lang if on_tr else (langs[0] if langs else "en"),
                                   max_length=config.splade.max_length)
    for raw in config.components:
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise InputError(f"a recipe component needs a name: {raw!r}")
        if name in out:
            raise InputError(f"component name {name!r} is used twice")
        out[name] = parse_spec({k: v for k, v in raw.items() if k != "name"})
    if not out:
        raise InputError("the recipe enables no retrieval component (bm25, dense, splade or components)")
    return out


def expand_routes(components: dict[str, ComponentEntry], config: IndexConfig) -> tuple[dict[str, RouteEntry], str]:
    """Every route the components serve, the fusion templates whose parts exist, the recipe's fusions; and the
    default route."""
    routes: dict[str, RouteEntry] = {}
    idle = unserved(components)
    for name, entry in components.items():
        if name in idle:
            continue
        kind = get_kind(entry.kind)
        for route, spec in kind.routes(name, kind.spec.model_validate(entry.spec)):
            if route in routes:
                routes[route].components.extend(c for c in spec.components if c not in routes[route].components)
            else:
                routes[route] = spec
    for name, parts in FUSIONS:
        if all(p in routes for p in parts) and name not in routes:
            routes[name] = RouteEntry(fuse=parts, about=f"reciprocal rank fusion of {' and '.join(parts)}")
    best = [p for p in BEST_PARTS if p in routes]
    if len(best) >= 2 and "best" not in routes and not any(f.name == "best" for f in config.fusions):
        routes["best"] = RouteEntry(fuse=best, about=f"reciprocal rank fusion of {', '.join(best)} (untuned)")
    for f in config.fusions:
        missing = [p for p in f.fuse if p not in routes]
        if missing:
            raise InputError(f"fusion {f.name!r} names routes this index does not have: {missing}; it has "
                             f"{sorted(routes)}")
        if f.weights is not None and len(f.weights) != len(f.fuse):
            raise InputError(f"fusion {f.name!r}: {len(f.weights)} weights for {len(f.fuse)} routes")
        routes[f.name] = RouteEntry(fuse=f.fuse, method=f.method, weights=f.weights, norm=f.norm, rrf_k=f.rrf_k,
                                    rrf_fill=f.rrf_fill, about=f.about or _about(f))
    if config.default_route:
        if config.default_route not in routes:
            raise InputError(f"default_route {config.default_route!r} is not a route of this index: {sorted(routes)}")
        default = config.default_route
    else:
        default = next((r for r in DEFAULT_ROUTES if r in routes), next(iter(routes)))
    return routes, default


def unserved(components: dict[str, ComponentEntry]) -> dict[str, str]:
    """Components that serve no route in this index, and why: kinds over a component the index lacks (RM3 over
    bm25-dt, vector PRF over dense-dt, when the recipe translates nothing)."""
    out: dict[str, str] = {}
    for name, entry in components.items():
        kind = get_kind(entry.kind)
        if kind.missing is not None:
            why = kind.missing(kind.spec.model_validate(entry.spec), components)
            if why:
                out[name] = why
    return out


def language_mismatches(components: dict[str, ComponentEntry], languages: Iterable[str], config: IndexConfig
                        ) -> dict[str, str]:
    """Components whose encoder knows English only (encoders.ENGLISH_ONLY) but that read text in another language,
    and what they read. Why: all-MiniLM or SPLADE-tiny over French text builds and answers, at near-chance quality."""
    from .encoders import ENGLISH_ONLY

    tr = config.translate
    translated = bool(tr.translator and tr.translator != "none")
    original = set(languages)
    out: dict[str, str] = {}
    for name, entry in components.items():
        encoder, text = entry.spec.get("encoder"), entry.spec.get("text", "original")
        if encoder not in ENGLISH_ONLY:
            continue
        if not translated or text == "original":
            read = original            # "translation" falls back to the original where nothing is translated
        elif text == "translation":
            read = {tr.target_lang}
        else:                          # "both"
            read = original | {tr.target_lang}
        other = sorted(lang for lang in read if lang != "en")
        if other:
            out[name] = (f"its encoder {encoder!r} knows English only, and it reads text in {', '.join(other)}: "
                         "point it at an English translation (translate: {target_lang: en} and text: translation)")
    return out


def unserved_routes(components: dict[str, ComponentEntry]) -> dict[str, str]:
    """The routes those unserved components would serve (named by `route:` or after the component), and why not."""
    out: dict[str, str] = {}
    for name, why in unserved(components).items():
        kind = get_kind(components[name].kind)
        for route, _ in kind.routes(name, kind.spec.model_validate(components[name].spec)):
            out[route] = why
    return out


def _about(f) -> str:  # noqa: ANN001 - config.FusionSpec
    """What a recipe fusion does, in words (shown by GET /indexes and the page)."""
    parts = ", ".join(f"{p} x{w:g}" for p, w in zip(f.fuse, f.weights)) if f.weights else ", ".join(f.fuse)
    how = {"rrf": f"reciprocal rank fusion (k={f.rrf_k or 60})", "wsum": f"weighted sum of {f.norm} scores",
           "max": f"maximum of {f.norm} scores"}[f.method]
    fill = (f"; below the first {f.rrf_fill}, reciprocal rank fusion (k={f.rrf_k or 60}) of the same routes"
            if f.rrf_fill else "")
    return f"{how} of {parts}{fill}"
