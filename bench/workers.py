"""`python -m bench.workers`: gunicorn worker models for GET /api/v1/users/{id}, sample by sample.

A median hides a bimodal result: with keep-alive, each connection stays with the worker
process that accepted it, and when most of them land in one process one core serves
everything. So every configuration gets `--samples` wrk samples at each concurrency, and
the table prints each sample, the spread between the lowest and the highest (highest /
lowest - 1), the median, and wrk's p50/p99 latency of the median sample. The
configurations run side by side and are sampled in turn (A B C A B C), so that drift in
the machine weighs on all of them alike; `--sequential` runs each alone instead (five
samples in a row, with no idle neighbours' workers and relays beside it).

Configurations (`--configs`, comma-separated; default all):
- direct-gthread     gunicorn -c gunicorn.conf.py with gthread, 4 threads, keepalive 5
- direct-gthread-ka0 the same with keep-alive off
- direct-sync        gunicorn -c gunicorn.conf.py with sync workers
- direct-shipped     gunicorn -c gunicorn.conf.py as it is (sync workers)
- prod-gthread       scripts/prod.sh (nginx in front, keep-alive to gunicorn) with gthread
- prod-sync          scripts/prod.sh with sync workers
- prod-shipped       scripts/prod.sh as it is: what `make prod` runs (sync workers)
- direct-no-metrics  direct-shipped with METRICS_ENABLED=false: what the metrics cost
- direct-traced      direct-shipped with traces on, every request sampled, exported over
                     OTLP/HTTP to a sink in this process that reads and drops them (as a
                     collector's port would take them): what tracing costs over HTTP
A configuration may name its worker processes after a colon (`prod-sync:4`); else
`--workers`, else gunicorn.conf.py's default.

The database is bench/run.py's (DATABASE_URL, default .../bench, seeded once).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.run import RANDOM_USER_SCRIPT, default_url, edge, gunicorn, log, prepare_database, served_env

GTHREAD = "--worker-class gthread --threads 4 --keep-alive 5"
VARIANTS: dict[str, tuple[str, str | None]] = {
    # name: (how it is started, GUNICORN_CMD_ARGS on top of gunicorn.conf.py)
    "direct-gthread": ("direct", GTHREAD),
    "direct-gthread-ka0": ("direct", "--worker-class gthread --threads 4 --keep-alive 0"),
    "direct-sync": ("direct", "--worker-class sync"),
    "direct-shipped": ("direct", None),
    "prod-gthread": ("prod", GTHREAD),
    "prod-gthread-ka0": ("prod", "--worker-class gthread --threads 4 --keep-alive 0"),
    "prod-sync": ("prod", "--worker-class sync"),
    "prod-shipped": ("prod", None),
    "direct-no-metrics": ("direct", None),
    "direct-traced": ("direct", None),
}
TRACED = {"direct-traced"}


class _Sink(BaseHTTPRequestHandler):
    """Takes an OTLP/HTTP export and drops it: an empty protobuf answer is a full success."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def otlp_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@dataclass
class Sample:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def _milliseconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk_sample(url: str, seconds: int, connections: int, script: str) -> Sample:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as handle:
        handle.write(script)
        handle.flush()
        command = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
        output = subprocess.run(
            [*command, "-s", handle.name, url], capture_output=True, text=True, check=True
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _milliseconds(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _milliseconds(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return Sample(rps, p50, p99, errors)


@contextmanager
def direct(env: dict[str, str]) -> Iterator[str]:
    with gunicorn("wsgi:app", env, None) as base:
        yield base


def spread(values: list[float]) -> float:
    return max(values) / min(values) - 1 if min(values) > 0 else float("inf")


def measure(
    names: list[str], args: argparse.Namespace, inherited: dict[str, str], script: str
) -> list[tuple[str, int, list[Sample]]]:
    """Start ``names`` side by side, then sample them in turn at each concurrency."""
    rows: list[tuple[str, int, list[Sample]]] = []
    with ExitStack() as running:
        bases: dict[str, str] = {}
        for name in names:
            variant, _, workers = name.partition(":")
            how, cmd_args = VARIANTS[variant]
            env = served_env(inherited, args.url)
            if workers or args.workers:
                env["WEB_CONCURRENCY"] = workers or args.workers
            if cmd_args:
                env["GUNICORN_CMD_ARGS"] = cmd_args
            if how == "direct":
                # No broker beside a bare gunicorn: no jobs thread polling the outbox during the load.
                env["JOBS_WORKER"] = "none"
            if variant == "direct-no-metrics":
                env["METRICS_ENABLED"] = "false"
            elif how == "direct":
                # As under make prod: every worker's metrics in files, summed at /metrics.
                env["PROMETHEUS_MULTIPROC_DIR"] = running.enter_context(tempfile.TemporaryDirectory())
            if variant in TRACED:
                env["OTEL_EXPORTER_OTLP_ENDPOINT"] = running.enter_context(otlp_sink())
                env["OTEL_TRACES_SAMPLER"] = "always_on"
            log(f"{name}: starting ({how}, {cmd_args or 'gunicorn.conf.py as shipped'})")
            bases[name] = running.enter_context((direct if how == "direct" else edge)(env))
            wrk_sample(bases[name] + "/", 2, 8, script)  # warm-up: pools, statement caches
        # All configurations run side by side, sampled in turn (A B C A B C): drift in the
        # machine hits them alike, and a configuration's spread is its own.
        for connections in (int(c) for c in args.connections.split(",")):
            taken: dict[str, list[Sample]] = {name: [] for name in bases}
            for round_ in range(args.samples):
                for name, base in bases.items():
                    taken[name].append(wrk_sample(base + "/", args.seconds, connections, script))
                    got = taken[name][-1].requests_per_second
                    log(f"  -c{connections} round {round_ + 1} {name}: {got:,.0f} req/s")
            rows += [(name, connections, samples) for name, samples in taken.items()]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=default_url())
    parser.add_argument("--configs", default=",".join(VARIANTS))
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", default="8,64")
    parser.add_argument("--sequential", action="store_true", help="one configuration at a time")
    parser.add_argument(
        "--workers", help="WEB_CONCURRENCY for every configuration (default: gunicorn.conf.py's)"
    )
    args = parser.parse_args()
    prepare_database(args.url, 100_000, reseed=False)
    users = 10_000
    script = RANDOM_USER_SCRIPT.format(users=users)
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_REPLICA_URLS", "DATABASE_PRIMARY_URL", "GUNICORN_CMD_ARGS", "WEB_CONCURRENCY")
    }
    rows: list[tuple[str, int, list[Sample]]] = []
    names = args.configs.split(",")
    # Side by side by default; --sequential runs each alone (its idle neighbours' workers
    # and relays are noise of their own), so its spread is the configuration's alone.
    for group in [[name] for name in names] if args.sequential else [names]:
        rows += measure(group, args, inherited, script)

    print(
        f"{'configuration':<20} {'conns':>5} {'samples (req/s)':<42} {'spread':>7} "
        f"{'median':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"
    )
    # The best median at each concurrency, to which every configuration is compared.
    best = {
        c: max(statistics.median(s.requests_per_second for s in ss) for _, cc, ss in rows if cc == c)
        for _, c, _ in rows
    }
    for name, connections, samples in rows:
        rps = [s.requests_per_second for s in samples]
        middle = sorted(samples, key=lambda s: s.requests_per_second)[len(samples) // 2]
        median = statistics.median(rps)
        print(
            f"{name:<20} {connections:>5} {' '.join(f'{r:,.0f}' for r in rps):<42} {spread(rps):>6.0%} "
            f"{median:>7,.0f} {middle.p50_ms:>7.1f} {middle.p99_ms:>7.1f} {sum(s.errors for s in samples):>6}"
            f"   {median / best[connections]:.2f}x of best"
        )


if __name__ == "__main__":
    main()
