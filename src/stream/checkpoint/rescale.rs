//! Rescaling: restoring a job from a checkpoint taken at another parallelism. It sits between
//! the checkpoint store (which hands over each old task's [`StateSnapshot`]) and the tasks of the
//! new job (each of which restores one snapshot, as if nothing had changed): for every operator
//! whose parallelism changed, it builds one snapshot per new instance out of all the old ones.
//!
//! How each kind of table moves:
//!
//! - **Keyed state** (a table in [`super::snapshot::keyed_schema`] with key columns): every key
//!   belongs to one of `max_parallelism` key groups (its hash, see
//!   [`crate::stream::state::key_group`]), and each instance owns a contiguous range of key groups
//!   ([`crate::stream::state::instance_for_key_group`]), the same rule the hash exchanges route by.
//!   A new instance takes the rows of its key groups from every old instance. Rows are checked to
//!   have been where the rule says (state whose keys are not the exchange's keys cannot be split
//!   this way, and is refused rather than restored wrongly).
//! - **Operator-level values** (keyed schema without key columns: watermarks, sequence counters):
//!   every new instance gets every old instance's row; the operator merges them on restore
//!   ([`crate::stream::ops::codec::get_operator`] hands over all rows).
//! - **A source's split positions** (`splits`): each split goes to the instance that reads it at
//!   the new parallelism (see [`crate::stream::source`]).
//! - **The runtime's watermarks** (`_runtime`): the minimum over the old instances.
//! - **Anything else** (a sink's writer state): list state, old instance `i` goes to new instance
//!   `i % parallelism`; the operator restores each row (e.g. a file sink commits every old
//!   writer's pending files).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, BinaryArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};

use super::snapshot::{KEY_TYPES, StateSnapshot, corrupt};
use crate::error::{Error, Result};
use crate::stream::state::instance_for_key;

/// The snapshots of the `parallelism` new instances of operator `uid`, out of its `old`
/// instances' snapshots (in instance order), for a job with `max_parallelism` key groups.
///
/// # Errors
/// `Invalid` when keyed state was not split by key group (it cannot be moved); `External` for
/// corrupt state.
pub fn redistribute(
    uid: &str,
    old: &[Arc<StateSnapshot>],
    parallelism: usize,
    max_parallelism: usize,
) -> Result<Vec<StateSnapshot>> {
    let mut names: Vec<&str> = old
        .iter()
        .flat_map(|s| s.tables().map(|(n, _)| n))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut new: Vec<StateSnapshot> = (0..parallelism).map(|_| StateSnapshot::new()).collect();
    for name in names {
        let tables: Vec<(usize, &RecordBatch)> = old
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.get(name).map(|t| (i, t)))
            .collect();
        if name == crate::stream::runtime::RUNTIME_TABLE {
            let mut current = i64::MAX;
            let mut sent = i64::MAX;
            for s in old {
                let (c, w) = crate::stream::runtime::get_runtime(s)?;
                current = current.min(c);
                sent = sent.min(w);
            }
            for s in &mut new {
                crate::stream::runtime::put_runtime(s, current, sent)?;
            }
            continue;
        }
        if name == crate::stream::source::SPLITS_TABLE {
            let all: Vec<&RecordBatch> = tables.iter().map(|(_, t)| *t).collect();
            for (j, s) in new.iter_mut().enumerate() {
                if let Some(t) = crate::stream::source::rescale_positions(&all, j, parallelism)? {
                    s.put(name, t);
                }
            }
            continue;
        }
        let schema = tables[0].1.schema();
        if tables.iter().any(|(_, t)| t.schema() != schema) {
            return Err(corrupt(format!(
                "the instances of {uid} wrote table `{name}` with different schemas"
            )));
        }
        match schema.metadata().get(KEY_TYPES).map(String::as_str) {
            Some("") => {
                let all: Vec<RecordBatch> = tables.iter().map(|(_, t)| (*t).clone()).collect();
                let merged = concat_batches(&schema, &all)?;
                for s in &mut new {
                    s.put(name, merged.clone());
                }
            }
            Some(_) => {
                let old_parallelism = old.len();
                let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); parallelism];
                for (i, t) in &tables {
                    let keys = t
                        .column(0)
                        .as_any()
                        .downcast_ref::<BinaryArray>()
                        .filter(|k| k.null_count() == 0)
                        .ok_or_else(|| corrupt(format!("state `{name}`: keys are not BINARY")))?;
                    let mut owner = Vec::with_capacity(keys.len());
                    for k in keys.iter().flatten() {
                        if old_parallelism > 1
                            && instance_for_key(k, max_parallelism, old_parallelism) != *i
                        {
                            return Err(Error::invalid(format!(
                                "cannot change the parallelism of {uid}: its state `{name}` is \
                                 not split by key group (the checkpoint was taken before key \
                                 groups, or with another 'pipeline.max-parallelism'); restore \
                                 it with parallelism {old_parallelism}"
                            )));
                        }
                        owner.push(instance_for_key(k, max_parallelism, parallelism));
                    }
                    for (j, part) in parts.iter_mut().enumerate() {
                        let mask: BooleanArray = owner.iter().map(|o| Some(*o == j)).collect();
                        let rows = filter_record_batch(t, &mask)?;
                        if rows.num_rows() > 0 {
                            part.push(rows);
                        }
                    }
                }
                for (s, part) in new.iter_mut().zip(parts) {
                    s.put(name, concat_batches(&schema, &part)?);
                }
            }
            None => {
                let mut parts: BTreeMap<usize, Vec<RecordBatch>> = BTreeMap::new();
                for (i, t) in &tables {
                    parts.entry(i % parallelism).or_default().push((*t).clone());
                }
                for (j, part) in parts {
                    new[j].put(name, concat_batches(&schema, &part)?);
                }
            }
        }
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::checkpoint::snapshot::KeyedTableBuilder;
    use crate::stream::state::KeyEncoder;
    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use datafusion::arrow::datatypes::DataType;

    /// Keyed state for keys `keys`, each on the instance that owns it at `parallelism`.
    fn keyed(keys: &[i64], parallelism: usize, max: usize) -> Vec<Arc<StateSnapshot>> {
        let enc = KeyEncoder::new(&[DataType::Int64]).unwrap();
        let col: ArrayRef = Arc::new(Int64Array::from(keys.to_vec()));
        let rows = enc.encode(&[col]).unwrap();
        let mut builders: Vec<KeyedTableBuilder> = (0..parallelism)
            .map(|_| KeyedTableBuilder::new(&[DataType::Int64], "test/1 v"))
            .collect();
        for (i, row) in rows.iter().enumerate() {
            let owner = instance_for_key(row.as_ref(), max, parallelism);
            builders[owner]
                .append(row.as_ref(), 0, |e| {
                    e.i64(keys[i]);
                    Ok(())
                })
                .unwrap();
        }
        builders
            .into_iter()
            .map(|b| {
                let mut s = StateSnapshot::new();
                s.put("op.groups", b.finish().unwrap());
                Arc::new(s)
            })
            .collect()
    }

    fn rows(s: &[StateSnapshot]) -> Vec<usize> {
        s.iter()
            .map(|s| s.get("op.groups").map_or(0, |t| t.num_rows()))
            .collect()
    }

    #[test]
    fn keyed_state_moves_by_key_group_and_back() {
        let keys: Vec<i64> = (0..1000).collect();
        let two = keyed(&keys, 2, 128);
        let three = redistribute("op", &two, 3, 128).unwrap();
        assert_eq!(rows(&three).iter().sum::<usize>(), 1000);
        assert!(rows(&three).iter().all(|n| *n > 200), "{:?}", rows(&three));
        // Each new instance holds exactly the keys it owns: a second move checks it.
        let three: Vec<_> = three.into_iter().map(Arc::new).collect();
        let one = redistribute("op", &three, 1, 128).unwrap();
        assert_eq!(rows(&one), vec![1000]);
        let back = redistribute("op", &[Arc::new(one[0].clone())], 2, 128).unwrap();
        let direct: Vec<StateSnapshot> = two.iter().map(|s| (**s).clone()).collect();
        assert_eq!(rows(&back), rows(&direct));
    }

    #[test]
    fn state_not_split_by_key_group_is_refused() {
        let mut misplaced = keyed(&[1, 2, 3, 4, 5, 6, 7, 8], 2, 128);
        misplaced.swap(0, 1);
        let e = redistribute("op", &misplaced, 3, 128).unwrap_err();
        assert!(e.to_string().contains("not split by key group"), "{e}");
        // With another number of key groups the owners differ too.
        let e =
            redistribute("op", &keyed(&(0..64).collect::<Vec<_>>(), 2, 128), 3, 256).unwrap_err();
        assert!(e.to_string().contains("not split by key group"), "{e}");
    }

    #[test]
    fn operator_values_reach_every_instance_and_lists_spread() {
        let old: Vec<Arc<StateSnapshot>> = (0..3)
            .map(|i| {
                let mut s = StateSnapshot::new();
                crate::stream::ops::codec::put_operator(&mut s, "op.operator", "f/1", |e| e.i64(i))
                    .unwrap();
                let writer = RecordBatch::try_from_iter(vec![(
                    "state",
                    Arc::new(BinaryArray::from_vec(vec![b"w".as_slice()])) as ArrayRef,
                )])
                .unwrap();
                s.put("op.writer", writer);
                crate::stream::runtime::put_runtime(&mut s, 10 - i, 20 - i).unwrap();
                Arc::new(s)
            })
            .collect();
        let new = redistribute("op", &old, 2, 128).unwrap();
        for s in &new {
            assert_eq!(s.get("op.operator").unwrap().num_rows(), 3);
            assert_eq!(crate::stream::runtime::get_runtime(s).unwrap(), (8, 18));
        }
        assert_eq!(new[0].get("op.writer").unwrap().num_rows(), 2);
        assert_eq!(new[1].get("op.writer").unwrap().num_rows(), 1);
    }
}
