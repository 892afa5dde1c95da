"""Server settings: typed (pydantic), read from XSEARCH_* environment variables, overridable by the CLI.

Defaults for search depth come from xsearch.config.SearchDefaults (the one source of defaults); the server's own
cap on k (max_k, default 100) may not exceed the library's.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from xsearch.config import SearchDefaults

from .auth import MIN_KEY_CHARS

SEARCH = SearchDefaults()
ENV_PREFIX = "XSEARCH_"


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: Path = Field(description="the index folder to serve (XSEARCH_INDEX)")
    api_key: Optional[SecretStr] = Field(None, description="key for writes, sent as the X-API-Key header "
                                                           "(XSEARCH_API_KEY); unset = writes disabled")
    read_auth: bool = Field(False, description="require the API key for reads too (XSEARCH_READ_AUTH)")
    max_k: int = Field(min(100, SEARCH.max_k), ge=1, le=SEARCH.max_k,
                       description="largest k a search may ask for (XSEARCH_MAX_K)")
    max_query_chars: int = Field(1000, ge=1, le=100_000, description="longest query accepted, in characters")
    filter_depth: int = Field(SEARCH.filter_depth, ge=1, le=SEARCH.max_k,
                              description="candidates ranked before field filters (year=..., venue=...) and facets "
                                          "apply (XSEARCH_FILTER_DEPTH; default xsearch.config.SearchDefaults)")
    search_budget_s: float = Field(10.0, gt=0, le=600, description="longest a client waits for one search before "
                                                                "a 503 (XSEARCH_SEARCH_BUDGET_S)")
    max_batch_docs: int = Field(1000, ge=1, le=100_000, description="most documents in one POST /docs batch")
    max_body_bytes: int = Field(50_000_000, ge=1024, description="largest request body accepted")
    warm: bool = Field(False, description="open every route (and load its models) at start-up (XSEARCH_WARM)")
    ray: Optional[str] = Field(None, description="hold a sharded index's shards in Ray actors on this cluster: "
                                                 "local, auto or an address (XSEARCH_RAY); unset = in this process")

    @model_validator(mode="after")
    def _check(self) -> "ServerSettings":
        if self.api_key is not None and not self.api_key.get_secret_value():
            self.api_key = None
        if self.api_key is not None and len(self.api_key.get_secret_value()) < MIN_KEY_CHARS:
            raise ValueError(f"api_key (XSEARCH_API_KEY) must be at least {MIN_KEY_CHARS} characters, got "
                             f"{len(self.api_key.get_secret_value())}: a short key can be guessed")
        if self.read_auth and self.api_key is None:
            raise ValueError("read_auth needs an api_key (set XSEARCH_API_KEY)")
        return self

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> "ServerSettings":
        """XSEARCH_<FIELD> variables (XSEARCH_INDEX, XSEARCH_API_KEY, XSEARCH_MAX_K, ...), then `overrides`
        (None values are ignored, so CLI options that were not given leave the environment's value)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
