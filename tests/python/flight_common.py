"""Shared helpers of the Flight SQL client tests (run by tests/flight_python.rs).

The Rust harness starts a real `weir serve` and passes, through the environment:
WEIR_FLIGHT_URI (grpc://host:port or grpc+tls://...), WEIR_FLIGHT_USER, WEIR_FLIGHT_PASSWORD,
WEIR_SERVER_PID, WEIR_DATA_DIR (a scratch directory), WEIR_TLS_ROOT (a PEM file, TLS only).
Each script runs named scenarios, prints `N passed, N failed` and exits non-zero on failure.
"""

import json
import os
import sys
import time
import traceback

import pyarrow.flight as fl

URI = os.environ["WEIR_FLIGHT_URI"]
USER = os.environ.get("WEIR_FLIGHT_USER", "")
PASSWORD = os.environ.get("WEIR_FLIGHT_PASSWORD", "")
SERVER_PID = int(os.environ.get("WEIR_SERVER_PID", "0"))
SCRATCH = os.environ.get("WEIR_DATA_DIR", "/tmp")


class Runner:
    """Runs scenarios, counts results, reports like `N passed, N failed`."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn):
        start = time.time()
        try:
            fn()
        except Exception:  # noqa: BLE001 - every failure is reported
            self.failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
            sys.stdout.flush()
        else:
            self.passed += 1
            print(f"ok   {name} ({time.time() - start:.2f}s)", flush=True)

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed or not self.passed else 0)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def raises(exc_type, fn, contains=None):
    """Runs fn, which must raise exc_type (whose message holds `contains`); returns it."""
    try:
        fn()
    except exc_type as e:  # noqa: PERF203
        if contains is not None:
            check(contains in str(e), f"error {e!r} does not mention {contains!r}")
        return e
    raise AssertionError(f"expected {exc_type.__name__}")


# --- Flight SQL commands, encoded by hand (pyarrow.flight speaks plain Flight) ---------------


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(tag, data):
    return _varint((tag << 3) | 2) + _varint(len(data)) + data


def _any(message, payload):
    url = ("type.googleapis.com/arrow.flight.protocol.sql." + message).encode()
    return _field(1, url) + _field(2, payload)


def statement_query(sql):
    """A CommandStatementQuery descriptor."""
    return fl.FlightDescriptor.for_command(_any("CommandStatementQuery", _field(1, sql.encode())))


def cancel_flight_info_action(info):
    """The CancelFlightInfo action for a FlightInfo."""
    return fl.Action("CancelFlightInfo", _field(1, info.serialize()))


def cancel_status(result_body):
    """The CancelStatus of a CancelFlightInfoResult (1 = cancelled, 3 = not cancellable)."""
    data = result_body.to_pybytes()
    if not data:
        return 0
    check(data[0] == 0x08, f"unexpected CancelFlightInfoResult {data!r}")
    return data[1]


# --- pyarrow clients ------------------------------------------------------------------------


def client(**kwargs):
    root = os.environ.get("WEIR_TLS_ROOT")
    if root and "tls_root_certs" not in kwargs:
        with open(root, "rb") as f:
            kwargs["tls_root_certs"] = f.read()
    return fl.FlightClient(URI, **kwargs)


def authenticated(user=USER, password=PASSWORD, **kwargs):
    """A client and the call options carrying its bearer token."""
    c = client(**kwargs)
    header = c.authenticate_basic_token(user, password)
    return c, fl.FlightCallOptions(headers=[header])


def query(c, options, sql):
    """Runs a query through Flight SQL and reads the whole result as a Table."""
    info = c.get_flight_info(statement_query(sql), options)
    return c.do_get(info.endpoints[0].ticket, options).read_all()


def stats(c, options):
    """The server's counters (custom action `weir.stats`)."""
    results = list(c.do_action(fl.Action("weir.stats", b""), options))
    return json.loads(results[0].body.to_pybytes())


def wait_until(what, fn, timeout=20.0):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def server_memory_kib(field="VmHWM"):
    """A memory figure of the server process from /proc (kB)."""
    with open(f"/proc/{SERVER_PID}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{SERVER_PID}/status")
