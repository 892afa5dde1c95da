"""Concurrency of the server: a search while a write is being committed is answered at once from the old
generation; `xsearch serve --workers 2`: a write through either worker is seen by the searches of both on their
next request (each Index refreshes to the newest generation before a search)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from server_helpers import API_KEY, build_template, copy_index, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_a_search_during_a_write_is_not_blocked(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import ServerSettings
    from xsearch.storage.writer import IndexWriter

    path = copy_index(build_template(tmp_path / "t", dense=False, translate=False), tmp_path / "tiny")
    inside, release = threading.Event(), threading.Event()
    real = IndexWriter._commit_components

    def held(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - the write stops mid-commit
        inside.set()
        assert release.wait(60)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(IndexWriter, "_commit_components", held)
    params = {"q": "ornithorynque chats", "route": "bm25", "lang": "fr"}
    done: list = []
    with TestClient(create_app(ServerSettings(index=path, api_key=API_KEY))) as c:
        assert c.get("/search", params=params).status_code == 200   # routes open before the write
        doc = {"id": "w1", "lang": "fr", "title": "Les ornithorynques", "text": "Un ornithorynque nage."}
        writer = threading.Thread(target=lambda: done.append(
            c.post("/docs", json={"docs": [doc]}, headers={"X-API-Key": API_KEY})))
        writer.start()
        try:
            assert inside.wait(60), "the write did not start"
            t0 = time.perf_counter()
            during = c.get("/search", params=params).json()
            took = time.perf_counter() - t0
            pending = not done   # the write was still held when the search came back
        finally:
            release.set()
            writer.join(60)
        assert [h["id"] for h in during["hits"]] == ["d3"] and during["index"]["generation"] == 1
        assert pending and took < 5, took
        assert done and done[0].status_code == 200, done
        after = c.get("/search", params=params).json()
        assert after["index"]["generation"] == 2 and "w1" in [h["id"] for h in after["hits"]]


def test_a_write_through_one_worker_is_seen_by_every_worker(tmp_path):
    path = copy_index(build_template(tmp_path / "t", dense=False, translate=False), tmp_path / "tiny")
    port = free_port()
    env = {**os.environ, "XSEARCH_API_KEY": API_KEY, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "server", "--index", str(path), "--port", str(port), "--workers",
                             "2", "--log-level", "warning"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        workers: set[int] = set()
        deadline = time.time() + 120
        while len(workers) < 2:   # each new connection goes to whichever worker accepts it
            assert time.time() < deadline and proc.poll() is None, "two workers did not answer"
            try:
                workers.add(httpx.get(base + "/health", timeout=5).json()["worker"])
            except httpx.TransportError:
                time.sleep(0.3)
        doc = {"id": "w1", "lang": "fr", "title": "Les ornithorynques", "text": "Un ornithorynque nage."}
        r = httpx.post(base + "/docs", json={"docs": [doc]}, headers={"X-API-Key": API_KEY}, timeout=60)
        assert r.status_code == 200 and r.json()["generation"] == 2, r.text
        seen: dict[int, list[int]] = {}   # worker -> generations its searches answered from
        while set(seen) != workers:
            assert time.time() < deadline, f"searches came from {sorted(seen)} only, of {sorted(workers)}"
            with httpx.Client(base_url=base, timeout=60) as c:   # one connection: one worker for both requests
                worker = c.get("/health").json()["worker"]
                body = c.get("/search", params={"q": "ornithorynque", "route": "bm25", "lang": "fr"}).json()
            seen.setdefault(worker, []).append(body["index"]["generation"])
            assert [h["id"] for h in body["hits"]] == ["w1"], (worker, body)
        assert all(g == [2] * len(g) for g in seen.values()), seen   # no worker answered from generation 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
