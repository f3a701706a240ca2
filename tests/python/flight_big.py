"""A 10-million-row result streamed over Flight SQL with bounded server memory: the client
reads batch by batch (keeping nothing) while the server's peak RSS (VmHWM) is watched.
Usage: flight_big.py [rows] [max server MiB]."""

import sys
import time

import pyarrow.compute as pc

from flight_common import Runner, authenticated, check, query, server_memory_kib, statement_query

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
MAX_MIB = int(sys.argv[2]) if len(sys.argv) > 2 else 512


def big_result_bounded_memory():
    c, options = authenticated()
    query(
        c,
        options,
        "CREATE TABLE big (id BIGINT, s STRING) WITH ('connector' = 'datagen', "
        f"'number-of-rows' = '{ROWS}', "
        f"'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{ROWS}', "
        "'fields.s.length' = '8')",
    )
    start_kib = server_memory_kib("VmRSS")
    started = time.time()
    info = c.get_flight_info(statement_query("SELECT id, id * 2 AS twice, s FROM big"), options)
    reader = c.do_get(info.endpoints[0].ticket, options)
    n = 0
    total = 0
    nbytes = 0
    for chunk in reader:
        batch = chunk.data
        n += batch.num_rows
        total += pc.sum(batch.column("id")).as_py() or 0
        nbytes += batch.nbytes
    elapsed = time.time() - started
    check(n == ROWS, f"read {n} rows, expected {ROWS}")
    check(total == ROWS * (ROWS + 1) // 2, f"sum of ids {total}")
    peak_mib = server_memory_kib("VmHWM") / 1024
    print(
        f"streamed {n} rows ({nbytes / 2**20:.0f} MiB) in {elapsed:.1f}s: "
        f"{n / elapsed:,.0f} rows/s, {nbytes / 2**20 / elapsed:.0f} MB/s; "
        f"server RSS before {start_kib / 1024:.0f} MiB, peak {peak_mib:.0f} MiB",
        flush=True,
    )
    check(peak_mib < MAX_MIB, f"server peak RSS {peak_mib:.0f} MiB >= {MAX_MIB} MiB")


def main():
    r = Runner()
    r.run(f"{ROWS} rows streamed with server RSS < {MAX_MIB} MiB", big_result_bounded_memory)
    r.finish()


if __name__ == "__main__":
    main()
