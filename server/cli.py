"""`xsearch serve`: run the HTTP server on one index (also `python -m server`)."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence


def add_serve_command(sub) -> None:  # noqa: ANN001 - argparse's _SubParsersAction
    """Register `serve` on an argparse sub-parser set (xsearch's CLI calls this)."""
    p = sub.add_parser("serve", help="serve an index over HTTP: search API, web page, live updates",
                       description="Serve an index over HTTP. The API key for writes is read from the environment "
                                   "(XSEARCH_API_KEY), never from the command line; without it writes are off.")
    _arguments(p)
    p.set_defaults(func=cmd_serve)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", default=None, help="index folder (default: $XSEARCH_INDEX)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-k", type=int, default=None, help="largest k a search may ask for (default 100)")
    p.add_argument("--read-auth", action="store_true", default=None, help="require the API key for reads too")
    p.add_argument("--warm", action="store_true", default=None,
                   help="open every route and load its models before accepting requests")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes (uvicorn), each with its own copy of the models; a write through any "
                        "of them is seen by every worker's next search (default 1)")
    p.add_argument("--ray", default=None, metavar="local|auto|ADDRESS",
                   help="a sharded index only: hold each shard in a Ray actor on that cluster (the `ray` extra), "
                        "so the cluster's memory, not this machine's, bounds the index")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def cmd_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    import os

    from .settings import ServerSettings

    if not args.index and not os.environ.get("XSEARCH_INDEX"):
        print("xsearch serve: give the index folder: --index PATH (or set XSEARCH_INDEX)", file=sys.stderr)
        return 2
    try:
        settings = ServerSettings.from_env(index=args.index, max_k=args.max_k, read_auth=args.read_auth,
                                           warm=args.warm, ray=args.ray)
    except ValidationError as exc:
        print(f"xsearch serve: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"xsearch serve: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    import uvicorn

    print(f"serving {settings.index} on http://{args.host}:{args.port}/ with {args.workers} worker(s) (API at "
          f"/api/docs; writes {'need X-API-Key' if settings.api_key else 'disabled: no XSEARCH_API_KEY'})",
          file=sys.stderr)
    if args.workers == 1:
        from .app import create_app

        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level, workers=1)
        return 0
    # each worker process builds its own app from the environment (the key is there already, never on argv)
    os.environ.update(settings_env(settings))
    uvicorn.run("server.app:create_app", factory=True, host=args.host, port=args.port, log_level=args.log_level,
                workers=args.workers)
    return 0


def settings_env(settings) -> dict[str, str]:  # noqa: ANN001 - ServerSettings
    """XSEARCH_* variables that rebuild `settings` (the API key excepted: it comes from the environment)."""
    values = settings.model_dump(exclude={"api_key"}, exclude_none=True)
    return {f"XSEARCH_{name.upper()}": str(value).lower() if isinstance(value, bool) else str(value)
            for name, value in values.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="serve an xsearch index over HTTP")
    _arguments(parser)
    args = parser.parse_args(argv)
    from xsearch.errors import XsearchError

    try:
        return cmd_serve(args)
    except XsearchError as exc:
        print(f"xsearch serve: error: {exc}", file=sys.stderr)
        return 2
