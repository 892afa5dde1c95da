"""Stored-field filters and facet counts over a search's candidates (the index searches, then filters).

A filter maps field names to accepted values: {"year": "2005"} or {"venue": ["taln", "recital"]}. A document
passes when every named field holds one of its accepted values (a list field: any of its items); values compare
as case-folded, stripped strings, so year=2005 matches the integer 2005 and venue=TALN matches "taln".
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping, Sequence, Union

from .errors import InputError

Filters = Mapping[str, Union[str, int, Sequence[Union[str, int]]]]
MAX_FILTER_FIELDS = 20  # the server takes year, venue and 10 field= filters


def norm(value: Any) -> str:
    return str(value).strip().casefold()


def as_filters(filters: Filters | None) -> dict[str, list[str]]:
    """{field: [accepted value, ...]} from a mapping of a value or a list of values; InputError when malformed."""
    out: dict[str, list[str]] = {}
    for name, wanted in (filters or {}).items():
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"a filter needs a field name, got {name!r}")
        values = [wanted] if isinstance(wanted, (str, int)) else list(wanted)
        if not values or not all(isinstance(v, (str, int)) and str(v).strip() for v in values):
            raise InputError(f"filter {name!r} needs non-empty values, got {wanted!r}")
        out.setdefault(name.strip(), []).extend(str(v).strip() for v in values)
    if len(out) > MAX_FILTER_FIELDS:
        raise InputError(f"at most {MAX_FILTER_FIELDS} filtered fields, got {len(out)}")
    return out


def parse_filter(text: str) -> tuple[str, str]:
    """'field=value' (the CLI's --filter) -> (field, value)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise InputError(f"a filter must look like field=value (e.g. year=2005), got {text!r}")
    return name.strip(), value.strip()


def _values(fields: Mapping[str, Any], name: str) -> list[Any]:
    value = fields.get(name)
    return [v for v in (value if isinstance(value, list) else [value]) if v is not None and v != ""]


def matches(fields: Mapping[str, Any] | None, filters: Mapping[str, Sequence[str]]) -> bool:
    if fields is None:
        return False
    for name, wanted in filters.items():
        accepted = {norm(w) for w in wanted}
        if not any(norm(v) in accepted for v in _values(fields, name)):
            return False
    return True


def facet_counts(fields: Iterable[Mapping[str, Any]], names: Sequence[str], top: int) -> dict[str, dict[str, int]]:
    """{field: {value: documents holding it}} for each of `names`, the `top` most frequent values of each (ties in
    value order); a list field counts each of its items; values are shown as stored (the first spelling seen)."""
    rows = list(fields)
    out: dict[str, dict[str, int]] = {}
    for name in names:
        counts: Counter[str] = Counter()
        shown: dict[str, str] = {}
        for f in rows:
            held: dict[str, str] = {}   # a document counts once per value
            for v in _values(f, name):
                if not isinstance(v, (dict, list)):
                    held.setdefault(norm(v), str(v))
            for key, text in held.items():
                counts[key] += 1
                shown.setdefault(key, text)
        best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        out[name] = {shown[key]: n for key, n in best}
    return out
