"""Benchmark of `weir serve` over loopback (not a test: it asserts nothing about speed).

1. Result streaming: a datagen table of ROWS rows (BIGINT, BIGINT, 8-char STRING) streamed with
   pyarrow.flight; reports rows/s and MB/s (Arrow buffer bytes received).
2. Small queries under 16 concurrent clients (ADBC, one connection each): p50/p99 latency and
   throughput of `SELECT <n> + 1`.

Run against a server you started, e.g.:
  weir serve --port 50051 --in-memory --users users.txt &
  WEIR_FLIGHT_URI=grpc://127.0.0.1:50051 WEIR_FLIGHT_USER=alice WEIR_FLIGHT_PASSWORD=... \\
    python tests/python/flight_bench.py [rows] [queries per client]
"""

import statistics
import sys
import threading
import time

from flight_common import authenticated, query, statement_query

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
PER_CLIENT = int(sys.argv[2]) if len(sys.argv) > 2 else 200
CLIENTS = 16


def streaming():
    c, options = authenticated()
    query(
        c,
        options,
        "CREATE TEMPORARY TABLE bench_rows (id BIGINT, s STRING) WITH ('connector' = 'datagen', "
        f"'number-of-rows' = '{ROWS}', "
        f"'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{ROWS}', "
        "'fields.s.length' = '8')",
    )
    best = None
    for _ in range(3):
        started = time.perf_counter()
        info = c.get_flight_info(statement_query("SELECT id, id * 2 AS twice, s FROM bench_rows"), options)
        n = 0
        nbytes = 0
        for chunk in c.do_get(info.endpoints[0].ticket, options):
            n += chunk.data.num_rows
            nbytes += chunk.data.nbytes
        elapsed = time.perf_counter() - started
        assert n == ROWS, n
        if best is None or elapsed < best[0]:
            best = (elapsed, n, nbytes)
    elapsed, n, nbytes = best
    print(
        f"streaming: {n} rows, {nbytes / 1e6:.0f} MB in {elapsed:.2f}s (best of 3): "
        f"{n / elapsed / 1e6:.2f} M rows/s, {nbytes / 1e6 / elapsed:.0f} MB/s"
    )


def small_queries():
    from flight_adbc import connect

    latencies = []
    lock = threading.Lock()
    errors = []
    barrier = threading.Barrier(CLIENTS)

    def worker(i):
        try:
            with connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
                barrier.wait()
                mine = []
                for j in range(PER_CLIENT):
                    t = time.perf_counter()
                    cur.execute(f"SELECT {i * PER_CLIENT + j} + 1 AS v")
                    cur.fetchall()
                    mine.append(time.perf_counter() - t)
                with lock:
                    latencies.extend(mine)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"errors: {errors[:3]}")
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(
        f"small queries: {CLIENTS} clients x {PER_CLIENT} queries: p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, {len(latencies) / elapsed:.0f} queries/s"
    )


if __name__ == "__main__":
    streaming()
    small_queries()
