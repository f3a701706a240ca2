//! Reference answers of the 99 TPC-DS queries at scale factor 1 on `tpcdsgen` data, kept in the
//! repository under `tpcds/answers/sf1/qNN.csv` (produced by DuckDB 2.0 from the same query
//! texts and cross-checked with DataFusion; provenance in `tpcds/README.md`), compiled in. The
//! bench runner compares Weir's rows with them through [`parse_answer_csv`] and the TPC-H
//! runner's `verify::compare`.
//!
//! The CSV format: a header line with the column names, then one line per row in the query's
//! order. NULL is an empty unquoted field; a quoted field (`"..."`, inner quotes doubled) is
//! text, possibly empty.

use crate::error::Result;

use super::queries::QUERY_COUNT;

const ANSWERS: [&str; QUERY_COUNT] = [
    include_str!("../../../tpcds/answers/sf1/q01.csv"),
    include_str!("../../../tpcds/answers/sf1/q02.csv"),
    include_str!("../../../tpcds/answers/sf1/q03.csv"),
    include_str!("../../../tpcds/answers/sf1/q04.csv"),
    include_str!("../../../tpcds/answers/sf1/q05.csv"),
    include_str!("../../../tpcds/answers/sf1/q06.csv"),
    include_str!("../../../tpcds/answers/sf1/q07.csv"),
    include_str!("../../../tpcds/answers/sf1/q08.csv"),
    include_str!("../../../tpcds/answers/sf1/q09.csv"),
    include_str!("../../../tpcds/answers/sf1/q10.csv"),
    include_str!("../../../tpcds/answers/sf1/q11.csv"),
    include_str!("../../../tpcds/answers/sf1/q12.csv"),
    include_str!("../../../tpcds/answers/sf1/q13.csv"),
    include_str!("../../../tpcds/answers/sf1/q14.csv"),
    include_str!("../../../tpcds/answers/sf1/q15.csv"),
    include_str!("../../../tpcds/answers/sf1/q16.csv"),
    include_str!("../../../tpcds/answers/sf1/q17.csv"),
    include_str!("../../../tpcds/answers/sf1/q18.csv"),
    include_str!("../../../tpcds/answers/sf1/q19.csv"),
    include_str!("../../../tpcds/answers/sf1/q20.csv"),
    include_str!("../../../tpcds/answers/sf1/q21.csv"),
    include_str!("../../../tpcds/answers/sf1/q22.csv"),
    include_str!("../../../tpcds/answers/sf1/q23.csv"),
    include_str!("../../../tpcds/answers/sf1/q24.csv"),
    include_str!("../../../tpcds/answers/sf1/q25.csv"),
    include_str!("../../../tpcds/answers/sf1/q26.csv"),
    include_str!("../../../tpcds/answers/sf1/q27.csv"),
    include_str!("../../../tpcds/answers/sf1/q28.csv"),
    include_str!("../../../tpcds/answers/sf1/q29.csv"),
    include_str!("../../../tpcds/answers/sf1/q30.csv"),
    include_str!("../../../tpcds/answers/sf1/q31.csv"),
    include_str!("../../../tpcds/answers/sf1/q32.csv"),
    include_str!("../../../tpcds/answers/sf1/q33.csv"),
    include_str!("../../../tpcds/answers/sf1/q34.csv"),
    include_str!("../../../tpcds/answers/sf1/q35.csv"),
    include_str!("../../../tpcds/answers/sf1/q36.csv"),
    include_str!("../../../tpcds/answers/sf1/q37.csv"),
    include_str!("../../../tpcds/answers/sf1/q38.csv"),
    include_str!("../../../tpcds/answers/sf1/q39.csv"),
    include_str!("../../../tpcds/answers/sf1/q40.csv"),
    include_str!("../../../tpcds/answers/sf1/q41.csv"),
    include_str!("../../../tpcds/answers/sf1/q42.csv"),
    include_str!("../../../tpcds/answers/sf1/q43.csv"),
    include_str!("../../../tpcds/answers/sf1/q44.csv"),
    include_str!("../../../tpcds/answers/sf1/q45.csv"),
    include_str!("../../../tpcds/answers/sf1/q46.csv"),
    include_str!("../../../tpcds/answers/sf1/q47.csv"),
    include_str!("../../../tpcds/answers/sf1/q48.csv"),
    include_str!("../../../tpcds/answers/sf1/q49.csv"),
    include_str!("../../../tpcds/answers/sf1/q50.csv"),
    include_str!("../../../tpcds/answers/sf1/q51.csv"),
    include_str!("../../../tpcds/answers/sf1/q52.csv"),
    include_str!("../../../tpcds/answers/sf1/q53.csv"),
    include_str!("../../../tpcds/answers/sf1/q54.csv"),
    include_str!("../../../tpcds/answers/sf1/q55.csv"),
    include_str!("../../../tpcds/answers/sf1/q56.csv"),
    include_str!("../../../tpcds/answers/sf1/q57.csv"),
    include_str!("../../../tpcds/answers/sf1/q58.csv"),
    include_str!("../../../tpcds/answers/sf1/q59.csv"),
    include_str!("../../../tpcds/answers/sf1/q60.csv"),
    include_str!("../../../tpcds/answers/sf1/q61.csv"),
    include_str!("../../../tpcds/answers/sf1/q62.csv"),
    include_str!("../../../tpcds/answers/sf1/q63.csv"),
    include_str!("../../../tpcds/answers/sf1/q64.csv"),
    include_str!("../../../tpcds/answers/sf1/q65.csv"),
    include_str!("../../../tpcds/answers/sf1/q66.csv"),
    include_str!("../../../tpcds/answers/sf1/q67.csv"),
    include_str!("../../../tpcds/answers/sf1/q68.csv"),
    include_str!("../../../tpcds/answers/sf1/q69.csv"),
    include_str!("../../../tpcds/answers/sf1/q70.csv"),
    include_str!("../../../tpcds/answers/sf1/q71.csv"),
    include_str!("../../../tpcds/answers/sf1/q72.csv"),
    include_str!("../../../tpcds/answers/sf1/q73.csv"),
    include_str!("../../../tpcds/answers/sf1/q74.csv"),
    include_str!("../../../tpcds/answers/sf1/q75.csv"),
    include_str!("../../../tpcds/answers/sf1/q76.csv"),
    include_str!("../../../tpcds/answers/sf1/q77.csv"),
    include_str!("../../../tpcds/answers/sf1/q78.csv"),
    include_str!("../../../tpcds/answers/sf1/q79.csv"),
    include_str!("../../../tpcds/answers/sf1/q80.csv"),
    include_str!("../../../tpcds/answers/sf1/q81.csv"),
    include_str!("../../../tpcds/answers/sf1/q82.csv"),
    include_str!("../../../tpcds/answers/sf1/q83.csv"),
    include_str!("../../../tpcds/answers/sf1/q84.csv"),
    include_str!("../../../tpcds/answers/sf1/q85.csv"),
    include_str!("../../../tpcds/answers/sf1/q86.csv"),
    include_str!("../../../tpcds/answers/sf1/q87.csv"),
    include_str!("../../../tpcds/answers/sf1/q88.csv"),
    include_str!("../../../tpcds/answers/sf1/q89.csv"),
    include_str!("../../../tpcds/answers/sf1/q90.csv"),
    include_str!("../../../tpcds/answers/sf1/q91.csv"),
    include_str!("../../../tpcds/answers/sf1/q92.csv"),
    include_str!("../../../tpcds/answers/sf1/q93.csv"),
    include_str!("../../../tpcds/answers/sf1/q94.csv"),
    include_str!("../../../tpcds/answers/sf1/q95.csv"),
    include_str!("../../../tpcds/answers/sf1/q96.csv"),
    include_str!("../../../tpcds/answers/sf1/q97.csv"),
    include_str!("../../../tpcds/answers/sf1/q98.csv"),
    include_str!("../../../tpcds/answers/sf1/q99.csv"),
];

/// The SF1 reference answer of query `n` as CSV, or `None` for a query number out of range.
pub fn answer(n: usize) -> Option<&'static str> {
    n.checked_sub(1).and_then(|i| ANSWERS.get(i)).copied()
}

/// An answer parsed from CSV: column names and rows of text cells (`None` for NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Column names from the header line.
    pub columns: Vec<String>,
    /// Rows, each as many cells as there are columns.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Parses an answer in the format [`answer`] returns.
///
/// # Errors
/// `Invalid` for an empty text, an unterminated quote, text after a closing quote, or a row
/// whose number of fields differs from the header's; the message names the line.
pub fn parse_answer_csv(text: &str) -> Result<Answer> {
    let (columns, rows) = crate::bench::answers::parse_table(text)?;
    Ok(Answer { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn cells(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|c| c.map(String::from)).collect()
    }

    #[test]
    fn parses_nulls_quotes_and_empty_text() -> Result<()> {
        let a = parse_answer_csv("a,b,c\n1,,\"x, \"\"y\"\"\"\n\"\",2.50,\" z\"\n")?;
        assert_eq!(a.columns, vec!["a", "b", "c"]);
        assert_eq!(
            a.rows,
            vec![
                cells(&[Some("1"), None, Some("x, \"y\"")]),
                cells(&[Some(""), Some("2.50"), Some(" z")]),
            ]
        );
        let one_null_column = parse_answer_csv("x\n\n7\n")?;
        assert_eq!(
            one_null_column.rows,
            vec![cells(&[None]), cells(&[Some("7")])]
        );
        Ok(())
    }

    #[test]
    fn rejects_malformed_csv() {
        assert!(parse_answer_csv("").is_err());
        let short = parse_answer_csv("a,b\n1\n").err();
        assert!(short.is_some_and(|e| e.message.contains("row 1: 1 fields")));
        assert!(parse_answer_csv("a\n\"open\n").is_err());
        assert!(parse_answer_csv("a\n\"x\"y\n").is_err());
        assert!(parse_answer_csv("a\nx\"y\n").is_err());
    }

    #[test]
    fn every_query_has_a_parsable_answer() -> Result<()> {
        for n in 1..=QUERY_COUNT {
            let text = answer(n).ok_or_else(|| Error::internal(format!("no answer {n}")))?;
            let parsed = parse_answer_csv(text).map_err(|e| e.context(format!("q{n:02}")))?;
            assert!(!parsed.columns.is_empty(), "q{n:02}");
        }
        assert!(answer(0).is_none());
        assert!(answer(100).is_none());
        Ok(())
    }
}
