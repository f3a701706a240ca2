//! The boundary between Weir and the third-party decoders that read data files (DataFusion's
//! Parquet/CSV/JSON readers, arrow-rs, orc-rust): a corrupt file must give an error naming the
//! file, never a panic. Sits under the connectors' scans (`filesystem`'s listing format wrapper
//! and `ScanContextExec`, the Hive scan): it checks a Parquet footer before a decoder trusts
//! it, and turns a panic inside a reader (while planning, opening or reading a file) into an
//! `External` error that says which file failed.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};

use crate::error::{Error, Result};

/// Parquet's magic, at the start and at the end of every file (`PARE` at the end: encrypted footer).
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";
const PARQUET_MAGIC_ENCRYPTED: &[u8; 4] = b"PARE";
/// The smallest Parquet file: magic, footer length, magic.
const PARQUET_MIN_LEN: u64 = 12;

/// What a panic carried, as text.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// The error for a reader that panicked on `file`.
pub(crate) fn reader_panicked(file: &str, payload: &(dyn Any + Send)) -> Error {
    Error::external(format!(
        "cannot read file '{file}': the reader failed on its contents ({}); the file is probably corrupt",
        panic_message(payload)
    ))
}

/// Runs `fut`, turning a panic inside it into an error naming `file`.
pub(crate) async fn guarded<T>(file: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(payload) => Err(reader_panicked(file, payload.as_ref())),
    }
}

/// `stream` with a panic while it produces an item turned into an error naming `file` (which
/// ends the stream).
pub(crate) fn guarded_stream<T: Send + 'static>(
    file: String,
    stream: BoxStream<'static, Result<T>>,
) -> BoxStream<'static, Result<T>> {
    futures::stream::unfold(Some(stream), move |state| {
        let file = file.clone();
        async move {
            let mut stream = state?;
            match AssertUnwindSafe(stream.next()).catch_unwind().await {
                Ok(Some(item)) => Some((item, Some(stream))),
                Ok(None) => None,
                Err(payload) => Some((Err(reader_panicked(&file, payload.as_ref())), None)),
            }
        }
    })
    .boxed()
}

/// Checks the last 8 bytes of a Parquet file (`tail`: metadata length, magic) against the file's
/// length, so a decoder never sees a footer that points outside the file.
///
/// # Errors
/// `External`, naming `file`: too short, no magic at the end, or metadata longer than the file.
pub(crate) fn check_parquet_tail(file: &str, file_len: u64, tail: &[u8]) -> Result<()> {
    if file_len < PARQUET_MIN_LEN || tail.len() < 8 {
        return Err(Error::external(format!(
            "file '{file}' is not a Parquet file: it has {file_len} bytes, fewer than the \
             {PARQUET_MIN_LEN} of the smallest Parquet file (truncated?)"
        )));
    }
    let tail = &tail[tail.len() - 8..];
    let magic = &tail[4..8];
    if magic != PARQUET_MAGIC && magic != PARQUET_MAGIC_ENCRYPTED {
        return Err(Error::external(format!(
            "file '{file}' is not a Parquet file: it does not end with the magic bytes 'PAR1' \
             (truncated or corrupt?)"
        )));
    }
    let declared = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    let room = file_len - 8 - 4;
    if declared > room {
        return Err(Error::external(format!(
            "Parquet file '{file}' is corrupt: its footer declares {declared} bytes of metadata, \
             but the file has only {room} bytes before the footer"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(len: u32, magic: &[u8; 4]) -> Vec<u8> {
        let mut t = len.to_le_bytes().to_vec();
        t.extend_from_slice(magic);
        t
    }

    #[test]
    fn parquet_tail_checks_length_magic_and_declared_size() {
        assert!(check_parquet_tail("f", 100, &tail(88, b"PAR1")).is_ok());
        let e = check_parquet_tail("dir/f.parquet", 100, &tail(89, b"PAR1")).unwrap_err();
        assert!(e.to_string().contains("'dir/f.parquet'"), "{e}");
        assert!(e.to_string().contains("declares 89 bytes"), "{e}");
        let e = check_parquet_tail("f", 100, &tail(10, b"PAR2")).unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
        let e = check_parquet_tail("f", 7, b"PAR1").unwrap_err();
        assert!(e.to_string().contains("7 bytes"), "{e}");
        let e = check_parquet_tail("f", 100, &tail(u32::MAX, b"PARE")).unwrap_err();
        assert!(e.to_string().contains("4294967295"), "{e}");
    }

    #[tokio::test]
    async fn a_panicking_reader_becomes_an_error_naming_the_file() {
        let r: Result<()> = guarded("x/y.orc", async { panic!("index out of bounds") }).await;
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("'x/y.orc'") && e.contains("index out of bounds"),
            "{e}"
        );
        let ok = guarded("f", async { Ok(3) }).await;
        assert_eq!(ok.unwrap(), 3);

        let items = futures::stream::iter([1, 2, 3])
            .map(|i| if i == 2 { panic!("bad page") } else { Ok(i) })
            .boxed();
        let out: Vec<Result<i32>> = guarded_stream("p.parquet".into(), items).collect().await;
        assert_eq!(out.len(), 2, "the stream ends at the panic");
        assert_eq!(*out[0].as_ref().unwrap(), 1);
        let e = out[1].as_ref().unwrap_err().to_string();
        assert!(e.contains("'p.parquet'") && e.contains("bad page"), "{e}");
    }
}
