//! The derived tables (see [`Table::is_derived`]) in memory: the indexes of messages by
//! user, by conversation and by unread state. They follow from the messages table, so
//! they are not written to disk with every message: [`DerivedTables::rebuild`] makes them
//! again from the messages when the state is opened. That saves four B-tree inserts per
//! message on every replica, which were most of what applying a message cost.
//!
//! A key of these tables is a group (the names it is filed under) followed by a message id
//! of 8 bytes, and its value is empty; a group is kept as a set of ids, so a row costs
//! a few bytes of memory rather than a key.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use crate::chat::{self, Rows, StoreError, Table};

const ID: usize = 8;

type Groups = BTreeMap<Vec<u8>, BTreeSet<u64>>;

#[derive(Debug, Default)]
pub struct DerivedTables {
    tables: [Groups; Table::ALL.len()],
}

impl DerivedTables {
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let (group, id) = split(table, key)?;
        let found = self
            .groups(table)
            .get(group)
            .is_some_and(|ids| ids.contains(&id));
        Ok(found.then(Vec::new))
    }

    pub fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if !value.is_empty() {
            return Err(StoreError(format!(
                "{} holds keys only, not values",
                table.name()
            )));
        }
        let (group, id) = split(table, key)?;
        let groups = &mut self.tables[table as usize];
        match groups.get_mut(group) {
            Some(ids) => {
                ids.insert(id);
            }
            None => {
                groups.insert(group.to_vec(), BTreeSet::from([id]));
            }
        }
        Ok(())
    }

    pub fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        let (group, id) = split(table, key)?;
        let groups = &mut self.tables[table as usize];
        if let Some(ids) = groups.get_mut(group) {
            ids.remove(&id);
            if ids.is_empty() {
                groups.remove(group);
            }
        }
        Ok(())
    }

    /// Rows whose key starts with `prefix` and is at least `from`, in key order, at most
    /// `limit` of them: the contract of [`chat::Store::scan`].
    pub fn scan(&self, table: Table, prefix: &[u8], from: &[u8], limit: usize) -> Rows {
        let groups = self.groups(table);
        let start = from.max(prefix);
        match first_id_in_group(groups, prefix, start) {
            Some(first) => groups
                .get(prefix)
                .into_iter()
                .flat_map(|ids| ids.range(first..))
                .take(limit)
                .map(|&id| (key(prefix, id), Vec::new()))
                .collect(),
            None => {
                let mut rows: Rows = groups
                    .iter()
                    .flat_map(|(group, ids)| ids.iter().map(|&id| key(group, id)))
                    .filter(|k| k.starts_with(prefix) && k.as_slice() >= start)
                    .map(|k| (k, Vec::new()))
                    .collect();
                rows.sort_unstable();
                rows.truncate(limit);
                rows
            }
        }
    }

    fn groups(&self, table: Table) -> &Groups {
        &self.tables[table as usize]
    }
}

/// Whether a scan is the common case, all the rows of one group from an id on, and
/// that id if so. The chat's scans all are; any other scan goes through every row.
/// Builds the derived tables from the messages, in id order: each group's ids are
/// gathered in a vector and made into a set at the end, which is several times faster than
/// inserting them one by one (restart time grows with it, at a million messages).
#[derive(Default)]
pub struct Rebuild {
    tables: [HashMap<Vec<u8>, Vec<u64>>; Table::ALL.len()],
}

impl Rebuild {
    /// Adds the rows that a message implies, given as its row in the messages table.
    pub fn add_message(&mut self, message: &[u8]) -> Result<(), StoreError> {
        let mut bad = None;
        chat::each_index_key_of(message, |table, key| match split(table, key) {
            Ok((group, id)) => {
                let groups = &mut self.tables[table as usize];
                match groups.get_mut(group) {
                    Some(ids) => ids.push(id),
                    None => {
                        groups.insert(group.to_vec(), vec![id]);
                    }
                }
            }
            Err(e) => bad = Some(e),
        })?;
        bad.map_or(Ok(()), Err)
    }

    pub fn finish(self) -> DerivedTables {
        DerivedTables {
            tables: self.tables.map(|groups| {
                groups
                    .into_iter()
                    .map(|(group, ids)| (group, BTreeSet::from_iter(ids)))
                    .collect()
            }),
        }
    }
}

fn first_id_in_group(groups: &Groups, prefix: &[u8], start: &[u8]) -> Option<u64> {
    let first = if start == prefix {
        0
    } else if start.len() == prefix.len() + ID && start.starts_with(prefix) {
        u64::from_be_bytes(start[prefix.len()..].try_into().ok()?)
    } else {
        return None;
    };
    // The rows of another group could start with the prefix too if that group were
    // longer than the prefix, or shorter and a part of it.
    let longer = groups
        .range::<[u8], _>((Bound::Excluded(prefix), Bound::Unbounded))
        .next()
        .is_some_and(|(g, _)| g.starts_with(prefix));
    let shorter = (0..prefix.len()).any(|n| groups.contains_key(&prefix[..n]));
    (!longer && !shorter).then_some(first)
}

fn split(table: Table, key: &[u8]) -> Result<(&[u8], u64), StoreError> {
    if !table.is_derived() {
        return Err(StoreError(format!(
            "{} is not a derived table",
            table.name()
        )));
    }
    let Some(group_len) = key.len().checked_sub(ID) else {
        return Err(StoreError(format!(
            "a key of {} is {} bytes, too short to end in an id",
            table.name(),
            key.len()
        )));
    };
    let id = u64::from_be_bytes(key[group_len..].try_into().expect("8 bytes"));
    Ok((&key[..group_len], id))
}

fn key(group: &[u8], id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(group.len() + ID);
    key.extend_from_slice(group);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{MemoryStore, Store};

    /// Random puts, deletes and scans of every shape, against the in-memory store that
    /// keeps whole keys: the two must answer alike.
    #[test]
    fn answers_as_a_table_of_whole_keys_does() {
        let mut derived = DerivedTables::default();
        let mut plain = MemoryStore::default();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        // Groups that are prefixes of one another, which the chat never makes, included.
        let groups: [&[u8]; 6] = [b"a\0", b"a\0b\0", b"ab\0", b"b\0", b"", b"a"];
        let tables = [Table::UserMessages, Table::Conversations];
        for _ in 0..20_000 {
            let table = tables[next(2) as usize];
            let group = groups[next(groups.len() as u64) as usize];
            let k = key(group, next(40) + (next(2) << 40));
            match next(10) {
                0..=5 => {
                    derived.put(table, &k, &[]).unwrap();
                    plain.put(table, &k, &[]).unwrap();
                }
                6..=7 => {
                    derived.delete(table, &k).unwrap();
                    plain.delete(table, &k).unwrap();
                }
                _ => {
                    let prefix = match next(3) {
                        0 => group.to_vec(),
                        1 => k[..next(k.len() as u64 + 1) as usize].to_vec(),
                        _ => Vec::new(),
                    };
                    let from = match next(3) {
                        0 => prefix.clone(),
                        1 => k.clone(),
                        _ => k[..next(k.len() as u64 + 1) as usize].to_vec(),
                    };
                    let limit = [1, 3, usize::MAX][next(3) as usize];
                    assert_eq!(
                        derived.scan(table, &prefix, &from, limit),
                        plain.scan(table, &prefix, &from, limit).unwrap(),
                        "scan {prefix:?} from {from:?}, at most {limit}"
                    );
                    assert_eq!(
                        derived.get(table, &k).unwrap(),
                        plain.get(table, &k).unwrap()
                    );
                }
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_hold() {
        let mut derived = DerivedTables::default();
        let short = derived.put(Table::Unread, b"short", &[]).unwrap_err();
        assert_eq!(
            short.to_string(),
            "a key of unread is 5 bytes, too short to end in an id"
        );
        let valued = derived
            .put(Table::Unread, b"bob\0\0\0\0\0\0\0\0\x01", b"x")
            .unwrap_err();
        assert_eq!(valued.to_string(), "unread holds keys only, not values");
        let stored = derived.put(Table::Messages, b"\0\0\0\0\0\0\0\x01", &[]);
        assert_eq!(
            stored.unwrap_err().to_string(),
            "messages is not a derived table"
        );
    }
}
