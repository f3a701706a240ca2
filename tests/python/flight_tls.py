"""Weir's Flight SQL endpoint over TLS (a self-signed certificate made by the test): pyarrow and
ADBC connect with the certificate as root; a client that does not trust it fails cleanly."""

import os

import pyarrow.flight as fl

from flight_common import URI, Runner, authenticated, check, query, raises


def pyarrow_over_tls():
    c, options = authenticated()
    check(query(c, options, "SELECT 'secure' AS s").to_pylist() == [{"s": "secure"}], "TLS query")


def untrusted_certificate_fails():
    c = fl.FlightClient(URI)  # system roots only: the self-signed certificate is not trusted
    # pyarrow reports the failed TLS handshake as Unavailable or Internal, depending on timing.
    raises(fl.FlightError, lambda: c.authenticate_basic_token("x", "y"))


def adbc_over_tls():
    from flight_adbc import connect, rows

    with connect() as conn, conn.cursor() as cur:
        check(rows(cur, "SELECT 1 + 2") == [(3,)], "ADBC over TLS")


def main():
    check(URI.startswith("grpc+tls://"), f"a TLS URI: {URI}")
    check(os.environ.get("WEIR_TLS_ROOT"), "WEIR_TLS_ROOT is set")
    r = Runner()
    r.run("pyarrow over TLS", pyarrow_over_tls)
    r.run("untrusted certificate fails", untrusted_certificate_fails)
    r.run("ADBC over TLS", adbc_over_tls)
    r.finish()


if __name__ == "__main__":
    main()
