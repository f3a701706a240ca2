"""Weir's Flight SQL endpoint driven by pyarrow.flight: the handshake and bearer tokens,
status codes, cancellation of waiting and running queries (CancelFlightInfo and closing the
stream), and a streaming query whose first rows arrive while it runs."""

import time

import pyarrow as pa
import pyarrow.flight as fl

from flight_common import (
    PASSWORD,
    USER,
    Runner,
    authenticated,
    cancel_flight_info_action,
    cancel_status,
    check,
    client,
    query,
    raises,
    statement_query,
    stats,
    wait_until,
)

TICKS = (
    "CREATE TABLE IF NOT EXISTS ticks (id BIGINT, v STRING) "
    "WITH ('connector' = 'datagen', 'rows-per-second' = '200', 'fields.v.length' = '4')"
)


def handshake_gives_a_token():
    c, options = authenticated()
    table = query(c, options, "SELECT 40 + 2 AS answer")
    check(table.to_pylist() == [{"answer": 42}], f"result {table.to_pylist()}")


def bad_and_missing_credentials():
    c = client()
    raises(fl.FlightUnauthenticatedError, lambda: c.authenticate_basic_token(USER, PASSWORD + "x"))
    raises(fl.FlightUnauthenticatedError, lambda: c.authenticate_basic_token("nobody", PASSWORD))
    # No token at all.
    raises(fl.FlightUnauthenticatedError, lambda: query(c, fl.FlightCallOptions(), "SELECT 1"))
    # A made-up token.
    forged = fl.FlightCallOptions(headers=[(b"authorization", b"Bearer " + b"0" * 64)])
    raises(fl.FlightUnauthenticatedError, lambda: query(c, forged, "SELECT 1"))
    # The server is still fine.
    c2, options = authenticated()
    check(query(c2, options, "SELECT 1 AS x").num_rows == 1, "a good client after bad ones")


def status_codes():
    # Arrow's gRPC layer maps INVALID_ARGUMENT to ArrowInvalid, NOT_FOUND to ArrowKeyError,
    # ALREADY_EXISTS to ArrowAlreadyExists (pyarrow.lib), UNAUTHENTICATED / CANCELLED /
    # INTERNAL to the Flight*Error classes.
    c, options = authenticated()
    e = raises(pa.ArrowInvalid, lambda: query(c, options, "SELEC 1"))
    check("line 1, column 1" in str(e), f"position in {e}")
    e = raises(pa.ArrowKeyError, lambda: query(c, options, "SELECT * FROM nowhere"))
    check("nowhere" in str(e), f"name in {e}")
    query(c, options, "CREATE TEMPORARY VIEW twice AS SELECT 1 AS x")
    e = raises(pa.lib.ArrowException, lambda: query(c, options, "CREATE TEMPORARY VIEW twice AS SELECT 1 AS x"))
    check("already exists" in str(e), f"message {e}")
    check(not isinstance(e, fl.FlightInternalError), f"not INTERNAL: {e!r}")
    check(query(c, options, "SELECT 1 AS x").num_rows == 1, "usable after errors")


def cancel_waiting_query():
    c, options = authenticated()
    info = c.get_flight_info(statement_query("SELECT 1 AS x"), options)
    results = list(c.do_action(cancel_flight_info_action(info), options))
    check(cancel_status(results[0].body) == 1, "CANCELLED")
    e = raises(pa.ArrowKeyError, lambda: c.do_get(info.endpoints[0].ticket, options).read_all())
    check("cancelled" in str(e), f"message {e}")
    # Cancelling again: nothing left to cancel.
    results = list(c.do_action(cancel_flight_info_action(info), options))
    check(cancel_status(results[0].body) == 3, "NOT_CANCELLABLE the second time")


def streaming_query_first_rows_then_cancel():
    c, options = authenticated()
    query(c, options, TICKS)
    before = stats(c, options)["running_queries"]
    info = c.get_flight_info(statement_query("SELECT id, v FROM ticks"), options)
    reader = c.do_get(info.endpoints[0].ticket, options)
    schema = reader.schema
    check(schema.names[0] == "op", f"changelog schema {schema}")
    check(schema.names[1:] == ["id", "v"], f"columns {schema.names}")
    started = time.time()
    chunk = reader.read_chunk()
    first = chunk.data
    check(first.num_rows > 0, "first batch has rows")
    check(set(first.column(0).to_pylist()) == {"+I"}, "inserts only")
    check(time.time() - started < 15, "first rows arrive while the query runs")
    check(stats(c, options)["running_queries"] >= before + 1, "the query runs")
    results = list(c.do_action(cancel_flight_info_action(info), options))
    check(cancel_status(results[0].body) == 1, "CANCELLED")

    def drain():
        while True:
            reader.read_chunk()

    e = raises(fl.FlightCancelledError, drain)
    check("cancelled" in str(e), f"message {e}")
    wait_until("the query is freed", lambda: stats(c, options)["running_queries"] == before)


def client_closing_the_stream_frees_the_query():
    c, options = authenticated()
    query(c, options, TICKS)
    before = stats(c, options)["running_queries"]
    info = c.get_flight_info(statement_query("SELECT id FROM ticks"), options)
    reader = c.do_get(info.endpoints[0].ticket, options)
    check(reader.read_chunk().data.num_rows > 0, "first rows")
    reader.cancel()
    wait_until("the query is freed", lambda: stats(c, options)["running_queries"] == before)
    # The same session keeps working.
    check(query(c, options, "SELECT 1 AS x").num_rows == 1, "usable after closing a stream")


def sessions_are_per_token():
    a, oa = authenticated()
    b, ob = authenticated()
    query(a, oa, "CREATE TEMPORARY VIEW only_a AS SELECT 1 AS x")
    check(query(a, oa, "SELECT * FROM only_a").num_rows == 1, "A sees its view")
    raises(pa.ArrowKeyError, lambda: query(b, ob, "SELECT * FROM only_a"), contains="only_a")


def main():
    r = Runner()
    r.run("handshake gives a bearer token", handshake_gives_a_token)
    r.run("bad and missing credentials", bad_and_missing_credentials)
    r.run("status codes and messages", status_codes)
    r.run("cancel a query waiting for DoGet", cancel_waiting_query)
    r.run("streaming query: first rows arrive, then CancelFlightInfo", streaming_query_first_rows_then_cancel)
    r.run("closing a stream frees its query", client_closing_the_stream_frees_the_query)
    r.run("sessions are per token", sessions_are_per_token)
    r.finish()


if __name__ == "__main__":
    main()
