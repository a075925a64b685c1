//! Reads of the chat state that change nothing: served after a ReadIndex, never from the
//! log. Also the canonical dump that tests and the lab compare across replicas.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::keys::{self, Account, Message};
use super::{Store, StoreError, Table};

fn decode_err(what: &str, e: String) -> StoreError {
    StoreError(format!("{what}: {e}"))
}

pub fn account(store: &dyn Store, user: &str) -> Result<Option<Account>, StoreError> {
    store
        .get(Table::Accounts, user.as_bytes())?
        .map(|d| Account::decode(&d).map_err(|e| decode_err(user, e)))
        .transpose()
}

pub fn user_exists(store: &dyn Store, user: &str) -> Result<bool, StoreError> {
    Ok(store.get(Table::Accounts, user.as_bytes())?.is_some())
}

/// The user a session token belongs to.
pub fn session_user(store: &dyn Store, token: &str) -> Result<Option<String>, StoreError> {
    Ok(store
        .get(Table::Sessions, token.as_bytes())?
        .map(|u| String::from_utf8_lossy(&u).into_owned()))
}

/// Usernames matching a glob (`*` any run, `?` one character), in order, after `after`.
pub fn list_accounts(
    store: &dyn Store,
    pattern: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let mut from = after.as_bytes().to_vec();
    if !from.is_empty() {
        from.push(0); // strictly after
    }
    // Scan in pages so a sparse match does not load every account at once.
    loop {
        let page = store.scan(Table::Accounts, b"", &from, 512)?;
        let Some((last, _)) = page.last() else { break };
        from = last.clone();
        from.push(0);
        for (key, _) in &page {
            let name = String::from_utf8_lossy(key);
            if glob(pattern, &name) {
                out.push(name.into_owned());
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        if page.len() < 512 {
            break;
        }
    }
    Ok(out)
}

/// Messages addressed to `user` with an id above `after`, oldest first: what a
/// subscriber resuming from `after` has missed.
pub fn messages_for(
    store: &dyn Store,
    user: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<Message>, StoreError> {
    let prefix = keys::user_prefix(user);
    let from = keys::user_key(user, &keys::id_key(after.saturating_add(1)));
    let mut out = Vec::new();
    for (key, _) in store.scan(Table::UserMessages, &prefix, &from, usize::MAX)? {
        let id = keys::trailing_id(&key);
        let Some(data) = store.get(Table::Messages, &keys::id_key(id))? else {
            continue;
        };
        let m = Message::decode_one(&data).map_err(|e| decode_err("message", e))?;
        if m.to == user {
            out.push(m);
            if out.len() == limit {
                break;
            }
        }
    }
    Ok(out)
}

pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// The canonical text of the chat state: accounts and messages, sorted, without tokens,
/// hashes, times or ids (which differ from run to run), so equal states give equal text.
///
/// A large state stays readable: past [`DUMP_LISTED`] messages each conversation is one
/// line with its counts and a checksum of its messages, and a long text shows its start,
/// length and checksum. Equal states still give equal text, and a different message
/// changes a checksum.
pub fn dump(store: &dyn Store) -> Result<String, StoreError> {
    let mut out = String::new();
    let accounts = store.scan(Table::Accounts, b"", b"", usize::MAX)?;
    let _ = writeln!(out, "accounts: {}", accounts.len());
    for (name, _) in &accounts {
        let _ = writeln!(out, "  {}", String::from_utf8_lossy(name));
    }
    let messages = store.scan(Table::Messages, b"", b"", usize::MAX)?;
    let _ = writeln!(out, "messages: {}", messages.len());
    let mut conversations: BTreeMap<(String, String), Conversation> = BTreeMap::new();
    for (_, data) in &messages {
        let m = Message::decode_one(data).map_err(|e| decode_err("message", e))?;
        let state = if m.read { "read" } else { "unread" };
        let line = format!("{} -> {}: {} ({state})", m.from, m.to, shown_text(&m.text));
        if messages.len() <= DUMP_LISTED {
            let _ = writeln!(out, "  {line}");
            continue;
        }
        let c = conversations.entry((m.from, m.to)).or_default();
        c.count += 1;
        c.unread += u64::from(!m.read);
        c.crc = crc32c::crc32c_append(c.crc, line.as_bytes());
    }
    for ((from, to), c) in conversations {
        let _ = writeln!(
            out,
            "  {from} -> {to}: {} messages, {} unread, crc32c {:08x}",
            c.count, c.unread, c.crc
        );
    }
    Ok(out)
}

/// Past this many messages, a dump shows conversations rather than messages.
pub const DUMP_LISTED: usize = 200;
/// Texts longer than this are shown by their start, length and checksum.
const DUMP_TEXT: usize = 80;

#[derive(Default)]
struct Conversation {
    count: u64,
    unread: u64,
    crc: u32,
}

fn shown_text(text: &str) -> String {
    if text.len() <= DUMP_TEXT {
        return format!("{text:?}");
    }
    let mut end = 40;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{:?}... ({} bytes, crc32c {:08x})",
        &text[..end],
        text.len(),
        crc32c::crc32c(text.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_match_as_a_shell_does() {
        assert!(glob("*", "alice"));
        assert!(glob("a*", "alice"));
        assert!(glob("*e", "alice"));
        assert!(glob("a?i*", "alice"));
        assert!(glob("alice", "alice"));
        assert!(!glob("b*", "alice"));
        assert!(!glob("a?", "alice"));
        assert!(glob("*l*c*", "alice"));
        assert!(!glob("", "alice"));
    }
}
