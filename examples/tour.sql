-- A short tour of Weir on the embedded persistent catalog (run: cargo run -- -f examples/tour.sql).
-- Tables live under the data directory (default ~/.weir); their files under /tmp/weir-tour.

CREATE TABLE IF NOT EXISTS tour_orders (
  order_id BIGINT,
  customer STRING,
  amount DECIMAL(10, 2),
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '/tmp/weir-tour/orders', 'format' = 'parquet');

CREATE TABLE IF NOT EXISTS tour_customers (
  name STRING,
  country STRING
) WITH ('connector' = 'filesystem', 'path' = '/tmp/weir-tour/customers', 'format' = 'csv');

INSERT OVERWRITE tour_orders VALUES
  (1, 'alice', 10.50, TIMESTAMP '2024-01-01 10:00:03'),
  (2, 'bob', 20.00, TIMESTAMP '2024-01-01 10:00:07'),
  (3, 'alice', 5.25, TIMESTAMP '2024-01-01 10:00:12'),
  (4, 'carol', 7.00, TIMESTAMP '2024-01-01 10:00:31');

INSERT OVERWRITE tour_customers VALUES ('alice', 'NL'), ('bob', 'DE'), ('carol', 'NL');

-- Join and aggregate across formats.
SELECT c.country, COUNT(*) AS orders, SUM(o.amount) AS total
FROM tour_orders o JOIN tour_customers c ON o.customer = c.name
GROUP BY c.country ORDER BY c.country;

-- A tumbling window TVF.
SELECT window_start, window_end, COUNT(*) AS orders, SUM(amount) AS total
FROM TABLE(TUMBLE(TABLE tour_orders, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end ORDER BY window_start;
