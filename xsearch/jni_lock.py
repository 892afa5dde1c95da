"""One process-wide lock for calls into the JVM through pyjnius, which is not safe for concurrent calls.

Measured here (tests/test_server_update.py found it): six Python threads calling one LuceneSearcher's
batch_search 1,800 times failed 7 to 9 times with JVM errors such as "IncompatibleClassChangeError: Receiver class
java.util.concurrent.ConcurrentHashMap$MapEntry does not implement the interface java.util.Set" or a bare
NullPointerException, warm or cold; with this lock, none. Lucene itself is thread-safe, and Anserini still runs its
own search threads inside one call, so the lock costs little: pyjnius calls hold the GIL for most of their time anyway.

(The natural home of this lock is xsearch/jvm.py, with xsearch/lucene.py taking it around every searcher call.)
"""
from __future__ import annotations

import threading
from typing import Any

JNI_LOCK = threading.RLock()


class Serialized:
    """A proxy whose method calls run under JNI_LOCK; other attributes pass through."""

    def __init__(self, target: Any, lock: Any = JNI_LOCK):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_lock", lock)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value
        lock = self._lock

        def locked(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return value(*args, **kwargs)

        return locked

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)
