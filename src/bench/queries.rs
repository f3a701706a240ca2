//! The 22 TPC-H queries (kept in the repository under `tpch/queries/qNN.sql`, compiled in) and
//! the `--queries 1,3,5-7` selection syntax of the bench runner.

use std::borrow::Cow;

use crate::error::{Error, Result};

/// Number of TPC-H queries.
pub const QUERY_COUNT: usize = 22;

const QUERIES: [&str; QUERY_COUNT] = [
    include_str!("../../tpch/queries/q01.sql"),
    include_str!("../../tpch/queries/q02.sql"),
    include_str!("../../tpch/queries/q03.sql"),
    include_str!("../../tpch/queries/q04.sql"),
    include_str!("../../tpch/queries/q05.sql"),
    include_str!("../../tpch/queries/q06.sql"),
    include_str!("../../tpch/queries/q07.sql"),
    include_str!("../../tpch/queries/q08.sql"),
    include_str!("../../tpch/queries/q09.sql"),
    include_str!("../../tpch/queries/q10.sql"),
    include_str!("../../tpch/queries/q11.sql"),
    include_str!("../../tpch/queries/q12.sql"),
    include_str!("../../tpch/queries/q13.sql"),
    include_str!("../../tpch/queries/q14.sql"),
    include_str!("../../tpch/queries/q15.sql"),
    include_str!("../../tpch/queries/q16.sql"),
    include_str!("../../tpch/queries/q17.sql"),
    include_str!("../../tpch/queries/q18.sql"),
    include_str!("../../tpch/queries/q19.sql"),
    include_str!("../../tpch/queries/q20.sql"),
    include_str!("../../tpch/queries/q21.sql"),
    include_str!("../../tpch/queries/q22.sql"),
];

/// The SQL text of TPC-H query `n` (1-based).
///
/// # Errors
/// `Invalid` when `n` is not between 1 and 22.
pub fn query_sql(n: usize) -> Result<&'static str> {
    n.checked_sub(1)
        .and_then(|i| QUERIES.get(i))
        .copied()
        .ok_or_else(|| Error::invalid(format!("TPC-H has queries 1 to 22, not {n}")))
}

/// The SQL text of TPC-H query `n` with its scale-dependent substitution parameter: Q11's
/// FRACTION is `0.0001 / SF` (TPC-H specification, clause 2.4.11.3), so that the query keeps
/// selecting the important stock at every scale factor (with 0.0001 it returns no rows at SF 10).
/// At SF 1 this is the stored text, whose answers are the qualification answers.
///
/// # Errors
/// `Invalid` when `n` is not between 1 and 22.
pub fn query_sql_at_scale(n: usize, scale: f64) -> Result<Cow<'static, str>> {
    let sql = query_sql(n)?;
    if n != 11 || scale == 1.0 {
        return Ok(Cow::Borrowed(sql));
    }
    const FRACTION: &str = "* 0.0001";
    if !sql.contains(FRACTION) {
        return Err(Error::internal(
            "TPC-H Q11 has no FRACTION parameter to substitute",
        ));
    }
    // A plain SQL numeric literal (no exponent), rounded to 15 decimals so that binary noise
    // (0.0001 / 10 = 1.0000000000000001e-5) does not show.
    let fraction = format!("{:.15}", 0.0001 / scale);
    let fraction = fraction.trim_end_matches('0').trim_end_matches('.');
    Ok(Cow::Owned(sql.replace(FRACTION, &format!("* {fraction}"))))
}

/// The name of query `n` in reports: `q01` .. `q22`.
pub fn query_name(n: usize) -> String {
    format!("q{n:02}")
}

/// Parses a TPC-H query selection such as `1,3,5-7` (also `q1`, `Q05`) into sorted, distinct query
/// numbers. An empty selection means all 22.
///
/// # Errors
/// `Invalid` for anything that is not a number or range within 1..=22.
pub fn parse_selection(spec: &str) -> Result<Vec<usize>> {
    parse_selection_of(spec, QUERY_COUNT)
}

/// [`parse_selection`] for a suite of `count` queries.
///
/// # Errors
/// `Invalid` for anything that is not a number or range within `1..=count`.
pub fn parse_selection_of(spec: &str, count: usize) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    let number = |s: &str| -> Result<usize> {
        let t = s.trim();
        let t = t.strip_prefix(['q', 'Q']).unwrap_or(t);
        match t.parse::<usize>() {
            Ok(n) if (1..=count).contains(&n) => Ok(n),
            _ => Err(Error::invalid(format!(
                "invalid query '{}' in '{spec}'; expected numbers 1 to {count} or ranges like 5-7",
                s.trim()
            ))),
        }
    };
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (number(lo)?, number(hi)?);
                if lo > hi {
                    return Err(Error::invalid(format!(
                        "invalid query range '{item}': {lo} is greater than {hi}"
                    )));
                }
                out.extend(lo..=hi);
            }
            None => out.push(number(item)?),
        }
    }
    if out.is_empty() {
        out.extend(1..=count);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_parses_lists_and_ranges() -> Result<()> {
        assert_eq!(parse_selection("1,3,5-7")?, vec![1, 3, 5, 6, 7]);
        assert_eq!(parse_selection(" q2 , Q02,1 ")?, vec![1, 2]);
        assert_eq!(parse_selection("")?, (1..=22).collect::<Vec<_>>());
        assert_eq!(parse_selection("20-22")?, vec![20, 21, 22]);
        assert!(parse_selection("0").is_err());
        assert!(parse_selection("23").is_err());
        assert!(parse_selection("7-5").is_err());
        assert!(parse_selection("a").is_err());
        Ok(())
    }

    #[test]
    fn all_queries_are_present() -> Result<()> {
        for n in 1..=QUERY_COUNT {
            let sql = query_sql(n)?;
            assert!(sql.contains(&format!("TPC-H Q{n}:")), "q{n}");
            assert!(sql.to_uppercase().contains("SELECT"));
        }
        assert!(query_sql(0).is_err());
        assert!(query_sql(23).is_err());
        assert_eq!(query_name(5), "q05");
        Ok(())
    }

    #[test]
    fn q11_fraction_follows_the_scale_factor() -> Result<()> {
        assert_eq!(query_sql_at_scale(11, 1.0)?, query_sql(11)?);
        let sf10 = query_sql_at_scale(11, 10.0)?;
        assert!(sf10.contains("* 0.00001\n"), "{sf10}");
        assert!(!sf10.contains("0.0001\n"), "{sf10}");
        assert!(query_sql_at_scale(11, 0.01)?.contains("* 0.01\n"));
        assert_eq!(query_sql_at_scale(6, 10.0)?, query_sql(6)?);
        Ok(())
    }
}
