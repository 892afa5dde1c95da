"""Long-lived Apertium pipelines for small batches (query translation), shared by the whole process.

Why: `apertium fr-es | apertium spa-eng` starts ~25 processes and loads every dictionary on each call (~0.2 s),
twenty times a BM25 query. Here each mode's stage programs (lt-proc, apertium-tagger, ... from the mode file,
each with its null-flush flag `-z`, as `apertium-wblank-mode -z` writes them) run once; a request is the
deformatted text followed by a NUL byte, and its translation is everything up to the NUL that comes back.

What was found by trying Debian's apertium 3.8.3: `apertium -z` does not flush, because its format stages
`apertium-destxt` and `apertium-retxt` (flex scanners reading whole blocks) ignore NUL; only the mode's stage
programs honour `-z`. So the two format stages are done here in Python, rule for rule as Apertium's txt format
(`txt-format.xml` through `deformat.xsl` / `reformat.xsl`) defines them; tests/test_translate.py checks them
against the real programs. Everything else is Apertium's own programs, so a request gives exactly what the
batch path (`ApertiumTranslator._pipeline`) gives for the same text. One program keeps state from one request to
the next, apertium-tagger (see WATCHED_PROGRAMS): it runs with -d, and one that reports a change of its model is
replaced by a spare started ahead of time, so every request is tagged as by a fresh process.

Safety: one request at a time per pipeline (a small pool per route), a deadline on every request (a hung
pipeline is killed, reaped and restarted, and the call raises XsearchError), a dead pipeline restarted and the
request retried once, more than one NUL in an answer treated as a broken pipeline, and all pipelines closed at
interpreter exit (atexit) or by close_all().
"""
from __future__ import annotations

import atexit
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from ..errors import XsearchError

# --- Apertium's txt format, in Python --------------------------------------------------------------------------
# txt-format.xml (Apertium 3.8): escape chars []\/@<>^${}, space chars " \n\t\r~", one format rule
# (("\n\n")|("\r\n\r\n"))+ with eos="yes", large blocks above 8192 characters. deformat.xsl turns that into a
# flex scanner: space chars collect in a buffer; the next other character prints the buffer (".[]" first when an
# end of sentence was seen, then the buffer as a superblank "[...]" unless it is one plain space or empty) and
# itself (escaped with "\" when it is an escape char); at EOF the buffer is printed as after an end of sentence.
_DES_TOKEN = re.compile(r"([ \t\r\n~]+)|([\]\[\\/@<>^${}])|([^\]\[\\/@<>^${} \t\r\n~]+)")
_EOS = ("\n\n", "\r\n\r\n")
LARGE_BLOCK = 8192  # destxt moves a longer blank into a temporary file ("[@/tmp/...]"); inline here, same output


def destxt(text: str) -> str:
    """`apertium-destxt` (no options) on `text`: Apertium's stream format, with blanks as superblanks."""
    out: list[str] = []
    blank = ""
    dot = False

    def flush() -> None:
        nonlocal blank, dot
        if dot:
            out.append(".[]")
            dot = False
        if len(blank) > 1 or (blank and blank != " "):
            out.append(f"[{blank}]")  # blanks hold only space chars, which need no escaping
        else:
            out.append(blank)
        blank = ""

    for m in _DES_TOKEN.finditer(text):
        space, esc, word = m.groups()
        if space is not None:
            blank += space
            dot = dot or any(e in space for e in _EOS)
        else:
            flush()
            out.append("\\" + esc if esc is not None else word)
    dot = True
    flush()
    return "".join(out)


# reformat.xsl's rules, longest match first as flex takes them: "[@file]" (a large block), "[\@" -> "@",
# ".[]" -> "", "\" + escape char -> the char, "[" or "]" -> "", anything else as is.
_RE_TOKEN = re.compile(r"\[@[^\]]+\]|\[\\@|\.\[\]|\\[\]\[\\/@<>^${}]|[\[\]]")


def _re_token(m: re.Match[str]) -> str:
    tok = m[0]
    if tok.startswith("[@"):
        raise XsearchError(f"unexpected large-block reference {tok[:80]!r} in Apertium's output")
    if tok == "[\\@":
        return "@"
    if tok[0] == "\\":
        return tok[1]
    return ""


def retxt(stream: str) -> str:
    """`apertium-retxt` on Apertium's stream format: plain text back."""
    return _RE_TOKEN.sub(_re_token, stream)


# --- the stage programs of one mode ----------------------------------------------------------------------------
def apertium_dirs(binary: str) -> tuple[Path, Path]:
    """(APERTIUM_PATH, APERTIUM_DATADIR) as the `apertium` script at `binary` would use them."""
    path, datadir = str(Path(binary).parent), "/usr/share/apertium"
    try:
        script = Path(binary).read_text(encoding="utf-8", errors="replace")[:20_000]
    except OSError:
        script = ""
    m = re.search(r'^APERTIUM_PATH="\$\{APERTIUM_PATH:-([^}"]*)\}"', script, re.M)
    if m:
        path = m[1]
    m = re.search(r'^APERTIUM_DATADIR="\$\{APERTIUM_DATADIR:-([^}"]*)\}"', script, re.M)
    if m:
        datadir = m[1]
    return Path(os.environ.get("APERTIUM_PATH", path)), Path(os.environ.get("APERTIUM_DATADIR", datadir))


class Unsupported(XsearchError):
    """This installation's mode cannot run as a persistent pipeline (the batch path still can)."""


def mode_commands(binary: str, mode: str, env: dict[str, str]) -> list[list[str]]:
    """The stage programs of `mode` with their null-flush flags, as argument lists.

    `apertium -u` runs the mode file (through `apertium-wblank-mode`) with $1 = "-n" (no unknown-word marks)
    and $2 = "" (no tagger option); a mode file with any other shell construct is refused (Unsupported).
    """
    bindir, datadir = apertium_dirs(binary)
    mode_file = datadir / "modes" / f"{mode}.mode"
    if not mode_file.is_file():
        raise XsearchError(f"apertium -u {mode} failed: no mode file {mode_file}")
    wblank = shutil.which("apertium-wblank-mode", path=f"{bindir}{os.pathsep}{env.get('PATH', '')}")
    if wblank is None:
        raise Unsupported(f"apertium-wblank-mode not found beside {binary}: cannot run {mode} persistently")
    script = subprocess.run([wblank, "-z", str(mode_file)], check=False, capture_output=True, text=True, env=env,
                            timeout=30).stdout.strip()
    lexer = shlex.shlex(script, posix=True, punctuation_chars="|&;<>()")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for tok in lexer:
        if tok == "|":
            commands.append([])
        elif tok == "$1":
            commands[-1].append("-n")
        elif tok == "$2":
            continue  # unquoted and empty in `apertium -u`: no argument at all
        elif any(c in tok for c in "|&;<>()$`") or not tok:
            raise Unsupported(f"mode {mode}: cannot run {tok!r} without a shell: {script[:200]}")
        else:
            commands[-1].append(tok)
    if not all(commands):
        raise Unsupported(f"mode {mode}: empty pipeline stage in {script[:200]!r}")
    for cmd in commands:
        found = shutil.which(cmd[0], path=f"{bindir}{os.pathsep}{env.get('PATH', '')}")
        if found is None:
            raise Unsupported(f"mode {mode}: program {cmd[0]!r} not found")
        cmd[0] = found
    return commands


START_ALLOWANCE_S = 30.0  # added to the first request's deadline after a (re)start


class PipeDied(XsearchError):
    """The pipeline exited, or answered out of step, in the middle of a request."""


class Chain:
    """Stage programs chained by OS pipes, kept running; `request` sends one NUL-ended input."""

    def __init__(self, mode: str, commands: list[list[str]], env: dict[str, str]):
        self.mode, self.commands, self.env = mode, commands, env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.requests = 0  # answered since the last start
        self._err: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def start(self) -> None:
        self.kill()
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in kill()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for cmd in self.commands:
                # one process group per pipeline (killed at once), and not the caller's: a Ctrl-C in a terminal
                # reaches Python, which closes the pipelines, instead of killing them under a running request
                group = procs[0].pid if procs else 0
                procs.append(subprocess.Popen(cmd, stdin=procs[-1].stdout if procs else subprocess.PIPE,
                                              stdout=subprocess.PIPE, stderr=self._err, env=self.env,
                                              process_group=group))
                if len(procs) > 1 and procs[-2].stdout is not None:
                    procs[-2].stdout.close()  # the next stage owns it now
        except OSError as exc:
            self.procs = procs
            self.kill()
            raise XsearchError(f"apertium {self.mode}: cannot start {cmd[0]}: {exc}") from exc
        self.procs = procs
        self.requests = 0
        assert procs[0].stdin is not None
        os.set_blocking(procs[0].stdin.fileno(), False)

    def stderr_size(self) -> int:
        return os.fstat(self._err.fileno()).st_size if self._err is not None else 0

    def stderr_tail(self) -> str:
        if self._err is None:
            return ""
        try:
            self._err.seek(0)
            return self._err.read().decode("utf-8", "replace").strip()[-500:]
        except (OSError, ValueError):
            return ""

    def request(self, data: bytes, deadline: float) -> bytes:
        """Write data + NUL, read up to the NUL; TimeoutError past `deadline` (monotonic), PipeDied on EOF."""
        if b"\0" in data:
            raise XsearchError("a request to a null-flush pipeline must not contain NUL")
        stdin, stdout = self.procs[0].stdin, self.procs[-1].stdout
        assert stdin is not None and stdout is not None
        todo = memoryview(data + b"\0")
        got: list[bytes] = []
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            sel.register(stdin, selectors.EVENT_WRITE)
            writing = True
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(self.mode)
                for key, _ in sel.select(left):
                    if key.fileobj is stdin:
                        try:
                            n = os.write(stdin.fileno(), todo[:65536])
                        except BlockingIOError:
                            continue
                        except (BrokenPipeError, OSError) as exc:
                            raise PipeDied(f"{self.mode}: the first stage closed its input ({exc})") from exc
                        todo = todo[n:]
                        if not todo and writing:
                            sel.unregister(stdin)
                            writing = False
                    else:
                        chunk = os.read(stdout.fileno(), 65536)
                        if not chunk:
                            raise PipeDied(f"{self.mode}: the pipeline ended in the middle of a request")
                        got.append(chunk)
                        if b"\0" in chunk:
                            out = b"".join(got)
                            if out.index(b"\0") != len(out) - 1 or writing:
                                raise PipeDied(f"{self.mode}: answer out of step with the request")
                            self.requests += 1
                            return out[:-1]

    def kill(self) -> None:
        """SIGKILL the whole group (a stopped or hung stage too) and reap every stage."""
        if self.procs:
            try:
                os.killpg(self.procs[0].pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for p in self.procs:
                if p.poll() is None:
                    try:
                        p.kill()
                    except ProcessLookupError:
                        pass
        self._reap()

    def end_input(self) -> None:
        """Close our ends of the pipes: each stage then sees end of input and exits."""
        if self.procs:
            for f in (self.procs[0].stdin, self.procs[-1].stdout):
                try:
                    if f is not None:
                        f.close()
                except OSError:
                    pass

    def close(self, timeout: float = 5.0) -> None:
        """End of input, so each stage exits on its own; whatever still runs after `timeout` is killed."""
        if self.procs:
            self.end_input()
            end = time.monotonic() + timeout
            for p in self.procs:
                try:
                    p.wait(max(0.0, end - time.monotonic()))
                except subprocess.TimeoutExpired:
                    break
        self.kill()

    def _reap(self) -> None:
        for p in self.procs:
            for f in (p.stdin, p.stdout):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILLed processes exit
                pass
        self.procs = []
        if self._err is not None:
            self._err.close()
            self._err = None


# apertium-tagger keeps state across texts: when a word has an ambiguity class that its model lacks, 3.8.3's
# find_similar_ambiguity_class() assigns a smaller class to a *reference* to the model's open class, so every later
# unknown word is tagged from that smaller class, in the same stream and after a NUL alike (es-fr: after "Centro de
# llamada", "Dimensiones : léxico ..." tags léxico <n>; alone, <adj>). A batch run starts with a pristine model. So
# the tagger runs with -d, which reports each such word on stderr, and a tagger that reported one is retired after
# that request (its answer is right: the change only affects later words); the next request gets a new one, started
# ahead of time. Every request thus starts from the state a batch run starts from.
WATCHED_PROGRAMS = {"apertium-tagger": "-d"}  # program -> the flag that makes it report a change of its state


class WatchedStage:
    """A stage program reused while it reports nothing on stderr, else replaced; replacements start ahead.

    `spares` processes are kept started (by a background thread, so neither the start nor the loading of the
    program's data lies on a request's path); a retired process has its input closed and is reaped later.
    """

    def __init__(self, mode: str, command: list[str], env: dict[str, str], spares: int = 1):
        self.mode, self.env, self.spares = mode, env, spares
        self.command = [command[0], WATCHED_PROGRAMS[Path(command[0]).name], *command[1:]]
        self._lock = threading.Lock()
        self._current: Chain | None = None
        self._ready: deque[Chain] = deque()
        self._used: list[Chain] = []  # retired, input closed, exiting: reaped later, off the request's path
        self._filler: threading.Thread | None = None
        self._closed = False
        self.retired = 0  # processes replaced because they reported a change of state

    @property
    def procs(self) -> list[subprocess.Popen[bytes]]:
        with self._lock:
            chains = ([self._current] if self._current is not None else []) + list(self._ready)
            return [p for chain in chains for p in chain.procs]

    def _new(self) -> Chain:
        chain = Chain(self.mode, [self.command], self.env)
        chain.start()
        return chain

    def _fill(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._closed or len(self._ready) >= self.spares:
                        return
                chain = self._new()
                with self._lock:
                    if self._closed:
                        chain.kill()
                        return
                    self._ready.append(chain)
        except XsearchError:
            return  # the next request starts its process itself and reports the error
        finally:
            with self._lock:
                self._filler = None

    def _refill(self) -> None:
        with self._lock:
            if self._filler is not None or self._closed or len(self._ready) >= self.spares:
                return
            self._filler = threading.Thread(target=self._fill, name=f"apertium-{self.mode}-spare", daemon=True)
            self._filler.start()

    def _reap(self, force: bool = False) -> None:
        keep = []
        for chain in self._used:
            if force or not chain.alive():
                chain.kill()  # reaps (and kills one that has not exited yet)
            else:
                keep.append(chain)
        self._used = keep
        with self._lock:
            dead = [c for c in self._ready if not c.alive()]
            self._ready = deque(c for c in self._ready if c not in dead)
        for chain in dead:  # a spare that died (killed from outside) is reaped and replaced
            chain.kill()

    def start(self) -> None:
        with self._lock:
            self._closed = False
        self._refill()

    def alive(self) -> bool:
        return True  # a dead process is replaced at the next request

    def _take(self) -> Chain:
        with self._lock:
            self._closed = False
            if self._current is not None and self._current.alive():
                return self._current
            if self._current is not None:
                self._current.kill()
                self._current = None
            while self._ready:
                chain = self._ready.popleft()
                if chain.alive():
                    self._current = chain
                    break
                chain.kill()
        if self._current is None:
            self._current = self._new()
        self._refill()
        return self._current

    def request(self, data: bytes, deadline: float) -> bytes:
        self._reap()
        chain = self._take()
        before = chain.stderr_size()
        try:
            out = chain.request(data, deadline)
        except BaseException:
            chain.kill()
            self._current = None
            raise
        if chain.stderr_size() != before:  # it reported a change of its state: not reused
            chain.end_input()
            self._used.append(chain)
            self._current = None
            self.retired += 1
            self._refill()
        return out

    def stderr_tail(self) -> str:
        return self._current.stderr_tail() if self._current is not None else ""

    def _stop(self) -> list[Chain]:
        with self._lock:
            self._closed = True
            filler = self._filler
        if filler is not None:
            filler.join(30)
        with self._lock:
            chains = ([self._current] if self._current is not None else []) + list(self._ready)
            self._current, self._ready = None, deque()
        return chains

    def kill(self) -> None:
        for chain in self._stop():
            chain.kill()
        self._reap(force=True)

    def close(self, timeout: float = 5.0) -> None:
        for chain in [*self._stop(), *self._used]:
            chain.close(timeout)
        self._used = []


class ModePipe:
    """One mode: its stage programs as persistent chains, the WATCHED_PROGRAMS among them as WatchedStages."""

    def __init__(self, mode: str, commands: list[list[str]], env: dict[str, str]):
        self.mode = mode
        self.segments: list[Chain | WatchedStage] = []
        run: list[list[str]] = []
        for cmd in commands:
            if Path(cmd[0]).name in WATCHED_PROGRAMS:
                if run:
                    self.segments.append(Chain(mode, run, env))
                    run = []
                self.segments.append(WatchedStage(mode, cmd, env))
            else:
                run.append(cmd)
        if run:
            self.segments.append(Chain(mode, run, env))

    @property
    def procs(self) -> list[subprocess.Popen[bytes]]:
        """The long-lived processes, in pipeline order (a watched stage's spares included)."""
        return [p for seg in self.segments for p in seg.procs]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> bool:
        return all(seg.alive() for seg in self.segments if isinstance(seg, Chain))

    def start(self) -> None:
        for seg in self.segments:
            seg.start()

    def request(self, data: bytes, deadline: float) -> bytes:
        for seg in self.segments:
            data = seg.request(data, deadline)
        return data

    def stderr_tail(self) -> str:
        return " ".join(m for seg in self.segments if (m := seg.stderr_tail()))

    def kill(self) -> None:
        for seg in self.segments:
            seg.kill()

    def close(self, timeout: float = 5.0) -> None:
        for seg in self.segments:
            seg.close(timeout)


class RoutePipeline:
    """The pipes of one route (e.g. fr-es then spa-eng), used by one request at a time (the pool sees to it)."""

    def __init__(self, route: Sequence[str], commands: list[list[list[str]]], env: dict[str, str]):
        self.route = list(route)
        self.pipes = [ModePipe(mode, cmds, env) for mode, cmds in zip(route, commands)]

    @property
    def pids(self) -> list[int]:
        return [pid for pipe in self.pipes for pid in pipe.pids]

    def run(self, text: str, timeout_s: float) -> str:
        """Plain text in, plain text out, as `apertium -u m1 | apertium -u m2 ...` would give it."""
        for attempt in (0, 1):
            fresh = False
            for pipe in self.pipes:
                if not pipe.alive():
                    pipe.start()
                    fresh = True
            # a pipeline that just started loads its dictionaries during its first request (~0.3 s, more on a
            # busy machine): that load does not count against a short per-request timeout
            deadline = time.monotonic() + timeout_s + (START_ALLOWANCE_S if fresh else 0.0)
            try:
                out = text
                for pipe in self.pipes:
                    out = retxt(pipe.request(destxt(out).encode("utf-8"), deadline).decode("utf-8", "replace"))
                return out
            except TimeoutError:
                self.kill()
                raise XsearchError(f"apertium {' | '.join(self.route)} (persistent pipeline) timed out after "
                                   f"{timeout_s} s on {len(text)} characters; the pipeline was killed and will "
                                   f"be restarted") from None
            except PipeDied as exc:
                # A stage that died between requests (killed, crashed) is seen here: restart and retry once.
                # A pipeline that dies on its first request has a real cause: report its stages' messages.
                msgs = "; ".join(f"{p.mode}: {m}" for p in self.pipes if (m := p.stderr_tail()))
                self.kill()
                if fresh or attempt == 1:
                    raise XsearchError(f"apertium {' | '.join(self.route)} (persistent pipeline) failed: {exc}"
                                       + (f"; stderr: {msgs}" if msgs else "")) from None
            except BaseException:
                self.kill()  # interrupted in the middle of a request: its answer would be read by the next one
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def kill(self) -> None:
        for pipe in self.pipes:
            pipe.kill()

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.close()


class PipelinePool:
    """Up to `size` RoutePipelines for one route, started on demand; each serves one request at a time."""

    def __init__(self, binary: str, route: Sequence[str], env: dict[str, str], size: int):
        self.binary, self.route, self.env, self.size = binary, list(route), env, max(1, size)
        self.pid = os.getpid()
        self._cond = threading.Condition()
        self._idle: list[RoutePipeline] = []
        self._all: list[RoutePipeline] = []
        self._commands: list[list[list[str]]] | None = None

    def _take(self) -> RoutePipeline:
        with self._cond:
            while True:
                if self._idle:
                    return self._idle.pop()
                if len(self._all) < self.size:
                    if self._commands is None:
                        self._commands = [mode_commands(self.binary, mode, self.env) for mode in self.route]
                    pipeline = RoutePipeline(self.route, self._commands, self.env)
                    self._all.append(pipeline)
                    return pipeline
                self._cond.wait()

    def _give(self, pipeline: RoutePipeline) -> None:
        with self._cond:
            if pipeline in self._all:
                self._idle.append(pipeline)
            else:
                pipeline.close()  # the pool was closed while it ran
            self._cond.notify()

    def run(self, text: str, timeout_s: float) -> str:
        pipeline = self._take()
        try:
            return pipeline.run(text, timeout_s)
        finally:
            self._give(pipeline)

    def pipelines(self) -> list[RoutePipeline]:
        with self._cond:
            return list(self._all)

    def close(self) -> None:
        """Close the idle pipelines now and the busy ones when their request ends; later requests start anew."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._all = []  # a busy pipeline is no longer in it: _give closes it
        for p in idle:
            p.close()


_POOLS: dict[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]], PipelinePool] = {}
_POOLS_LOCK = threading.Lock()


def get_pool(binary: str, route: Sequence[str], env: dict[str, str], size: int) -> PipelinePool:
    """The process-wide pool for (binary, route, environment); a forked child gets its own, never its parent's."""
    key = (binary, tuple(route), tuple(sorted(env.items())))
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None or pool.pid != os.getpid():
            pool = _POOLS[key] = PipelinePool(binary, route, env, size)
        return pool


def close_all() -> None:
    """Close every pipeline of this process (registered with atexit)."""
    with _POOLS_LOCK:
        pools = [p for p in _POOLS.values() if p.pid == os.getpid()]
    for pool in pools:
        pool.close()


atexit.register(close_all)
