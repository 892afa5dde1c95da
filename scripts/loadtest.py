#!/usr/bin/env python
"""Load test: N concurrent clients against a local xsearch server, per route.

Starts `python -m server` on a free loopback port over the index (warmed: every route opened and run once), then
for each route sends a bounded number of searches from N client threads (httpx, one connection each) and prints
QPS and p50/p95/p99 latency, plus the server process's resident memory (RSS) before and after. Loopback only;
bounded in requests and in time.

    .venv/bin/python scripts/loadtest.py                       # indexes/taln, its routes, 8 clients
    .venv/bin/python scripts/loadtest.py --index /tmp/idx --routes bm25 dense --clients 4 --requests 500
    .venv/bin/python scripts/loadtest.py --index /tmp/idx --keyless-post-mb 40   # time to refuse a keyless POST
    .venv/bin/python scripts/loadtest.py --index /tmp/idx --soak 600 --clients 16     # 15 readers + 1 writer
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
QUERIES = [
    "statistical machine translation", "word sense disambiguation", "dependency parsing", "speech recognition",
    "named entity recognition", "part of speech tagging", "text summarization", "sentiment analysis",
    "question answering", "information retrieval", "lexical semantics", "morphological analysis",
    "discourse structure", "coreference resolution", "terminology extraction", "corpus annotation",
    "syntactic parsing of French", "language model", "dialogue systems", "text classification",
    "semantic role labeling", "tree adjoining grammar", "lexicon acquisition", "spelling correction",
    "speech synthesis", "bilingual dictionary", "parallel corpora alignment", "opinion mining", "chunking",
    "machine learning for natural language processing",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def start_server(index: Path, port: int, api_key: str | None) -> subprocess.Popen:
    env = {**os.environ, "XSEARCH_INDEX": str(index)}
    env.pop("XSEARCH_API_KEY", None)
    if api_key:
        env["XSEARCH_API_KEY"] = api_key
    cmd = [sys.executable, "-m", "server", "--index", str(index), "--host", "127.0.0.1", "--port", str(port),
           "--warm", "--log-level", "warning"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def wait_ready(base: str, proc: subprocess.Popen, timeout: float) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}")
        try:
            r = httpx.get(base + "/indexes", timeout=2)
            if r.status_code == 200:
                return r.json()["indexes"][0]
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server did not answer within {timeout:.0f}s")


def keyless_post(port: int, megabytes: float, probes: int = 5) -> dict:
    """Send a POST /docs of `megabytes` MB (a valid JSON batch) without the API key over a raw socket, streaming
    the body while waiting for the answer: the time to the refusal's status line, whether the server answered
    before the body was sent, and /health latencies measured while the body streams (a stall shows there)."""
    size = int(megabytes * 1_000_000)
    head, tail = b'{"docs": [{"id": "big", "lang": "fr", "title": "t", "text": "', b'"}]}'
    filler = size - len(head) - len(tail)
    request = (f"POST /docs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {size}\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    sent, done = [0], threading.Event()

    def stream() -> None:
        try:
            sock.sendall(head)
            chunk = b"x" * 65536
            left = filler
            while left > 0 and not done.is_set():
                part = chunk[:min(left, len(chunk))]
                sock.sendall(part)
                left -= len(part)
                sent[0] += len(part)
            if not done.is_set():
                sock.sendall(tail)
                sent[0] += len(tail)
        except OSError:
            pass   # the server closed the connection after refusing: expected

    health: list[float] = []

    def probe() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            for _ in range(probes):
                t = time.perf_counter()
                http.get("/health")
                health.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    sock.sendall(request)
    writer = threading.Thread(target=stream, daemon=True)
    writer.start()
    prober = threading.Thread(target=probe)
    prober.start()
    status_line = b""
    while b"\r\n" not in status_line:
        data = sock.recv(4096)
        if not data:
            break
        status_line += data
    refused_ms = (time.perf_counter() - t0) * 1000
    done.set()
    body_sent = sent[0]
    sock.close()
    prober.join()
    return {"mb": megabytes, "status": status_line.split(b"\r\n")[0].decode(errors="replace"),
            "refused_ms": round(refused_ms, 1), "body_bytes_sent_before_answer": body_sent,
            "health_ms_during": [round(x, 1) for x in health]}


def run_route(base: str, route: str, clients: int, requests: int, seconds: float, k: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    sent = 0
    deadline = time.perf_counter() + seconds

    def client(n: int) -> None:
        nonlocal sent
        with httpx.Client(base_url=base, timeout=60) as http:
            i = n
            while True:
                with lock:
                    if sent >= requests or time.perf_counter() > deadline:
                        return
                    sent += 1
                q = QUERIES[i % len(QUERIES)]
                i += clients
                t = time.perf_counter()
                try:
                    r = http.get("/search", params={"q": q, "route": route, "k": k})
                    ok = r.status_code == 200
                    why = f"HTTP {r.status_code}: {r.text[:120]}"
                except httpx.HTTPError as exc:
                    ok, why = False, repr(exc)
                elapsed = time.perf_counter() - t
                with lock:
                    (latencies.append(elapsed) if ok else errors.append(why))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = [x * 1000 for x in latencies]
    return {"route": route, "requests": len(latencies) + len(errors), "errors": len(errors),
            "first_error": errors[0] if errors else None, "seconds": round(wall, 2),
            "qps": round(len(latencies) / wall, 1) if wall else 0.0,
            "p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1),
            "p99_ms": round(percentile(ms, 99), 1), "mean_ms": round(statistics.fmean(ms), 1) if ms else None}


def soak(base: str, routes: list[str], clients: int, seconds: float, k: int, key: str, pid: int) -> dict:
    """clients - 1 readers (reader i on route i mod len(routes), all queries in turn) and one writer (POST a new
    document, then DELETE the one before: the index keeps its size) for `seconds`; RSS sampled every 10 s."""
    lat: dict[str, list[float]] = {r: [] for r in [*routes, "POST /docs", "DELETE /docs"]}
    errors: dict[str, list[str]] = {r: [] for r in lat}
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    rss: list[tuple[float, float]] = []

    def record(name: str, t: float, r: "httpx.Response | None", why: str | None = None) -> None:
        with lock:
            if r is not None and r.status_code == 200:
                lat[name].append((time.perf_counter() - t) * 1000)
            else:
                errors[name].append(why or f"HTTP {r.status_code}: {r.text[:160]}")

    def reader(n: int) -> None:
        route, i = routes[n % len(routes)], n
        with httpx.Client(base_url=base, timeout=60) as http:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    record(route, t, http.get("/search", params={"q": QUERIES[i % len(QUERIES)], "route": route,
                                                                  "k": k}))
                except httpx.HTTPError as exc:
                    record(route, t, None, repr(exc))
                i += 1

    def writer() -> None:
        headers, n = {"X-API-Key": key}, 0
        with httpx.Client(base_url=base, timeout=120) as http:
            while time.perf_counter() < stop:
                doc = {"id": f"soak-{n}", "lang": "fr", "title": f"Essai de charge numéro {n}",
                       "text": "Un document ajouté puis retiré pendant l'essai d'endurance du serveur.",
                       "fields": {"year": 2026, "venue": "soak"}}
                t = time.perf_counter()
                try:
                    record("POST /docs", t, http.post("/docs", json={"docs": [doc]}, headers=headers))
                    if n > 0:
                        t = time.perf_counter()
                        record("DELETE /docs", t, http.delete(f"/docs/soak-{n - 1}", headers=headers))
                except httpx.HTTPError as exc:
                    record("POST /docs", t, None, repr(exc))
                n += 1
                time.sleep(1.0)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(clients - 1)]
    threads.append(threading.Thread(target=writer))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    while time.perf_counter() < stop:
        rss.append((time.perf_counter() - t0, rss_mb(pid)))
        time.sleep(min(10.0, max(0.0, stop - time.perf_counter())))
    for t in threads:
        t.join()
    rss.append((time.perf_counter() - t0, rss_mb(pid)))
    warm = next((mb for at, mb in rss if at >= min(60.0, seconds / 4)), rss[0][1])
    rows = [{"what": name, "requests": len(lat[name]) + len(errors[name]), "errors": len(errors[name]),
             "first_error": errors[name][0] if errors[name] else None,
             "p50_ms": round(percentile(lat[name], 50), 1), "p99_ms": round(percentile(lat[name], 99), 1)}
            for name in lat]
    return {"seconds": round(time.perf_counter() - t0, 1), "clients": clients, "rows": rows,
            "rss_mb_first": round(rss[0][1], 1), "rss_mb_warm": round(warm, 1), "rss_mb_end": round(rss[-1][1], 1),
            "rss_growth_after_warm_pct": round(100 * (rss[-1][1] - warm) / warm, 1),
            "rss_mb_samples": [round(mb, 1) for _at, mb in rss]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", default=str(ROOT / "indexes" / "taln"), help="index folder (default indexes/taln)")
    p.add_argument("--routes", nargs="+", default=None, help="routes to load (default: all the index's routes)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--requests", type=int, default=400, help="requests per route (default 400, at most 20000)")
    p.add_argument("--seconds", type=float, default=60, help="time limit per route (default 60 s, at most 600)")
    p.add_argument("--rounds", type=int, default=1, help="repeat every route this many times, printing the RSS "
                                                          "after each round (a leak keeps growing; default 1)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--startup-timeout", type=float, default=180)
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--soak", type=float, default=None, metavar="SECONDS",
                   help="soak instead: --clients - 1 readers over the routes and one writer, for SECONDS (<= 3600)")
    p.add_argument("--keyless-post-mb", type=float, default=None,
                   help="only time the refusal of a keyless POST /docs of this many MB (at most 50), 3 times")
    args = p.parse_args(argv)
    if (not 1 <= args.clients <= 256 or not 1 <= args.requests <= 20_000 or not 0 < args.seconds <= 600
            or not 1 <= args.rounds <= 10):
        p.error("bounds: 1 <= clients <= 256, 1 <= requests <= 20000, 0 < seconds <= 600, 1 <= rounds <= 10")
    index = Path(args.index).resolve()
    if not list(index.glob("manifest-*.json")) and not (index / "sharded.json").exists():
        p.error(f"{index} is not an index folder (build one: xsearch index indexes/taln.yaml)")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t = time.perf_counter()
    keyless = args.keyless_post_mb is not None
    if keyless and not 0 < args.keyless_post_mb <= 50:
        p.error("--keyless-post-mb must be in (0, 50]")
    key = "loadtest-key-" + os.urandom(8).hex()
    if args.soak is not None and not (0 < args.soak <= 3600 and args.clients >= 2):
        p.error("--soak needs 0 < SECONDS <= 3600 and at least 2 clients (readers + the writer)")
    proc = start_server(index, port, api_key=key if (keyless or args.soak) else None)
    try:
        info = wait_ready(base, proc, args.startup_timeout)
        if keyless:
            for _ in range(3):
                res = keyless_post(port, args.keyless_post_mb)
                print(json.dumps(res))
            return 0
        print(f"server pid {proc.pid} ready in {time.perf_counter() - t:.1f}s: {info['name']}, "
              f"{info['doc_count']} documents, routes {', '.join(r['name'] for r in info['routes'])}")
        routes = args.routes or [r["name"] for r in info["routes"]]
        if args.soak:
            print(f"soak: {args.clients - 1} readers over {', '.join(routes)} + 1 writer for {args.soak:.0f}s")
            res = soak(base, routes, args.clients, args.soak, args.k, key, proc.pid)
            print(f"| requests of | requests | errors | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
            for r in res["rows"]:
                print(f"| {r['what']} | {r['requests']} | {r['errors']} | {r['p50_ms']} | {r['p99_ms']} |")
                if r["first_error"]:
                    print(f"    first error: {r['first_error']}")
            print(f"server RSS: {res['rss_mb_first']} MB at start, {res['rss_mb_warm']} MB after warm-up, "
                  f"{res['rss_mb_end']} MB at the end ({res['rss_growth_after_warm_pct']:+.1f}% after warm-up) "
                  f"over {res['seconds']}s")
            if args.json:
                Path(args.json).write_text(json.dumps({"index": str(index), **res}, indent=2))
            return 1 if any(r["errors"] for r in res["rows"]) else 0
        rss_before = rss_mb(proc.pid)
        results = []
        rss_rounds = []
        print(f"{args.clients} clients, up to {args.requests} requests or {args.seconds:.0f}s per route, k={args.k}")
        for n in range(args.rounds):
            if args.rounds > 1:
                print(f"round {n + 1} of {args.rounds}")
            print(f"{'route':<12}{'requests':>9}{'errors':>8}{'QPS':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
            for route in routes:
                res = run_route(base, route, args.clients, args.requests, args.seconds, args.k)
                results.append({**res, "round": n + 1})
                print(f"{route:<12}{res['requests']:>9}{res['errors']:>8}{res['qps']:>9.1f}{res['p50_ms']:>9.1f}"
                      f"{res['p95_ms']:>9.1f}{res['p99_ms']:>9.1f}")
                if res["first_error"]:
                    print(f"    first error: {res['first_error']}")
            rss_rounds.append(rss_mb(proc.pid))
            done = sum(r["requests"] for r in results)
            print(f"server RSS: {rss_before:.0f} MB after warm-up, {rss_rounds[-1]:.0f} MB after {done} requests "
                  f"({rss_rounds[-1] - rss_before:+.0f} MB)")
        rss_after = rss_rounds[-1]
        if args.json:
            Path(args.json).write_text(json.dumps({"index": str(index), "clients": args.clients, "routes": results,
                                                   "rss_mb_before": round(rss_before, 1),
                                                   "rss_mb_after": round(rss_after, 1),
                                                   "rss_mb_per_round": [round(x, 1) for x in rss_rounds]}, indent=2))
        return 1 if any(r["errors"] for r in results) else 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
