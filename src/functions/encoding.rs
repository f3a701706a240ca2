//! Flink's encoding, hashing and network-address built-ins DataFusion lacks or spells
//! differently, evaluated row by row through `rowwise::RowFn` in expression evaluation (both
//! engines). NULL in → NULL out for every function.
//!
//! - `HEX(x)` → `STRING`: an integer as Java's `Long.toHexString` (two's complement for
//!   negatives), a string as the hex of its UTF-8 bytes; upper case.
//! - `UNHEX(str)` → `BYTES`: pairs of hex digits counted from the end; with an odd count the
//!   first digit becomes a zero byte, as Flink's `EncodingUtils.unhex`; NULL when a character
//!   is not a hex digit.
//! - `BIN(x)` → `STRING`: Java's `Long.toBinaryString`.
//! - `SHA1(str)`, `SHA2(str, bits)` (224, 256, 384, 512; other bit counts raise) → `STRING`,
//!   lower-case hex of the digest of the UTF-8 bytes; `SHA224`, `SHA256`, `SHA384`, `SHA512`
//!   likewise (over DataFusion's, which return `BYTES`).
//! - `TO_BASE64(str)` / `FROM_BASE64(str)` → `STRING` (standard alphabet with padding; an
//!   invalid input to `FROM_BASE64` raises).
//! - `ENCODE(str, charset)` → `BYTES` and `DECODE(bytes, charset)` → `STRING` with Java's
//!   charsets `UTF-8`, `US-ASCII`, `ISO-8859-1`, `UTF-16BE`, `UTF-16LE`, `UTF-16` (Flink's
//!   meaning). They replace DataFusion's `encode` / `decode`, whose literal encodings `'hex'`,
//!   `'base64'`, `'base64pad'` keep DataFusion's meaning (`encode(x, 'hex')` → `STRING`).
//! - `INET_ATON(str)` → `BIGINT`: a dotted IPv4 address as a number (with C's short forms,
//!   `1.2.3` = `1.2.0.3`); NULL when it is not one.
//!   `INET_NTOA(n)` → `STRING`; NULL outside 0..=4294967295.

use base64::Engine as _;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::ScalarUDF;
use sha1::Digest as _;

use super::rowwise::{
    Ctx, RowFn, all_strings, int_arg, int_of, is_string, need_int, need_str, sql_name, string,
    string_arg,
};
use super::strings::ret_string;

/// The functions of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        RowFn::new("hex", &[1], hex_coerce, ret_string, hex).udf(),
        RowFn::new("unhex", &[1], all_strings, ret_bytes, unhex).udf(),
        RowFn::new("bin", &[1], |f, _, t| int_arg(f, t), ret_string, bin).udf(),
        RowFn::new("sha1", &[1], all_strings, ret_string, sha1_hex).udf(),
        RowFn::new("sha2", &[2], sha2_coerce, ret_string, sha2_hex).udf(),
        RowFn::new("sha224", &[1], all_strings, ret_string, |a, _| {
            digest_hex::<sha2::Sha224>(a)
        })
        .udf(),
        RowFn::new("sha256", &[1], all_strings, ret_string, |a, _| {
            digest_hex::<sha2::Sha256>(a)
        })
        .udf(),
        RowFn::new("sha384", &[1], all_strings, ret_string, |a, _| {
            digest_hex::<sha2::Sha384>(a)
        })
        .udf(),
        RowFn::new("sha512", &[1], all_strings, ret_string, |a, _| {
            digest_hex::<sha2::Sha512>(a)
        })
        .udf(),
        RowFn::new("to_base64", &[1], all_strings, ret_string, to_base64).udf(),
        RowFn::new("from_base64", &[1], all_strings, ret_string, from_base64).udf(),
        RowFn::new("inet_aton", &[1], all_strings, ret_bigint, inet_aton).udf(),
        RowFn::new(
            "inet_ntoa",
            &[1],
            |f, _, t| int_arg(f, t),
            ret_string,
            inet_ntoa,
        )
        .udf(),
        RowFn::new("encode", &[2], encode_coerce, ret_bytes, encode)
            .literal_return(encode_type)
            .udf(),
        RowFn::new("decode", &[2], decode_coerce, ret_string, decode)
            .literal_return(decode_type)
            .udf(),
    ]
}

fn ret_bytes(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Binary)
}

fn ret_bigint(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Int64)
}

fn hex_coerce(func: &str, _: usize, t: &DataType) -> DfResult<DataType> {
    if t.is_integer() {
        Ok(DataType::Int64)
    } else if is_string(t) || t == &DataType::Null {
        Ok(DataType::Utf8)
    } else {
        datafusion::common::plan_err!(
            "{func} expects an integer or STRING argument, got {}",
            sql_name(t)
        )
    }
}

fn hex(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let text = match int_of(&args[0]) {
        Some(i) => format!("{:X}", i as u64),
        None => hex_upper(need_str("HEX", args, 0)?.as_bytes()),
    };
    Ok(string(text))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("UNHEX", args, 0)?;
    Ok(ScalarValue::Binary(unhex_bytes(s)))
}

fn unhex_bytes(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s
        .chars()
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect::<Option<_>>()?;
    let mut out = Vec::with_capacity(digits.len().div_ceil(2));
    let mut rest = digits.as_slice();
    if rest.len() % 2 == 1 {
        // Flink pairs digits from the end and leaves the odd first digit out (a zero byte).
        out.push(0);
        rest = &rest[1..];
    }
    for pair in rest.chunks(2) {
        out.push(pair[0] * 16 + pair[1]);
    }
    Some(out)
}

fn bin(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let i = need_int("BIN", args, 0)?;
    Ok(string(format!("{:b}", i as u64)))
}

fn sha1_hex(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("SHA1", args, 0)?;
    Ok(string(hex_lower(&sha1::Sha1::digest(s.as_bytes()))))
}

/// `SHA224` ... `SHA512`: lower-case hex `STRING`s in Flink (DataFusion's return `BYTES`).
fn digest_hex<D: sha2::Digest>(args: &[ScalarValue]) -> DfResult<ScalarValue> {
    let s = need_str("SHA", args, 0)?;
    Ok(string(hex_lower(&D::digest(s.as_bytes()))))
}

fn sha2_coerce(func: &str, i: usize, t: &DataType) -> DfResult<DataType> {
    if i == 0 {
        string_arg(func, t)
    } else {
        int_arg(func, t)
    }
}

fn sha2_hex(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("SHA2", args, 0)?.as_bytes();
    let digest = match need_int("SHA2", args, 1)? {
        224 => hex_lower(&sha2::Sha224::digest(s)),
        256 => hex_lower(&sha2::Sha256::digest(s)),
        384 => hex_lower(&sha2::Sha384::digest(s)),
        512 => hex_lower(&sha2::Sha512::digest(s)),
        other => {
            return exec_err!("SHA2: bit length {other} is not one of 224, 256, 384, 512");
        }
    };
    Ok(string(digest))
}

fn to_base64(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("TO_BASE64", args, 0)?;
    Ok(string(
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
    ))
}

fn from_base64(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("FROM_BASE64", args, 0)?;
    match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
        Ok(bytes) => Ok(string(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) => exec_err!("FROM_BASE64: '{s}' is not base64: {e}"),
    }
}

/// DataFusion's own encodings, kept for scripts written against it: `encode(x, 'hex')`.
fn is_datafusion_encoding(literal: Option<&ScalarValue>) -> bool {
    literal.and_then(super::rowwise::str_of).is_some_and(|c| {
        matches!(
            c.to_ascii_lowercase().as_str(),
            "hex" | "base64" | "base64pad"
        )
    })
}

fn encode_coerce(func: &str, i: usize, t: &DataType) -> DfResult<DataType> {
    match (i, t) {
        (0, DataType::Binary | DataType::LargeBinary | DataType::BinaryView) => {
            Ok(DataType::Binary)
        }
        (_, t) => string_arg(func, t),
    }
}

fn encode_type(_: &str, _: &[DataType], literals: &[Option<&ScalarValue>]) -> DfResult<DataType> {
    Ok(
        if is_datafusion_encoding(literals.get(1).copied().flatten()) {
            DataType::Utf8
        } else {
            DataType::Binary
        },
    )
}

fn decode_type(_: &str, _: &[DataType], literals: &[Option<&ScalarValue>]) -> DfResult<DataType> {
    Ok(
        if is_datafusion_encoding(literals.get(1).copied().flatten()) {
            DataType::Binary
        } else {
            DataType::Utf8
        },
    )
}

fn decode_coerce(func: &str, i: usize, t: &DataType) -> DfResult<DataType> {
    match (i, t) {
        (0, DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null) => {
            Ok(DataType::Binary)
        }
        (0, t) if is_string(t) => Ok(DataType::Binary),
        (0, t) => datafusion::common::plan_err!("{func} expects BYTES, got {}", sql_name(t)),
        (_, t) => string_arg(func, t),
    }
}

fn bytes_of(v: &ScalarValue) -> Option<&[u8]> {
    match v {
        ScalarValue::Binary(Some(b)) => Some(b),
        ScalarValue::Utf8(Some(s)) => Some(s.as_bytes()),
        _ => None,
    }
}

/// DataFusion's `encode(x, 'hex' | 'base64')` → `STRING`.
fn datafusion_encode(bytes: &[u8], encoding: &str) -> ScalarValue {
    string(match encoding.to_ascii_lowercase().as_str() {
        "hex" => hex_lower(bytes),
        "base64pad" => base64::engine::general_purpose::STANDARD.encode(bytes),
        _ => base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes),
    })
}

/// DataFusion's `decode(text, 'hex' | 'base64')` → `BYTES`.
fn datafusion_decode(text: &[u8], encoding: &str) -> DfResult<ScalarValue> {
    let text = String::from_utf8_lossy(text);
    let bytes = match encoding.to_ascii_lowercase().as_str() {
        "hex" => unhex_bytes(&text).filter(|_| text.len().is_multiple_of(2)),
        _ => base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text.trim_end_matches('='))
            .ok(),
    };
    match bytes {
        Some(b) => Ok(ScalarValue::Binary(Some(b))),
        None => exec_err!("DECODE: '{text}' is not valid {encoding}"),
    }
}

/// A charset name as Java spells it (case-insensitive).
fn charset(func: &str, name: &str) -> DfResult<&'static str> {
    match name.to_ascii_uppercase().as_str() {
        "UTF-8" | "UTF8" => Ok("UTF-8"),
        "US-ASCII" | "ASCII" => Ok("US-ASCII"),
        "ISO-8859-1" | "LATIN1" => Ok("ISO-8859-1"),
        "UTF-16BE" => Ok("UTF-16BE"),
        "UTF-16LE" => Ok("UTF-16LE"),
        "UTF-16" => Ok("UTF-16"),
        _ => exec_err!(
            "{func}: unsupported charset '{name}' (UTF-8, US-ASCII, ISO-8859-1, UTF-16BE, \
             UTF-16LE, UTF-16)"
        ),
    }
}

/// `ENCODE(str, charset)` → `BYTES`, as Java's `String.getBytes(charset)` (an unmappable
/// character becomes `?`).
fn encode(args: &[ScalarValue], ctx: &Ctx) -> DfResult<ScalarValue> {
    if ctx.ret == &DataType::Utf8 {
        let Some(bytes) = bytes_of(&args[0]) else {
            return exec_err!("ENCODE expects STRING or BYTES");
        };
        return Ok(datafusion_encode(bytes, need_str("ENCODE", args, 1)?));
    }
    let s = match &args[0] {
        ScalarValue::Binary(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => need_str("ENCODE", args, 0)?.to_string(),
    };
    let s = s.as_str();
    let bytes: Vec<u8> = match charset("ENCODE", need_str("ENCODE", args, 1)?)? {
        "UTF-8" => s.as_bytes().to_vec(),
        "US-ASCII" => s
            .chars()
            .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
            .collect(),
        "ISO-8859-1" => s
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect(),
        "UTF-16LE" => s.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        "UTF-16" => [0xFE, 0xFF]
            .into_iter()
            .chain(s.encode_utf16().flat_map(u16::to_be_bytes))
            .collect(),
        _ => s.encode_utf16().flat_map(u16::to_be_bytes).collect(),
    };
    Ok(ScalarValue::Binary(Some(bytes)))
}

/// `DECODE(bytes, charset)` → `STRING` (malformed input becomes U+FFFD, as Java's decoder).
fn decode(args: &[ScalarValue], ctx: &Ctx) -> DfResult<ScalarValue> {
    let bytes: &[u8] = match &args[0] {
        ScalarValue::Binary(Some(b)) => b,
        _ => return exec_err!("DECODE expects BYTES"),
    };
    if ctx.ret == &DataType::Binary {
        return datafusion_decode(bytes, need_str("DECODE", args, 1)?);
    }
    let utf16 = |be: bool, b: &[u8]| {
        let units: Vec<u16> = b
            .chunks(2)
            .map(|c| {
                let pair = [c[0], c.get(1).copied().unwrap_or(0)];
                if be {
                    u16::from_be_bytes(pair)
                } else {
                    u16::from_le_bytes(pair)
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    let text = match charset("DECODE", need_str("DECODE", args, 1)?)? {
        "UTF-8" => String::from_utf8_lossy(bytes).into_owned(),
        "US-ASCII" => bytes
            .iter()
            .map(|b| {
                if b.is_ascii() {
                    char::from(*b)
                } else {
                    '\u{FFFD}'
                }
            })
            .collect(),
        "ISO-8859-1" => bytes.iter().map(|b| char::from(*b)).collect(),
        "UTF-16LE" => utf16(false, bytes),
        "UTF-16" => match bytes {
            [0xFF, 0xFE, rest @ ..] => utf16(false, rest),
            [0xFE, 0xFF, rest @ ..] => utf16(true, rest),
            _ => utf16(true, bytes),
        },
        _ => utf16(true, bytes),
    };
    Ok(string(text))
}

fn inet_aton(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("INET_ATON", args, 0)?;
    Ok(ScalarValue::Int64(parse_ipv4(s)))
}

/// `a.b.c.d`, or the short forms of C's `inet_aton`: the last part fills the remaining
/// bytes (`a.b.c` = `a.b.0.c` for `c` < 256, `a.b` = `a.0.0.b`).
fn parse_ipv4(s: &str) -> Option<i64> {
    let parts: Vec<i64> = s
        .split('.')
        .map(|p| {
            if p.is_empty() || p.len() > 10 || !p.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                p.parse().ok()
            }
        })
        .collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if parts.len() > 4 || head.iter().any(|p| *p > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - head.len() as u32);
    if *last >= 1i64 << rest_bits {
        return None;
    }
    let mut n: i64 = 0;
    for p in head {
        n = n * 256 + p;
    }
    Some((n << rest_bits) | last)
}

fn inet_ntoa(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let n = need_int("INET_NTOA", args, 0)?;
    let Ok(n) = u32::try_from(n) else {
        return Ok(ScalarValue::Utf8(None));
    };
    let [a, b, c, d] = n.to_be_bytes();
    Ok(string(format!("{a}.{b}.{c}.{d}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_unhex() {
        assert_eq!(unhex_bytes("414243"), Some(b"ABC".to_vec()));
        assert_eq!(unhex_bytes("41424"), Some(vec![0, 0x14, 0x24]));
        assert_eq!(unhex_bytes("zz"), None);
        assert_eq!(hex_upper("é".as_bytes()), "C3A9");
    }

    #[test]
    fn ipv4() {
        assert_eq!(parse_ipv4("1.2.3.4"), Some(16_909_060));
        assert_eq!(parse_ipv4("255.255.255.255"), Some(4_294_967_295));
        assert_eq!(parse_ipv4("1.2.3"), Some(16_908_291));
        assert_eq!(parse_ipv4("1.2.3.256"), None);
        assert_eq!(parse_ipv4("a.b.c.d"), None);
    }

    #[test]
    fn digests() {
        let ctx_ret = DataType::Utf8;
        let ctx = Ctx {
            ret: &ctx_ret,
            zone: None,
        };
        let v = sha1_hex(&[string("abc")], &ctx).unwrap();
        assert_eq!(
            v,
            string("a9993e364706816aba3e25717850c26c9cd0d89d"),
            "SHA-1 of 'abc' (FIPS 180 test vector)"
        );
        assert!(sha2_hex(&[string("abc"), ScalarValue::Int64(Some(1))], &ctx).is_err());
    }
}
