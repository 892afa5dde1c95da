"""The storage core: generations of an index folder, written by one writer, read whole by any process.

An index is written the way Lucene writes itself: write-once files, commit points, one writer.
  manifest.py   the typed manifest of one generation (manifest-<N>.json), found and written atomically
  lock.py       the cross-process writer lock
  files.py      fsync, atomic small writes, hard-link snapshots
  writer.py     IndexWriter: build = create + add + commit; update = append + add/delete + commit; compact
Readers are in xsearch.index (open_index), components in xsearch.components.
"""
