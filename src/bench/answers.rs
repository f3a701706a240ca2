//! Reference answers for `--verify`: the stored TPC-H SF 1 answers (`tpch/answers/sf1/qNN.csv`,
//! compiled in; provenance in `tpch/answers/README.md`), the small CSV dialect they are kept in,
//! and the comparison of an answer with a reference: numbers within a tolerance, rows in order
//! only where the query orders them.

use crate::error::{Error, Result};

/// One row of an answer as text, `None` for NULL.
pub type Row = Vec<Option<String>>;

/// A query answer as text: one [`Row`] per row.
pub type Answer = Vec<Row>;

const TPCH_SF1: [&str; 22] = [
    include_str!("../../tpch/answers/sf1/q01.csv"),
    include_str!("../../tpch/answers/sf1/q02.csv"),
    include_str!("../../tpch/answers/sf1/q03.csv"),
    include_str!("../../tpch/answers/sf1/q04.csv"),
    include_str!("../../tpch/answers/sf1/q05.csv"),
    include_str!("../../tpch/answers/sf1/q06.csv"),
    include_str!("../../tpch/answers/sf1/q07.csv"),
    include_str!("../../tpch/answers/sf1/q08.csv"),
    include_str!("../../tpch/answers/sf1/q09.csv"),
    include_str!("../../tpch/answers/sf1/q10.csv"),
    include_str!("../../tpch/answers/sf1/q11.csv"),
    include_str!("../../tpch/answers/sf1/q12.csv"),
    include_str!("../../tpch/answers/sf1/q13.csv"),
    include_str!("../../tpch/answers/sf1/q14.csv"),
    include_str!("../../tpch/answers/sf1/q15.csv"),
    include_str!("../../tpch/answers/sf1/q16.csv"),
    include_str!("../../tpch/answers/sf1/q17.csv"),
    include_str!("../../tpch/answers/sf1/q18.csv"),
    include_str!("../../tpch/answers/sf1/q19.csv"),
    include_str!("../../tpch/answers/sf1/q20.csv"),
    include_str!("../../tpch/answers/sf1/q21.csv"),
    include_str!("../../tpch/answers/sf1/q22.csv"),
];

/// The stored answer of TPC-H query `n` at `scale` (only SF 1 is stored), as CSV text.
pub fn tpch_answer(scale: f64, n: usize) -> Option<&'static str> {
    if scale != 1.0 {
        return None;
    }
    n.checked_sub(1).and_then(|i| TPCH_SF1.get(i)).copied()
}

/// Parses an answer file's rows (see [`parse_table`]; the header is skipped).
///
/// # Errors
/// As [`parse_table`].
pub fn parse_csv(text: &str) -> Result<Answer> {
    parse_table(text).map(|(_, rows)| rows)
}

/// Parses an answer file: a header line with the column names, then one line per row. Fields
/// are separated by commas; a field containing a comma, quote or line break is quoted with `"`
/// (a quote inside doubled); an empty unquoted field is NULL (so an empty line is a row of one
/// NULL), `""` is the empty string. The TPC-H and TPC-DS answers use this dialect.
///
/// # Errors
/// `Invalid` for an empty text, an unterminated quote, text after a closing quote, a quote inside
/// an unquoted field, or a row whose number of fields differs from the header's; the message
/// names the line or row.
pub fn parse_table(text: &str) -> Result<(Vec<String>, Answer)> {
    let mut rows = Vec::new();
    let mut row: Vec<Option<String>> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut line = 1usize;
    let mut chars = text.chars().peekable();
    let mut at_line_start = true;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    in_quotes = false;
                    if !matches!(chars.peek(), None | Some(',') | Some('\n') | Some('\r')) {
                        return Err(Error::invalid(format!(
                            "answer CSV line {line}: text after a closing quote"
                        )));
                    }
                }
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !quoted => {
                quoted = true;
                in_quotes = true;
                at_line_start = false;
            }
            '"' => {
                return Err(Error::invalid(format!(
                    "answer CSV line {line}: a quote inside an unquoted field"
                )));
            }
            ',' => {
                row.push(finish(&mut field, &mut quoted));
                at_line_start = false;
            }
            '\r' => {}
            '\n' => {
                // An empty line is a row of one NULL (a one-column answer).
                row.push(finish(&mut field, &mut quoted));
                rows.push(std::mem::take(&mut row));
                line += 1;
                at_line_start = true;
            }
            _ => {
                field.push(c);
                at_line_start = false;
            }
        }
    }
    if in_quotes {
        return Err(Error::invalid(format!(
            "answer CSV line {line}: unterminated quote"
        )));
    }
    if !at_line_start {
        row.push(finish(&mut field, &mut quoted));
        rows.push(row);
    }
    let mut rows = rows.into_iter();
    let header: Vec<String> = rows
        .next()
        .ok_or_else(|| Error::invalid("answer CSV is empty: it needs a header line"))?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let rows: Answer = rows.collect();
    if let Some((i, r)) = rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.len() != header.len())
    {
        return Err(Error::invalid(format!(
            "answer CSV row {}: {} fields, the header has {}",
            i + 1,
            r.len(),
            header.len()
        )));
    }
    Ok((header, rows))
}

fn finish(field: &mut String, quoted: &mut bool) -> Option<String> {
    let text = std::mem::take(field);
    let was_quoted = std::mem::replace(quoted, false);
    if text.is_empty() && !was_quoted {
        None
    } else {
        Some(text)
    }
}

/// Writes an answer in the dialect [`parse_csv`] reads, with a header line.
pub fn to_csv(header: &[String], rows: &Answer) -> String {
    let quote = |s: &str| {
        if s.is_empty() || s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = header
        .iter()
        .map(|h| quote(h))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .map(|c| c.as_deref().map_or_else(String::new, quote))
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// Whether a query orders its result: an `ORDER BY` outside parentheses (so not one inside a
/// window or subquery), comments ignored.
pub fn is_ordered(sql: &str) -> bool {
    let mut depth = 0i32;
    let mut text = String::with_capacity(sql.len());
    for line in sql.lines() {
        let code = line.split("--").next().unwrap_or("");
        for c in code.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => text.push(c.to_ascii_lowercase()),
                _ => {}
            }
        }
        text.push(' ');
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    words.windows(2).any(|w| w == ["order", "by"])
}

/// Compares an answer with a reference; `Err(message)` shows the first differing rows. Rows
/// are compared in order when `ordered`, else as sorted multisets.
pub fn compare(
    answer: &Answer,
    expected: &Answer,
    ordered: bool,
) -> std::result::Result<(), String> {
    let mut a: Vec<&Row> = answer.iter().collect();
    let mut b: Vec<&Row> = expected.iter().collect();
    if !ordered {
        a.sort_by(|x, y| row_order(x, y));
        b.sort_by(|x, y| row_order(x, y));
    }
    let show = |r: Option<&&Row>| {
        r.map_or_else(
            || "(no row)".to_string(),
            |r| {
                r.iter()
                    .map(|c| c.as_deref().unwrap_or("NULL"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            },
        )
    };
    let first_bad = (0..a.len().max(b.len())).find(|&i| match (a.get(i), b.get(i)) {
        (Some(x), Some(y)) => {
            x.len() != y.len()
                || x.iter()
                    .zip(y.iter())
                    .any(|(p, q)| !cells_match(p.as_deref(), q.as_deref()))
        }
        _ => true,
    });
    match first_bad {
        None => Ok(()),
        Some(i) => {
            let mut msg = if a.len() == b.len() {
                String::new()
            } else {
                format!("{} rows, expected {}; ", a.len(), b.len())
            };
            msg.push_str(&format!(
                "first difference at row {} ({}):\n  got:      {}\n  expected: {}",
                i + 1,
                if ordered { "in order" } else { "rows sorted" },
                show(a.get(i)),
                show(b.get(i))
            ));
            if let (Some(_), Some(_)) = (a.get(i + 1), b.get(i + 1)) {
                msg.push_str(&format!(
                    "\n  next got:      {}\n  next expected: {}",
                    show(a.get(i + 1)),
                    show(b.get(i + 1))
                ));
            }
            Err(msg)
        }
    }
}

fn row_order(x: &[Option<String>], y: &[Option<String>]) -> std::cmp::Ordering {
    for (p, q) in x.iter().zip(y) {
        let o = match (p.as_deref().map(str::trim), q.as_deref().map(str::trim)) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(p), Some(q)) => match (p.parse::<f64>(), q.parse::<f64>()) {
                (Ok(m), Ok(n)) => m.total_cmp(&n),
                _ => p.cmp(q),
            },
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    x.len().cmp(&y.len())
}

/// Whether two cells agree: equal text (outer spaces ignored), both NaN, or numbers within 1e-6
/// relative (float and decimal arithmetic differ in the last digits). A reference rounded to at
/// most two decimals, as the official TPC answer sets are, matches within half a cent. A value
/// written with fewer (at least three) decimals than the other (a decimal quotient kept at a fixed scale, e.g.
/// `0.676432` for `0.6764327813`) matches within five units of its last decimal place (decimal
/// arithmetic rounds intermediate results at their scale: TPC-DS q66 differs by 1.7 units).
pub fn cells_match(a: Option<&str>, b: Option<&str>) -> bool {
    match (a.map(str::trim), b.map(str::trim)) {
        (None, None) => true,
        (Some(a), Some(b)) if a == b => true,
        (Some(a), Some(b)) => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) if x.is_nan() || y.is_nan() => x.is_nan() && y.is_nan(),
            (Ok(x), Ok(y)) => {
                let diff = (x - y).abs();
                let decimals = |s: &str| s.split_once('.').map_or(0, |(_, f)| f.len());
                let (da, db) = (decimals(a), decimals(b));
                let coarse = i32::try_from(da.min(db)).unwrap_or(i32::MAX);
                diff <= 1e-6 * x.abs().max(y.abs()).max(1.0)
                    || ((1..=2).contains(&coarse) && diff <= 0.005 + 1e-9)
                    || (da != db && coarse >= 3 && diff <= 5.0 * 10f64.powi(-coarse) * (1.0 + 1e-9))
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[Option<&str>]) -> Vec<Option<String>> {
        cells.iter().map(|c| c.map(String::from)).collect()
    }

    #[test]
    fn csv_round_trips_nulls_quotes_and_empty_strings() -> Result<()> {
        let rows = vec![
            row(&[Some("a,b"), None, Some("")]),
            row(&[Some("say \"hi\""), Some("1.5"), Some("x\ny")]),
        ];
        let header = vec!["c1".to_string(), "c2".to_string(), "c3".to_string()];
        let text = to_csv(&header, &rows);
        assert_eq!(parse_csv(&text)?, rows);
        // An empty line is a one-column row holding NULL.
        assert_eq!(
            parse_csv("h\n1\n\n2")?,
            vec![row(&[Some("1")]), row(&[None]), row(&[Some("2")])]
        );
        let one_null = vec![row(&[None])];
        assert_eq!(parse_csv(&to_csv(&["h".to_string()], &one_null))?, one_null);
        assert!(parse_csv("h\n\"open").is_err_and(|e| e.message.contains("line 2")));
        assert!(parse_csv("h\n\"a\"b").is_err());
        Ok(())
    }

    #[test]
    fn stored_tpch_answers_parse() -> Result<()> {
        for n in 1..=22 {
            let text = tpch_answer(1.0, n).ok_or_else(|| Error::internal("missing"))?;
            let rows = parse_csv(text)?;
            assert!(!rows.is_empty() || n == 0, "q{n}");
        }
        let q06 = parse_csv(tpch_answer(1.0, 6).unwrap_or(""))?;
        assert!(cells_match(q06[0][0].as_deref(), Some("123141078.23")));
        assert_eq!(tpch_answer(10.0, 1), None);
        assert_eq!(tpch_answer(1.0, 23), None);
        Ok(())
    }

    #[test]
    fn tolerance_accepts_formatting_and_rounding_only() {
        assert!(cells_match(Some("12.5000"), Some("12.5")));
        assert!(cells_match(Some("123141078.2288"), Some("123141078.23")));
        assert!(cells_match(Some("0.04998"), Some("0.05")));
        assert!(cells_match(
            Some("16.380778626"),
            Some("16.380778626000003")
        ));
        // A decimal quotient at scale 6 against a double (TPC-DS q66).
        assert!(cells_match(Some("0.676432"), Some("0.6764327813726302")));
        assert!(cells_match(Some("0.314709"), Some("0.3147107192057166")));
        assert!(!cells_match(Some("0.676420"), Some("0.6764327813726302")));
        assert!(cells_match(Some("NaN"), Some("nan")));
        assert!(!cells_match(Some("NaN"), Some("1")));
        assert!(!cells_match(Some("0.0449"), Some("0.05")));
        assert!(!cells_match(Some("4"), Some("5")));
        assert!(!cells_match(Some("1000000.5"), Some("1000003.5")));
        assert!(!cells_match(Some("0.001"), Some("0.002")));
        assert!(!cells_match(None, Some("1")));
        assert!(!cells_match(Some("A"), Some("B")));
    }

    #[test]
    fn compare_orders_only_when_asked_and_shows_rows() {
        let a = vec![row(&[Some("A"), Some("1")]), row(&[Some("B"), Some("2")])];
        let b = vec![row(&[Some("B"), Some("2.0")]), row(&[Some("A"), Some("1")])];
        assert_eq!(compare(&a, &b, false), Ok(()));
        let err = compare(&a, &b, true).err().unwrap_or_default();
        assert!(err.contains("row 1"), "{err}");
        assert!(err.contains("got:      A | 1"), "{err}");
        assert!(err.contains("expected: B | 2.0"), "{err}");
        let short = compare(&a[..1].to_vec(), &b, false)
            .err()
            .unwrap_or_default();
        assert!(short.contains("1 rows, expected 2"), "{short}");
    }

    #[test]
    fn order_by_is_found_outside_parentheses_only() {
        assert!(is_ordered("SELECT a FROM t ORDER BY a"));
        assert!(is_ordered("select a\nfrom t\norder\n  by a limit 3"));
        assert!(!is_ordered("SELECT SUM(x) FROM t -- ORDER BY x"));
        assert!(!is_ordered(
            "SELECT rank() OVER (ORDER BY a) FROM (SELECT a FROM t ORDER BY a)"
        ));
    }
}
