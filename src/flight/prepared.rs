//! Prepared statements of the Flight SQL front door. A prepared statement is its SQL text with
//! `?` placeholders (Flink's style); `CreatePreparedStatement` checks that the text parses and
//! counts the placeholders, the client binds a parameter batch with `DoPut`, and each execution
//! substitutes one row of typed SQL literals for the placeholders and runs the statement on the
//! client's session like any other.
//!
//! Placeholders are found by a small lexer that skips string literals (`'...'`), quoted
//! identifiers (`` `...` `` and `"..."`) and comments, so a `?` inside those is left alone.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::array_value_to_string;

use super::sessions::ClientKey;
use crate::error::{Error, Result};

/// Byte offsets of the `?` placeholders of `sql`, in order.
pub fn placeholders(sql: &str) -> Vec<usize> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'`' | b'"') => {
                // Skip to the closing quote; a doubled quote is an escaped one.
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'?' => {
                out.push(i);
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// The parameter schema of a statement with `count` placeholders: `?1`, `?2`, ... of unknown
/// (null) type, since Weir does not infer placeholder types yet; clients bind any type.
pub fn parameter_schema(count: usize) -> Schema {
    Schema::new(
        (1..=count)
            .map(|i| Field::new(format!("?{i}"), DataType::Null, true))
            .collect::<Vec<_>>(),
    )
}

/// `sql` with the placeholders replaced by the values of row `row` of `params` (column i for
/// placeholder i).
///
/// # Errors
/// `Invalid` when the number of columns does not match the placeholders; `NotSupported` for a
/// parameter type without a SQL literal form.
pub fn bind(sql: &str, params: &RecordBatch, row: usize) -> Result<String> {
    let at = placeholders(sql);
    if params.num_columns() != at.len() {
        return Err(Error::invalid(format!(
            "the statement has {} parameter placeholder(s) but {} parameter value(s) were bound",
            at.len(),
            params.num_columns()
        )));
    }
    let mut out = String::with_capacity(sql.len() + 16 * at.len());
    let mut last = 0;
    for (i, (&pos, column)) in at.iter().zip(params.columns()).enumerate() {
        out.push_str(&sql[last..pos]);
        out.push_str(
            &literal(column, row).map_err(|e| e.context(format!("in parameter {}", i + 1)))?,
        );
        last = pos + 1;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL literal for one value, typed so the statement sees the bound Arrow type.
fn literal(array: &ArrayRef, row: usize) -> Result<String> {
    if array.is_null(row) {
        return Ok("NULL".to_string());
    }
    let text = || {
        array_value_to_string(array, row)
            .map_err(|e| Error::invalid(format!("cannot read the parameter value: {e}")))
    };
    let cast = |ty: &str| -> Result<String> { Ok(format!("CAST({} AS {ty})", text()?)) };
    match array.data_type() {
        DataType::Null => Ok("NULL".to_string()),
        DataType::Boolean => Ok(text()?.to_uppercase()),
        DataType::Int8 => cast("TINYINT"),
        DataType::Int16 => cast("SMALLINT"),
        DataType::Int32 => Ok(text()?),
        DataType::Int64 => cast("BIGINT"),
        DataType::UInt8 | DataType::UInt16 => cast("INT"),
        DataType::UInt32 => cast("BIGINT"),
        DataType::UInt64 => cast("DECIMAL(20, 0)"),
        DataType::Float16 | DataType::Float32 => float(&text()?, "FLOAT"),
        DataType::Float64 => float(&text()?, "DOUBLE"),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            Ok(format!("CAST({} AS DECIMAL({p}, {s}))", text()?))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(quoted(&text()?)),
        DataType::Date32 | DataType::Date64 => Ok(format!("DATE {}", quoted(&text()?))),
        DataType::Time32(_) | DataType::Time64(_) => Ok(format!("TIME {}", quoted(&text()?))),
        DataType::Timestamp(_, None) => {
            Ok(format!("TIMESTAMP {}", quoted(&text()?.replace('T', " "))))
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let hex = text()?;
            Ok(format!("X'{hex}'"))
        }
        other => Err(Error::not_supported(format!(
            "parameters of type {other} are not supported yet"
        ))),
    }
}

fn float(text: &str, ty: &str) -> Result<String> {
    match text {
        "NaN" | "inf" | "-inf" => Ok(format!(
            "CAST('{}' AS {ty})",
            match text {
                "NaN" => "NaN",
                "inf" => "Infinity",
                _ => "-Infinity",
            }
        )),
        _ => Ok(format!("CAST({text} AS {ty})")),
    }
}

/// One prepared statement.
pub struct Prepared {
    /// Whose session it belongs to.
    pub owner: ClientKey,
    pub sql: String,
    pub parameters: usize,
    /// The last bound parameter batch.
    pub bound: Option<RecordBatch>,
}

impl Prepared {
    /// The SQL texts to run: one per bound row (or the text itself when it has no parameters).
    ///
    /// # Errors
    /// `Invalid` when the statement has placeholders but nothing was bound.
    pub fn texts(&self, params: Option<&RecordBatch>) -> Result<Vec<String>> {
        let params = params.or(self.bound.as_ref());
        match (self.parameters, params) {
            (0, None) => Ok(vec![self.sql.clone()]),
            (0, Some(p)) if p.num_columns() == 0 => Ok(vec![self.sql.clone()]),
            (n, None) => Err(Error::invalid(format!(
                "the prepared statement has {n} parameter(s) and none were bound"
            ))),
            (_, Some(p)) => (0..p.num_rows()).map(|r| bind(&self.sql, p, r)).collect(),
        }
    }
}

/// The prepared statements of all clients, by handle.
#[derive(Default)]
pub struct PreparedStatements {
    inner: std::sync::Mutex<HashMap<String, Prepared>>,
}

impl PreparedStatements {
    /// Stores a statement and returns its handle.
    pub fn insert(&self, prepared: Prepared) -> Result<String> {
        let handle = uuid::Uuid::new_v4().to_string();
        self.lock()?.insert(handle.clone(), prepared);
        Ok(handle)
    }

    /// Runs `f` on the statement of `handle` owned by `client`.
    ///
    /// # Errors
    /// `NotFound` when the handle is unknown, closed, or belongs to another client.
    pub fn with<T>(
        &self,
        client: &ClientKey,
        handle: &[u8],
        f: impl FnOnce(&mut Prepared) -> Result<T>,
    ) -> Result<T> {
        let handle = std::str::from_utf8(handle).unwrap_or("");
        let mut map = self.lock()?;
        match map.get_mut(handle) {
            Some(p) if &p.owner == client => f(p),
            _ => Err(Error::not_found(format!(
                "prepared statement {handle} is unknown or closed"
            ))),
        }
    }

    /// Closes a statement; closing an unknown handle is an error.
    pub fn close(&self, client: &ClientKey, handle: &[u8]) -> Result<()> {
        self.with(client, handle, |_| Ok(()))?;
        let handle = std::str::from_utf8(handle).unwrap_or("");
        self.lock()?.remove(handle);
        Ok(())
    }

    /// Drops the statements of clients whose session is gone.
    pub fn retain_owners(&self, alive: impl Fn(&ClientKey) -> bool) {
        if let Ok(mut map) = self.lock() {
            map.retain(|_, p| alive(&p.owner));
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Prepared>>> {
        self.inner
            .lock()
            .map_err(|_| Error::internal("prepared statement map poisoned by an earlier panic"))
    }
}

/// A parameter batch as one batch (clients may send several).
///
/// # Errors
/// `Invalid` when the batches' schemas differ.
pub fn concat(schema: SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    Ok(datafusion::arrow::compute::concat_batches(
        &schema,
        batches.iter(),
    )?)
}

/// One row of `count` NULL parameters (to check that a statement parses once bound).
///
/// # Errors
/// `Internal` if Arrow rejects the batch (a bug).
pub fn null_row(count: usize) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(
        (1..=count)
            .map(|i| Field::new(format!("?{i}"), DataType::Null, true))
            .collect::<Vec<_>>(),
    ));
    let columns = (0..count)
        .map(|_| Arc::new(datafusion::arrow::array::NullArray::new(1)) as ArrayRef)
        .collect();
    RecordBatch::try_new_with_options(
        schema,
        columns,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(|e| Error::internal(format!("cannot build a parameter row: {e}")))
}

/// The empty parameter batch.
pub fn no_parameters() -> RecordBatch {
    RecordBatch::new_empty(Arc::new(Schema::empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, StringArray,
    };

    #[test]
    fn placeholders_skip_quotes_and_comments() {
        let sql = "SELECT ?, '?', `a?`, \"b?\" -- ?\n /* ? */ FROM t WHERE x = ? AND y = 'it''s?'";
        let at = placeholders(sql);
        assert_eq!(at.len(), 2);
        assert_eq!(&sql[at[0]..=at[0]], "?");
        assert_eq!(&sql[at[1]..=at[1]], "?");
        assert!(placeholders("SELECT 'unterminated ?").is_empty());
    }

    #[test]
    fn binds_typed_literals() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Float64, true),
            Field::new("d", DataType::Boolean, true),
            Field::new("e", DataType::Date32, true),
            Field::new("f", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(7), None])),
                Arc::new(StringArray::from(vec![Some("it's"), Some("x")])),
                Arc::new(Float64Array::from(vec![1.5, f64::NAN])),
                Arc::new(BooleanArray::from(vec![true, false])),
                Arc::new(Date32Array::from(vec![19000, 0])),
                Arc::new(Int32Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        let sql = "SELECT ?, ?, ?, ?, ?, ?";
        assert_eq!(
            bind(sql, &batch, 0).unwrap(),
            "SELECT CAST(7 AS BIGINT), 'it''s', CAST(1.5 AS DOUBLE), TRUE, DATE '2022-01-08', 1"
        );
        assert_eq!(
            bind(sql, &batch, 1).unwrap(),
            "SELECT NULL, 'x', CAST('NaN' AS DOUBLE), FALSE, DATE '1970-01-01', 2"
        );
        let err = bind("SELECT ?", &batch, 0).err().unwrap();
        assert!(
            err.to_string().contains("1 parameter placeholder(s) but 6"),
            "{err}"
        );
    }

    #[test]
    fn null_rows_bind_any_count() {
        assert_eq!(
            bind("SELECT 1", &null_row(0).unwrap(), 0).unwrap(),
            "SELECT 1"
        );
        assert_eq!(
            bind("SELECT ?, ?", &null_row(2).unwrap(), 0).unwrap(),
            "SELECT NULL, NULL"
        );
    }

    #[test]
    fn texts_need_bound_parameters() {
        let prepared = Prepared {
            owner: ClientKey::Peer(None),
            sql: "SELECT ?".into(),
            parameters: 1,
            bound: None,
        };
        assert!(prepared.texts(None).is_err());
        let plain = Prepared {
            owner: ClientKey::Peer(None),
            sql: "SELECT 1".into(),
            parameters: 0,
            bound: None,
        };
        assert_eq!(plain.texts(None).unwrap(), vec!["SELECT 1".to_string()]);
        assert_eq!(
            plain.texts(Some(&no_parameters())).unwrap(),
            vec!["SELECT 1".to_string()]
        );
    }

    #[test]
    fn statements_belong_to_their_client() {
        let statements = PreparedStatements::default();
        let alice = ClientKey::Token("a".into());
        let bob = ClientKey::Token("b".into());
        let handle = statements
            .insert(Prepared {
                owner: alice.clone(),
                sql: "SELECT 1".into(),
                parameters: 0,
                bound: None,
            })
            .unwrap();
        assert!(
            statements
                .with(&bob, handle.as_bytes(), |_| Ok(()))
                .is_err()
        );
        assert!(statements.close(&bob, handle.as_bytes()).is_err());
        statements.close(&alice, handle.as_bytes()).unwrap();
        assert!(
            statements
                .with(&alice, handle.as_bytes(), |_| Ok(()))
                .is_err()
        );
    }
}
