"""Apertium, Debian's rule-based MT, behind the Translator protocol.

Why this backend: no neural fr<->en model can be fetched here, and Apertium runs offline on CPU at ~10k words/s.
fr->en has no direct pair in Debian, so it pivots through Spanish (fr-es | spa-eng), en->fr via eng-spa | es-fr.
Many texts go through ONE process pipeline per batch, each text on its own line followed by a blank line; the
output is realigned by that layout, and a batch whose layout does not come back intact is bisected, so that a
misalignment can never shift translations onto the wrong text.

Small calls (query translation: up to `persistent_max_words` words) go instead to long-lived pipelines shared by
the process (apertium_pipe.py): the same layout, the same realignment, the same output, without starting ~25
processes per call.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from functools import lru_cache

from ..errors import InputError, MissingBackendError, XsearchError
from . import apertium_pipe

APT_HINT = "apt-get install -y apertium apertium-fr-es apertium-eng-spa"
_ISO1 = {"eng": "en", "spa": "es", "fra": "fr", "fre": "fr", "cat": "ca", "por": "pt", "ita": "it", "deu": "de",
         "ger": "de", "oci": "oc", "glg": "gl", "eus": "eu", "nld": "nl", "ron": "ro", "arg": "an", "epo": "eo"}
_MODE = re.compile(r"^([a-z]{2,3})-([a-z]{2,3})$")  # plain pairs only: no "eco-fr-es", no "spa-eng_US"
# Everything Apertium or str.split("\n") could treat as a line break, plus NUL, becomes a space.
_TAG = re.compile(r" ?<[a-z][a-z0-9_]*>")
_BREAKS = re.compile(r"[\r\n\v\f\x00\x1c\x1d\x1e\x85\u2028\u2029]")
# Calls of at most this many words (and batch_size texts) use the persistent pipelines. Measured (docs/performance.md,
# TALN sentences fr->en, 2 busy cores): the persistent path took 13 ms for 21 words (batch path 542 ms), 1.0 s for
# 2,182 (1.7 s), and the same 3.1 s for 9,547; above ~10,000 words the batch path is as fast, and its own processes
# leave the shared pipelines to the queries. Half the crossover: no call is much slower than on the other path.
PERSISTENT_MAX_WORDS = 5000


def _iso1(code: str) -> str:
    return _ISO1.get(code.lower(), code.lower())


def find_route(modes: Sequence[str], src: str, tgt: str) -> list[str] | None:
    """Shortest chain of installed modes from src to tgt (ISO 639-1 or -3 codes), e.g. ['fr-es', 'spa-eng']."""
    edges: dict[str, list[tuple[str, str]]] = {}
    for mode in modes:
        m = _MODE.match(mode)
        if m:
            edges.setdefault(_iso1(m[1]), []).append((_iso1(m[2]), mode))
    start, goal = _iso1(src), _iso1(tgt)
    seen = {start}
    queue: deque[tuple[str, list[str]]] = deque([(start, [])])
    while queue:
        lang, path = queue.popleft()
        if lang == goal:
            return path
        for nxt, mode in edges.get(lang, []):
            if nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, [*path, mode]))
    return None


class ApertiumTranslator:
    """Translator over the `apertium` command.

    A call of up to `persistent_max_words` words (and `batch_size` texts) goes to a persistent pipeline of its
    route (a pool of `pool_size` per route, shared by every translator of the process; `pipe_timeout_s` per
    request), as one request, so it gets what one batch run gives; a bigger one runs fresh `apertium` processes,
    `batch_size` texts per run (~0.25 s start-up each), and never holds up the queries.
    `persistent_max_words=0` turns the persistent path off.
    """

    name = "apertium"

    def __init__(self, binary: str = "apertium", batch_size: int = 1000, timeout_s: float = 3600.0, *,
                 persistent_max_words: int = PERSISTENT_MAX_WORDS, pipe_timeout_s: float = 60.0,
                 pool_size: int = 2):
        path = shutil.which(binary)
        if path is None:
            raise MissingBackendError(f"the Apertium program '{binary}' is not on PATH; on Debian/Ubuntu: {APT_HINT}")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if persistent_max_words < 0 or pool_size < 1 or pipe_timeout_s <= 0:
            raise InputError(f"need persistent_max_words >= 0, pool_size >= 1, pipe_timeout_s > 0; got "
                             f"{persistent_max_words}, {pool_size}, {pipe_timeout_s}")
        self.binary, self.batch_size, self.timeout_s = path, batch_size, timeout_s
        self.persistent_max_words, self.pipe_timeout_s, self.pool_size = persistent_max_words, pipe_timeout_s, pool_size
        self._routes_used: set[tuple[str, ...]] = set()
        self._unsupported: set[tuple[str, ...]] = set()
        self._env = {**os.environ, "LC_ALL": "C.UTF-8"}  # lttoolbox needs a UTF-8 locale for non-ASCII text
        out = subprocess.run([path, "-l"], check=False, capture_output=True, text=True, env=self._env, timeout=60)
        self.modes = [line.strip() for line in out.stdout.splitlines() if line.strip()]

    @property
    def model_id(self) -> str:
        """Installed Apertium package versions: an upgrade changes the id, so caches do not serve stale output."""
        return _debian_versions()

    def route(self, src: str, tgt: str) -> list[str]:
        """The modes that translate src->tgt, or MissingBackendError naming the packages to install."""
        route = find_route(self.modes, src, tgt)
        if route is None:
            raise MissingBackendError(
                f"no Apertium route {src}->{tgt} among the installed pairs {self.modes or '(none)'}; "
                f"for French<->English on Debian/Ubuntu: {APT_HINT}")
        return route

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        if isinstance(texts, str):
            raise InputError("translate() takes a sequence of texts, not one string")
        if not src or not tgt:
            raise InputError(f"source and target languages are required, got src={src!r} tgt={tgt!r}")
        if _iso1(src) == _iso1(tgt):
            return list(texts)
        route = self.route(src, tgt)
        lines = [_BREAKS.sub(" ", t) for t in texts]
        if self._small(lines):
            return self._aligned(lines, route, self._persistent)
        out: list[str] = []
        for i in range(0, len(lines), self.batch_size):
            out.extend(self._aligned(lines[i:i + self.batch_size], route))
        return out

    def _aligned(self, lines: list[str], route: list[str],
                 run: Callable[[str, list[str]], str] | None = None) -> list[str]:
        """Translate lines through `run` (default: a fresh pipeline per call, `_pipeline`) and realign them."""
        if not lines:
            return []
        run = run or self._pipeline
        # A blank line after each text is a paragraph break: the tagger and the capitalisation of the next
        # text then start afresh, so a text mostly translates the same in any batch as alone (exceptions, from
        # Apertium's transfer and tagger state and from texts ending in an abbreviation: docs/performance.md s. 6).
        got = run("".join(line + "\n\n" for line in lines), route).split("\n")
        if len(got) == 2 * len(lines) + 1 and not any(got[1::2]):
            return [_strip_leaked_tags(out, text) for out, text in zip(got[0::2], lines)]
        if len(lines) == 1:
            return [_strip_leaked_tags(" ".join(g.strip() for g in got if g.strip()), lines[0])]
        mid = len(lines) // 2  # a line was merged or split: bisect so the damage stays inside one text
        return self._aligned(lines[:mid], route, run) + self._aligned(lines[mid:], route, run)

    def _small(self, lines: list[str]) -> bool:
        if not lines or len(lines) > self.batch_size or self.persistent_max_words == 0:
            return False
        words = 0
        for line in lines:
            words += len(line.split())
            if words > self.persistent_max_words:
                return False
        return True

    def _pool(self, route: list[str]) -> apertium_pipe.PipelinePool:
        self._routes_used.add(tuple(route))
        return apertium_pipe.get_pool(self.binary, route, self._env, self.pool_size)

    def _persistent(self, data: str, route: list[str]) -> str:
        """What `_pipeline(data, route)` returns, from the route's long-lived pipeline (one request).

        A route whose modes cannot run that way here (apertium_pipe.Unsupported: no apertium-wblank-mode, a mode
        file with shell constructs) takes the batch path, with a warning once."""
        if tuple(route) not in self._unsupported:
            try:
                return self._pool(route).run(data, self.pipe_timeout_s)
            except apertium_pipe.Unsupported as exc:
                self._unsupported.add(tuple(route))
                warnings.warn(f"Apertium {' | '.join(route)}: no persistent pipeline ({exc}); "
                              "every call starts new processes", RuntimeWarning, stacklevel=2)
        return self._pipeline(data, route)

    def close(self) -> None:
        """Close the persistent pipelines of the routes this translator used (shared ones restart on demand)."""
        for route in list(self._routes_used):
            self._routes_used.discard(route)
            apertium_pipe.get_pool(self.binary, list(route), self._env, self.pool_size).close()

    def __enter__(self) -> ApertiumTranslator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pipeline(self, data: str, route: list[str]) -> str:
        """Run `apertium -u m1 | apertium -u m2 | ...` on data; raise with stderr if any stage fails."""
        procs: list[subprocess.Popen[bytes]] = []
        errs = [tempfile.TemporaryFile() for _ in route]  # noqa: SIM115 - closed in finally
        try:
            for mode, err in zip(route, errs):
                stdin = procs[-1].stdout if procs else subprocess.PIPE
                procs.append(subprocess.Popen([self.binary, "-u", mode], stdin=stdin, stdout=subprocess.PIPE,
                                              stderr=err, env=self._env, start_new_session=True))
                if len(procs) > 1 and procs[-2].stdout is not None:
                    procs[-2].stdout.close()  # the next stage owns it now

            def feed() -> None:
                assert procs[0].stdin is not None
                try:
                    procs[0].stdin.write(data.encode("utf-8"))
                except BrokenPipeError:
                    pass  # the stage died; its exit status reports it below
                finally:
                    procs[0].stdin.close()

            writer = threading.Thread(target=feed, daemon=True)
            writer.start()
            expired = threading.Event()

            def expire() -> None:
                expired.set()
                _kill_groups(procs)

            timer = threading.Timer(self.timeout_s, expire)
            timer.start()
            try:
                assert procs[-1].stdout is not None
                out = procs[-1].stdout.read()
                writer.join()
                codes = [p.wait() for p in procs]
            finally:
                timer.cancel()
            if expired.is_set():
                raise XsearchError(f"apertium {' | '.join(route)} timed out after {self.timeout_s} s "
                                   f"on {len(data)} characters")
            # The last failing stage is the cause: a stage upstream of it dies of SIGPIPE, one downstream sees EOF.
            for mode, code, err in reversed(list(zip(route, codes, errs))):
                if code != 0:
                    err.seek(0)
                    msg = err.read().decode("utf-8", "replace").strip()[-500:]
                    raise XsearchError(f"apertium -u {mode} failed with exit status {code}: {msg}")
            return out.decode("utf-8", "replace")
        finally:
            _kill_groups(procs)
            for p in procs:
                if p.stdout is not None:
                    p.stdout.close()
            for err in errs:
                err.close()


def _kill_groups(procs: list[subprocess.Popen[bytes]]) -> None:
    """`apertium` is a shell script over ~10 processes: kill each stage's whole process group, not just the shell."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def _strip_leaked_tags(out: str, text: str) -> str:
    """Drop analysis tags that a pair leaks into its output ("x y" -> "x <prn>"), unless the input had them."""
    if "<" not in out:
        return out
    return _TAG.sub(lambda m: m[0] if m[0].strip() in text else "", out)


@lru_cache(maxsize=1)
def _debian_versions() -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}=${Version}\\n", "apertium*"],
                             check=False, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "apertium"
    installed = sorted(line for line in out.splitlines() if not line.endswith("="))
    return ",".join(installed) or "apertium"
