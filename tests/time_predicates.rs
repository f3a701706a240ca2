//! `LOCALTIME` / `LOCALTIMESTAMP` (`functions::time::LocalNow`) and `(a, b) OVERLAPS (c, d)`
//! (`functions::overlaps`) through SQL.

use weir::{Session, SessionOptions};

mod common;
use common::column;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_time_is_the_statement_start_in_the_session_zone() {
    for streaming in [false, true] {
        let mut s = Session::open(SessionOptions::default()).await.unwrap();
        if streaming {
            s.execute_sql("SET 'execution.runtime-mode' = 'streaming'")
                .await
                .unwrap();
        }
        // The session zone moves LOCALTIMESTAMP away from UTC's CURRENT_TIMESTAMP by its offset.
        s.execute_sql("SET 'table.local-time-zone' = 'Asia/Kolkata'")
            .await
            .unwrap();
        // One statement, one start time: LOCALTIMESTAMP is CURRENT_TIMESTAMP's local date-time
        // in the session zone (which DATE_FORMAT shows), LOCALTIME its time of day.
        for check in [
            "DATE_FORMAT(CURRENT_TIMESTAMP, 'yyyy-MM-dd HH:mm:ss.SSS') = \
         DATE_FORMAT(LOCALTIMESTAMP, 'yyyy-MM-dd HH:mm:ss.SSS')",
            "CAST(LOCALTIME AS STRING) = DATE_FORMAT(CURRENT_TIMESTAMP, 'HH:mm:ss')",
        ] {
            let rows = column(&mut s, &format!("SELECT {check}"))
                .await
                .unwrap_or_else(|e| panic!("{check}: {e}"));
            assert_eq!(rows, ["true"], "{check} (streaming: {streaming})");
        }
        let types = column(&mut s, "SELECT TYPEOF(LOCALTIMESTAMP)")
            .await
            .unwrap();
        assert_eq!(types, ["TIMESTAMP(3) NOT NULL"]);
        let types = column(&mut s, "SELECT TYPEOF(LOCALTIME)").await.unwrap();
        assert_eq!(types, ["TIME(3) NOT NULL"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlaps_as_in_flink() {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    let cases = [
        (
            "(TIME '2:55:00', INTERVAL '1' HOUR) OVERLAPS (TIME '3:30:00', INTERVAL '2' HOUR)",
            "true",
        ),
        (
            "(TIME '9:00:00', TIME '10:00:00') OVERLAPS (TIME '10:15:00', INTERVAL '3' HOUR)",
            "false",
        ),
        (
            "(DATE '2024-01-01', DATE '2024-01-10') OVERLAPS (DATE '2024-01-10', DATE '2024-01-20')",
            "true",
        ),
        (
            "(TIMESTAMP '2024-01-01 00:00:00', INTERVAL '1' DAY) OVERLAPS \
             (TIMESTAMP '2024-01-02 00:00:01', TIMESTAMP '2024-01-03 00:00:00')",
            "false",
        ),
        (
            "(TIMESTAMP '2024-01-05 00:00:00', TIMESTAMP '2024-01-01 00:00:00') OVERLAPS \
             (TIMESTAMP '2024-01-02 00:00:00', TIMESTAMP '2024-01-03 00:00:00') AND TRUE",
            "true",
        ),
        (
            "(DATE '2024-01-01', INTERVAL '2' DAY) OVERLAPS (DATE '2024-01-03', DATE '2024-01-04')",
            "true",
        ),
        (
            "(DATE '2024-01-01', INTERVAL '1' MONTH) OVERLAPS (DATE '2024-02-02', DATE '2024-02-04')",
            "false",
        ),
        // TIME + INTERVAL wraps at midnight (01:00), and the period is turned around to
        // 01:00..23:00, as Flink's generated code does.
        (
            "(TIME '23:00:00', INTERVAL '2' HOUR) OVERLAPS (TIME '00:30:00', TIME '00:40:00')",
            "false",
        ),
        (
            "(DATE '2024-01-01', CAST(NULL AS DATE)) OVERLAPS (DATE '2024-01-01', DATE '2024-01-02')",
            "NULL",
        ),
    ];
    for (expr, want) in cases {
        let rows = column(&mut s, &format!("SELECT {expr}"))
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(rows, [want], "{expr}");
    }
    let rows = column(
        &mut s,
        "SELECT (s, e) OVERLAPS (DATE '2024-01-05', DATE '2024-01-06') FROM \
         (VALUES (1, DATE '2024-01-01', DATE '2024-01-04'), (2, DATE '2024-01-04', DATE '2024-01-07')) \
         AS t(i, s, e) ORDER BY i",
    )
    .await
    .unwrap();
    assert_eq!(rows, ["false", "true"]);
    let err = column(&mut s, "SELECT (1, 2) OVERLAPS (3, 4)")
        .await
        .unwrap_err();
    assert!(
        err.contains("OVERLAPS takes DATE, TIME or TIMESTAMP"),
        "{err}"
    );
}
