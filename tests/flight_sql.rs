//! End-to-end tests of `weir serve`'s Flight SQL endpoint: the server runs in-process on an
//! ephemeral loopback port and arrow-flight's `FlightSqlServiceClient` drives it over gRPC.

use std::net::SocketAddr;

use arrow_flight::FlightInfo;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, SqlInfo};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::ipc::convert::try_schema_from_ipc_buffer;
use futures::TryStreamExt;
use tokio::sync::oneshot;
use tonic::Code;
use tonic::transport::Channel;
use weir::SessionOptions;

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<weir::Result<()>>,
}

impl Server {
    async fn start(options: SessionOptions) -> Server {
        Self::start_with(weir::flight::ServerConfig::new(options)).await
    }

    async fn start_with(config: weir::flight::ServerConfig) -> Server {
        let listener = weir::flight::bind("127.0.0.1", 0).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(weir::flight::serve_on(listener, config, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn client(&self) -> FlightSqlServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        FlightSqlServiceClient::new(channel)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

/// Reads every endpoint of a FlightInfo.
async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Result<Vec<RecordBatch>, FlightError> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("endpoint without a ticket");
        let stream = client.do_get(ticket).await?;
        batches.extend(stream.try_collect::<Vec<_>>().await?);
    }
    Ok(batches)
}

async fn query(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
) -> Result<Vec<RecordBatch>, FlightError> {
    let info = client.execute(sql.to_string(), None).await?;
    fetch(client, info).await
}

fn status(err: FlightError) -> tonic::Status {
    match err {
        FlightError::Tonic(status) => *status,
        other => panic!("expected a gRPC status, got {other}"),
    }
}

/// The values of a string column across batches.
fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let array = batch.column_by_name(column).expect("column");
        let array = array.as_string::<i32>();
        out.extend((0..array.len()).map(|i| array.value(i).to_string()));
    }
    out
}

/// The values of an integer column (any width) across batches.
fn ints(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for batch in batches {
        let array = batch.column_by_name(column).expect("column");
        let array = cast(array, &DataType::Int64).expect("an integer column");
        out.extend(array.as_primitive::<Int64Type>().values().iter().copied());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_with_rows() {
    let server = Server::start(SessionOptions::default()).await;
    let mut client = server.client().await;
    let info = client
        .execute(
            "SELECT x, CONCAT('v', CAST(x AS STRING)) AS s FROM (VALUES (1), (2), (3)) AS t(x) ORDER BY x"
                .to_string(),
            None,
        )
        .await
        .unwrap();
    let schema = info.clone().try_decode_schema().unwrap();
    assert_eq!(schema.field(0).name(), "x");
    assert_eq!(schema.field(1).name(), "s");
    let batches = fetch(&mut client, info).await.unwrap();
    assert_eq!(ints(&batches, "x"), vec![1, 2, 3]);
    assert_eq!(strings(&batches, "s"), vec!["v1", "v2", "v3"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_result_streams_in_several_batches() {
    let server = Server::start(SessionOptions::default()).await;
    let mut client = server.client().await;
    client
        .execute_update(
            "CREATE TABLE g (id INT) WITH ('connector' = 'datagen', 'number-of-rows' = '50000', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '50000')"
                .to_string(),
            None,
        )
        .await
        .unwrap();
    let batches = query(&mut client, "SELECT id FROM g").await.unwrap();
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(total, 50000);
    assert!(batches.len() > 1, "{} batches", batches.len());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_insert_then_select() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(SessionOptions {
        data_dir: Some(dir.path().join("data")),
    })
    .await;
    let mut client = server.client().await;
    let path = dir.path().join("t");
    let ddl = format!(
        "CREATE TABLE t (id INT, name STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
        path.display()
    );
    assert_eq!(client.execute_update(ddl, None).await.unwrap(), 0);
    let inserted = client
        .execute_update(
            "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')".to_string(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(inserted, 3);
    let batches = query(&mut client, "SELECT id, name FROM t ORDER BY id")
        .await
        .unwrap();
    assert_eq!(ints(&batches, "id"), vec![1, 2, 3]);
    assert_eq!(strings(&batches, "name"), vec!["a", "b", "c"]);

    // The table is in the persistent catalog: another client sees it.
    let mut other = server.client().await;
    let batches = query(&mut other, "SELECT COUNT(*) AS n FROM t")
        .await
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);

    // DDL sent as a query runs once and answers its status line.
    let batches = query(&mut client, "CREATE VIEW v AS SELECT id FROM t")
        .await
        .unwrap();
    assert_eq!(strings(&batches, "result").len(), 1);
    let err = status(
        client
            .execute_update("CREATE VIEW v AS SELECT id FROM t".to_string(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::AlreadyExists, "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_the_connection_usable() {
    let server = Server::start(SessionOptions::default()).await;
    let mut client = server.client().await;

    let err = status(
        client
            .execute("SELEC 1".to_string(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(
        err.message().contains("line 1, column"),
        "{}",
        err.message()
    );

    let err = status(
        client
            .execute("SELECT * FROM no_such_table".to_string(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::NotFound, "{err}");

    let err = status(
        client
            .execute_update("SELECT 1".to_string(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    // Same client, same connection: a good query still works.
    let batches = query(&mut client, "SELECT 42 AS answer").await.unwrap();
    assert_eq!(ints(&batches, "answer"), vec![42]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_is_fetched_once() {
    let server = Server::start(SessionOptions::default()).await;
    let mut client = server.client().await;
    let info = client
        .execute("SELECT 1 AS x".to_string(), None)
        .await
        .unwrap();
    let again = info.clone();
    fetch(&mut client, info).await.unwrap();
    let err = status(fetch(&mut client, again).await.unwrap_err());
    assert_eq!(err.code(), Code::NotFound, "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_calls() {
    let server = Server::start(SessionOptions::default()).await;
    let mut client = server.client().await;
    for sql in [
        "CREATE DATABASE sales",
        "CREATE TABLE sales.orders (id INT, amount DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '3')",
        "CREATE VIEW sales.big_orders AS SELECT id FROM sales.orders WHERE amount > 10",
    ] {
        client.execute_update(sql.to_string(), None).await.unwrap();
    }

    let info = client.get_catalogs().await.unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    assert_eq!(strings(&batches, "catalog_name"), vec!["default_catalog"]);

    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some("default_catalog".to_string()),
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    let mut dbs = strings(&batches, "db_schema_name");
    dbs.sort();
    assert_eq!(dbs, vec!["default_database", "sales"]);

    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: Some("sal%".to_string()),
        })
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    assert_eq!(strings(&batches, "db_schema_name"), vec!["sales"]);

    let info = client
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("sales".to_string()),
            table_name_filter_pattern: None,
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    assert_eq!(
        strings(&batches, "table_name"),
        vec!["big_orders", "orders"]
    );
    assert_eq!(strings(&batches, "table_type"), vec!["VIEW", "TABLE"]);
    let schemas = batches[0].column_by_name("table_schema").unwrap();
    let orders_schema = try_schema_from_ipc_buffer(schemas.as_binary::<i32>().value(1)).unwrap();
    let names: Vec<_> = orders_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, vec!["id", "amount"]);

    let info = client
        .get_tables(CommandGetTables {
            catalog: Some("default_catalog".to_string()),
            db_schema_filter_pattern: None,
            table_name_filter_pattern: Some("ord%".to_string()),
            table_types: vec!["TABLE".to_string()],
            include_schema: false,
        })
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    assert_eq!(strings(&batches, "table_name"), vec!["orders"]);
    assert_eq!(strings(&batches, "db_schema_name"), vec!["sales"]);

    let info = client.get_table_types().await.unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    assert_eq!(strings(&batches, "table_type"), vec!["TABLE", "VIEW"]);

    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerVersion,
        ])
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2);
    // The values are a dense union; the server name is its string child.
    let values = batches[0].column_by_name("value").unwrap();
    let union = values.as_union();
    let names = union.child(0).as_string::<i32>();
    let all: Vec<_> = (0..names.len())
        .map(|i| names.value(i).to_string())
        .collect();
    assert!(all.contains(&"Weir".to_string()), "{all:?}");
    assert!(
        all.contains(&env!("CARGO_PKG_VERSION").to_string()),
        "{all:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_tokens_and_sessions() {
    let mut config = weir::flight::ServerConfig::new(SessionOptions::default());
    let hash = weir::flight::hash_password("pw1").unwrap();
    config.users = weir::flight::Users::parse(&format!("ann:{hash}\nben:pw2\n"), "test").unwrap();
    let server = Server::start_with(config).await;

    // No token: UNAUTHENTICATED, and the server stays up.
    let mut anonymous = server.client().await;
    let err = status(
        anonymous
            .execute("SELECT 1".to_string(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    // The Rust client reports handshake failures as text.
    let err = anonymous
        .handshake("ann", "wrong")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not have valid authentication credentials"),
        "{err}"
    );
    assert!(!err.contains("wrong"), "{err}");
    let err = anonymous
        .handshake("nobody", "pw1")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not have valid authentication credentials"),
        "{err}"
    );

    let mut ann = server.client().await;
    ann.handshake("ann", "pw1").await.unwrap();
    let mut ben = server.client().await;
    ben.handshake("ben", "pw2").await.unwrap();
    // Each token is its own session: SET and temporary views do not leak.
    query(&mut ann, "SET 'table.exec.mark' = 'ann'")
        .await
        .unwrap();
    query(&mut ann, "CREATE TEMPORARY VIEW mine AS SELECT 7 AS x")
        .await
        .unwrap();
    assert_eq!(
        ints(&query(&mut ann, "SELECT x FROM mine").await.unwrap(), "x"),
        vec![7]
    );
    let err = status(query(&mut ben, "SELECT x FROM mine").await.unwrap_err());
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let set = query(&mut ben, "SET").await.unwrap();
    assert!(!strings(&set, "key").contains(&"table.exec.mark".to_string()));

    // A forged token is refused.
    let mut forged = server.client().await;
    forged.set_token("0".repeat(64));
    let err = status(
        forged
            .execute("SELECT 1".to_string(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_bind_and_reexecute() {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    let server = Server::start(SessionOptions::default()).await;
    let mut client = server.client().await;
    let mut prepared = client
        .prepare("SELECT ? + 1 AS x, ? AS s".to_string(), None)
        .await
        .unwrap();
    assert_eq!(prepared.parameter_schema().unwrap().fields().len(), 2);
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Utf8, true),
    ]));
    for (n, s) in [(41i64, "it's"), (1, "again")] {
        let params = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![n])),
                Arc::new(StringArray::from(vec![s])),
            ],
        )
        .unwrap();
        prepared.set_parameters(params).unwrap();
        let info = prepared.execute().await.unwrap();
        let batches = fetch(&mut client, info).await.unwrap();
        assert_eq!(ints(&batches, "x"), vec![n + 1]);
        assert_eq!(strings(&batches, "s"), vec![s.to_string()]);
    }
    // Without parameters bound: a clear error.
    let mut unbound = client.prepare("SELECT ?".to_string(), None).await.unwrap();
    let err = status(unbound.execute().await.unwrap_err());
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    // Bad SQL fails at prepare time with its position.
    let err = status(
        client
            .prepare("SELEC ?".to_string(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("line 1, column"), "{err}");
    prepared.close().await.unwrap();
    unbound.close().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_query_streams_until_cancelled() {
    use arrow_flight::{Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus};
    use futures::StreamExt;
    use prost::Message;

    let server = Server::start(SessionOptions::default()).await;
    let mut client = server.client().await;
    client
        .execute_update(
            "CREATE TABLE ticks (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '100')"
                .to_string(),
            None,
        )
        .await
        .unwrap();
    let info = client
        .execute("SELECT id FROM ticks".to_string(), None)
        .await
        .unwrap();
    let schema = info.clone().try_decode_schema().unwrap();
    assert_eq!(schema.field(0).name(), "op");
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = client.do_get(ticket).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.num_rows() > 0);
    assert_eq!(strings(&[first], "op")[0], "+I");

    let request = CancelFlightInfoRequest::new(info.clone());
    let action = Action::new("CancelFlightInfo", request.encode_to_vec());
    let results: Vec<_> = client
        .do_action(action)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let result = CancelFlightInfoResult::decode(results[0].body.clone()).unwrap();
    assert_eq!(result.status, CancelStatus::Cancelled as i32);
    // The stream ends with CANCELLED (after any batches already in flight).
    let mut ended = None;
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            ended = Some(status(e));
            break;
        }
    }
    let ended = ended.expect("the stream ends with an error");
    assert_eq!(ended.code(), Code::Cancelled, "{ended}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_query_limit_and_idle_timeout() {
    let mut config = weir::flight::ServerConfig::new(SessionOptions::default());
    config.max_queries = 1;
    config.idle_timeout = std::time::Duration::from_millis(300);
    let server = Server::start_with(config).await;
    let mut client = server.client().await;
    client.handshake("any", "thing").await.unwrap();

    // One query holds the only slot until it is read.
    let first = client
        .execute("SELECT 1 AS x".to_string(), None)
        .await
        .unwrap();
    let err = status(
        client
            .execute("SELECT 2 AS x".to_string(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("maximum of 1 concurrent"), "{err}");
    assert_eq!(
        ints(&fetch(&mut client, first).await.unwrap(), "x"),
        vec![1]
    );
    // The slot is free again once the stream ended.
    let mut freed = false;
    for _ in 0..50 {
        if let Ok(info) = client.execute("SELECT 3 AS x".to_string(), None).await {
            assert_eq!(ints(&fetch(&mut client, info).await.unwrap(), "x"), vec![3]);
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(freed, "the slot was not freed");

    // An idle session expires with its token.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let err = status(
        client
            .execute("SELECT 4".to_string(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    assert!(err.message().contains("expired"), "{err}");
    server.stop().await;
}

/// The `SHOW JOBS` rows as `(job id, status, rows in)`.
async fn show_jobs(client: &mut FlightSqlServiceClient<Channel>) -> Vec<(String, String, i64)> {
    let batches = query(client, "SHOW JOBS").await.unwrap();
    let ids = strings(&batches, "job id");
    let statuses = strings(&batches, "status");
    let rows = strings(&batches, "rows in");
    ids.into_iter()
        .zip(statuses)
        .zip(rows)
        .map(|((id, status), rows)| (id, status, rows.parse().unwrap()))
        .collect()
}

/// A streaming job belongs to the server, not to the client session that started it: it keeps
/// running after that session expired, and another client sees it in `SHOW JOBS` and stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_jobs_outlive_their_session_and_every_client_sees_them() {
    let mut config = weir::flight::ServerConfig::new(SessionOptions::default());
    config.idle_timeout = std::time::Duration::from_millis(1500);
    let server = Server::start_with(config).await;
    let mut first = server.client().await;
    first.handshake("first", "x").await.unwrap();
    for sql in [
        "SET 'execution.runtime-mode' = 'streaming'",
        "CREATE TABLE g (id INT) WITH ('connector' = 'datagen', 'rows-per-second' = '200')",
        "CREATE TABLE b (id INT) WITH ('connector' = 'blackhole')",
        "INSERT INTO b SELECT id FROM g",
    ] {
        first.execute_update(sql.to_string(), None).await.unwrap();
    }
    let jobs = show_jobs(&mut first).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let id = jobs[0].0.clone();

    // The first client's session expires; its job goes on.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(first.execute("SELECT 1".to_string(), None).await.is_err());
    let mut second = server.client().await;
    second.handshake("second", "y").await.unwrap();
    let before = show_jobs(&mut second).await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(
        (before[0].0.as_str(), before[0].1.as_str()),
        (id.as_str(), "RUNNING")
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let after = show_jobs(&mut second).await;
    assert!(
        after[0].2 > before[0].2,
        "the job reads on: {before:?} then {after:?}"
    );

    second
        .execute_update(format!("STOP JOB '{id}'"), None)
        .await
        .unwrap();
    let stopped = show_jobs(&mut second).await;
    assert_eq!(stopped[0].1, "CANCELED", "{stopped:?}");
    server.stop().await;
}
