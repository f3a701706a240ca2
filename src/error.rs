//! The one error type of the engine. Every layer (SQL parsing, catalogs, planning, execution,
//! connectors, front doors) reports failures as an [`Error`] that says *whose* fault it is
//! ([`ErrorKind`]), *what* happened, and, for SQL, *where* (a line:column [`Span`]).
//!
//! - `User`: the statement or its inputs are wrong (bad SQL, unknown table, wrong option, type
//!   mismatch). Fix the input and try again.
//! - `External`: something outside the engine failed (a file is missing or corrupt, a metastore is
//!   down, the disk is full). The statement may work once the outside world is fixed.
//! - `Internal`: a bug in Weir. These should never be reachable from user input.
//!
//! Errors carry a list of context lines ("while reading table `t`"), added by the layers they
//! pass through with [`Error::context`], and shown after the message.

use std::fmt;

use datafusion::error::DataFusionError;

/// A position in SQL text: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A range of SQL text, from `start` (inclusive) to `end` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: Location,
    pub end: Location,
}

impl Span {
    pub fn new(start: Location, end: Location) -> Self {
        Self { start, end }
    }

    /// The span sqlparser gives a token or node; `None` when sqlparser has no position for it.
    pub fn from_sqlparser(span: datafusion::sql::sqlparser::tokenizer::Span) -> Option<Self> {
        if span.start.line == 0 {
            return None;
        }
        Some(Self {
            start: Location {
                line: span.start.line,
                column: span.start.column,
            },
            end: Location {
                line: span.end.line,
                column: span.end.column,
            },
        })
    }

    /// Moves a span that is relative to a statement starting at `base` to the script's coordinates.
    pub fn offset_by(self, base: Location) -> Self {
        let shift = |loc: Location| {
            if loc.line == 1 {
                Location {
                    line: base.line,
                    column: base.column + loc.column - 1,
                }
            } else {
                Location {
                    line: base.line + loc.line - 1,
                    column: loc.column,
                }
            }
        };
        Self {
            start: shift(self.start),
            end: shift(self.end),
        }
    }
}

/// Whose fault an error is; front doors map it to exit codes and gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user's statement or input is wrong.
    User,
    /// Something outside the engine failed (I/O, corrupt files, remote services).
    External,
    /// A bug in Weir.
    Internal,
}

/// What an error is about, for finer-grained mapping (e.g. gRPC NOT_FOUND).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// SQL that does not parse.
    Syntax,
    /// A name that does not resolve (table, column, catalog, database, function).
    NotFound,
    /// An object that already exists.
    AlreadyExists,
    /// Valid SQL that does not make sense (types, options, semantics).
    Invalid,
    /// A feature Weir does not support yet.
    NotSupported,
    /// The statement was cancelled.
    Cancelled,
    /// Anything else.
    Other,
}

/// The engine's error: kind, code, message, optional SQL span and context lines.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub code: ErrorCode,
    pub message: String,
    pub span: Option<Span>,
    pub context: Vec<String>,
}

/// The result type used throughout Weir.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn new(kind: ErrorKind, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            span: None,
            context: Vec::new(),
        }
    }

    /// A SQL syntax error at a position.
    pub fn syntax(message: impl Into<String>, span: Option<Span>) -> Self {
        Self::new(ErrorKind::User, ErrorCode::Syntax, message).with_span_opt(span)
    }

    /// A user error: the statement is valid SQL but wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::User, ErrorCode::Invalid, message)
    }

    /// A name that does not resolve.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::User, ErrorCode::NotFound, message)
    }

    /// An object that already exists.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::User, ErrorCode::AlreadyExists, message)
    }

    /// A feature that is not supported yet.
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::User, ErrorCode::NotSupported, message)
    }

    /// A failure outside the engine (I/O, corrupt data, remote service).
    pub fn external(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::External, ErrorCode::Other, message)
    }

    /// A bug in Weir.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, ErrorCode::Other, message)
    }

    /// The statement was cancelled by the user.
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::User, ErrorCode::Cancelled, "statement cancelled")
    }

    /// Attaches a SQL span (if none is attached yet).
    pub fn with_span(mut self, span: Span) -> Self {
        if self.span.is_none() {
            self.span = Some(span);
        }
        self
    }

    fn with_span_opt(mut self, span: Option<Span>) -> Self {
        if let Some(s) = span {
            self = self.with_span(s);
        }
        self
    }

    /// Adds a context line, e.g. "while reading table `t`".
    pub fn context(mut self, line: impl Into<String>) -> Self {
        self.context.push(line.into());
        self
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        Self::external(format!("{what}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match (self.kind, self.code) {
            (_, ErrorCode::Syntax) => "SQL parse error",
            (_, ErrorCode::Cancelled) => "Cancelled",
            (_, ErrorCode::NotSupported) => "Not supported",
            (ErrorKind::User, _) => "Error",
            (ErrorKind::External, _) => "External error",
            (ErrorKind::Internal, _) => "Internal error (a bug in Weir)",
        };
        match self.span {
            Some(span) => write!(
                f,
                "{label} at line {}, column {}: {}",
                span.start.line, span.start.column, self.message
            )?,
            None => write!(f, "{label}: {}", self.message)?,
        }
        for line in self.context.iter().rev() {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<DataFusionError> for Error {
    fn from(err: DataFusionError) -> Self {
        from_datafusion(err)
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(err: datafusion::arrow::error::ArrowError) -> Self {
        from_datafusion(DataFusionError::ArrowError(Box::new(err), None))
    }
}

/// Maps DataFusion's error variants to our kinds, keeping DataFusion's span when it has one.
fn from_datafusion(err: DataFusionError) -> Error {
    let span = err
        .diagnostic()
        .and_then(|d| d.span)
        .map(|s| Span {
            start: Location {
                line: s.start.line,
                column: s.start.column,
            },
            end: Location {
                line: s.end.line,
                column: s.end.column,
            },
        })
        .filter(|s| s.start.line > 0);
    let mut context = Vec::new();
    let mut err = err;
    // Peel wrappers until the error that says what went wrong.
    let mut out = loop {
        err = match err {
            DataFusionError::Context(what, inner) => {
                context.push(what);
                *inner
            }
            DataFusionError::Diagnostic(_, inner) => *inner,
            DataFusionError::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
                Ok(inner) => inner,
                Err(shared) => break from_shared(&shared),
            },
            DataFusionError::Collection(mut errs) if !errs.is_empty() => errs.swap_remove(0),
            DataFusionError::ArrowError(e, _) => match *e {
                datafusion::arrow::error::ArrowError::ExternalError(inner) => {
                    match inner.downcast::<DataFusionError>() {
                        Ok(df) => *df,
                        Err(other) => match other.downcast::<Error>() {
                            Ok(ours) => break *ours,
                            Err(other) => break Error::external(other.to_string()),
                        },
                    }
                }
                other => break classify_arrow(&other),
            },
            DataFusionError::External(e) => match e.downcast::<Error>() {
                Ok(ours) => break *ours,
                Err(e) => match e.downcast::<DataFusionError>() {
                    Ok(df) => *df,
                    Err(e) => break Error::external(e.to_string()),
                },
            },
            DataFusionError::SQL(e, _) => {
                break Error::syntax(strip_sql_prefix(&e.to_string()), None);
            }
            DataFusionError::Plan(msg) => break classify_plan_message(&msg),
            DataFusionError::SchemaError(e, _) => break classify_plan_message(&e.to_string()),
            DataFusionError::NotImplemented(msg) => break Error::not_supported(msg),
            DataFusionError::Configuration(msg) => break Error::invalid(msg),
            DataFusionError::Execution(msg) => break Error::external(msg),
            DataFusionError::ExecutionJoin(e) => break Error::internal(e.to_string()),
            DataFusionError::IoError(e) => break Error::external(e.to_string()),
            DataFusionError::ParquetError(e) => break Error::external(format!("Parquet: {e}")),
            DataFusionError::ObjectStore(e) => break Error::external(e.to_string()),
            DataFusionError::ResourcesExhausted(msg) => {
                break Error::external(format!("resources exhausted: {msg}"));
            }
            // DataFusion reports some type errors of the user's SQL as internal ones
            // (`a BETWEEN b AND c` over types that do not compare).
            DataFusionError::Internal(msg) if msg.starts_with("Failed to coerce types") => {
                break Error::invalid(msg);
            }
            DataFusionError::Internal(msg) => break Error::internal(msg),
            other => break Error::external(other.to_string()),
        };
    };
    for line in context.into_iter().rev() {
        out = out.context(line);
    }
    if let Some(span) = span {
        out = out.with_span(span);
    }
    out
}

/// An error several consumers share (a hash join's build side, a repartition): ours is cloned
/// out of it, so its kind and message survive; anything else becomes its text.
fn from_shared(err: &DataFusionError) -> Error {
    match err {
        DataFusionError::Context(what, inner) => from_shared(inner).context(what.clone()),
        DataFusionError::Shared(inner) => from_shared(inner),
        DataFusionError::External(e) => match e.downcast_ref::<Error>() {
            Some(ours) => ours.clone(),
            None => match e.downcast_ref::<DataFusionError>() {
                Some(df) => from_shared(df),
                None => Error::external(e.to_string()),
            },
        },
        other => Error::external(other.to_string()),
    }
}

fn strip_sql_prefix(s: &str) -> String {
    s.trim_start_matches("sql parser error: ").to_string()
}

fn classify_plan_message(msg: &str) -> Error {
    let lower = msg.to_ascii_lowercase();
    if lower.contains("not found") || lower.contains("no field named") {
        Error::not_found(msg)
    } else {
        Error::invalid(msg)
    }
}

fn classify_arrow(e: &datafusion::arrow::error::ArrowError) -> Error {
    use datafusion::arrow::error::ArrowError;
    match e {
        ArrowError::CastError(m)
        | ArrowError::InvalidArgumentError(m)
        | ArrowError::ComputeError(m) => Error::invalid(m.clone()),
        ArrowError::DivideByZero => Error::invalid("division by zero"),
        ArrowError::ParseError(m) | ArrowError::CsvError(m) | ArrowError::JsonError(m) => {
            Error::external(format!("cannot read data: {m}"))
        }
        other => Error::external(other.to_string()),
    }
}

/// Converts our error into DataFusion's, so it can travel through DataFusion traits and come
/// back unchanged (see `From<DataFusionError>`).
impl From<Error> for DataFusionError {
    fn from(err: Error) -> Self {
        DataFusionError::External(Box::new(err))
    }
}
