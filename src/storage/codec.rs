//! Binary encodings of what the storage layer writes: checksummed records, and Raft
//! entries, hard state and snapshot metadata inside them. Little-endian throughout.
//!
//! A record is `len: u32 | crc: u32 | payload`, where `crc` is the CRC32C of the length
//! bytes and the payload together, so a damaged length is caught like damaged data.

use bytes::Bytes;

use crate::encoding::{Reader, put_bytes, put_u32, put_u64};
use crate::raft::{Entry, HardState, Membership, Payload, SnapshotMeta};

/// Bytes before a record's payload.
pub const RECORD_HEADER: usize = 8;

/// Records larger than this are never written, so a larger length is damage.
pub const MAX_RECORD: usize = 64 << 20;

fn record_crc(len: u32, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload)
}

/// Appends a framed record holding `payload`.
pub fn put_record(out: &mut Vec<u8>, payload: &[u8]) {
    assert!(payload.len() <= MAX_RECORD, "record too large");
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&record_crc(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why a record could not be read at some offset.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The data ends inside the record (a write cut short, or a damaged length).
    Truncated,
    /// The checksum does not match.
    Checksum,
}

/// Reads the record at the start of `data`: its payload and its total size.
pub fn get_record(data: &[u8]) -> Result<(&[u8], usize), RecordError> {
    if data.len() < RECORD_HEADER {
        return Err(RecordError::Truncated);
    }
    let len = u32::from_le_bytes(data[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(data[4..8].try_into().expect("4 bytes"));
    let end = RECORD_HEADER + len as usize;
    if len as usize > MAX_RECORD || data.len() < end {
        return Err(RecordError::Truncated);
    }
    let payload = &data[RECORD_HEADER..end];
    if record_crc(len, payload) != crc {
        return Err(RecordError::Checksum);
    }
    Ok((payload, end))
}

const NOOP: u8 = 0;
const COMMAND: u8 = 1;
const MEMBERSHIP: u8 = 2;

pub fn encode_entry(e: &Entry, out: &mut Vec<u8>) {
    put_u64(out, e.index);
    put_u64(out, e.term);
    match &e.payload {
        Payload::Noop => out.push(NOOP),
        Payload::Command(data) => {
            out.push(COMMAND);
            out.extend_from_slice(data);
        }
        Payload::Membership(m) => {
            out.push(MEMBERSHIP);
            encode_membership(m, out);
        }
    }
}

pub fn decode_entry(data: &[u8]) -> Result<Entry, String> {
    let mut r = Reader::new(data);
    let index = r.u64("entry index")?;
    let term = r.u64("entry term")?;
    let payload = match r.u8("entry kind")? {
        NOOP => Payload::Noop,
        COMMAND => Payload::Command(Bytes::copy_from_slice(r.rest())),
        MEMBERSHIP => Payload::Membership(decode_membership(&mut r)?),
        kind => return Err(format!("unknown entry kind {kind}")),
    };
    r.finish("entry")?;
    Ok(Entry {
        index,
        term,
        payload,
    })
}

pub fn encode_membership(m: &Membership, out: &mut Vec<u8>) {
    for group in [&m.voters, &m.learners] {
        put_u32(out, group.len() as u32);
        for (id, address) in group {
            put_bytes(out, id.as_bytes());
            put_bytes(out, address.as_bytes());
        }
    }
}

pub fn decode_membership(r: &mut Reader<'_>) -> Result<Membership, String> {
    let mut m = Membership::default();
    for group in [&mut m.voters, &mut m.learners] {
        let n = r.u32("member count")?;
        for _ in 0..n {
            let id = r.string("member id")?;
            let address = r.string("member address")?;
            group.insert(id, address);
        }
    }
    Ok(m)
}

pub fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    let mut out = Vec::new();
    put_u64(&mut out, hs.term);
    put_bytes(&mut out, hs.vote.as_deref().unwrap_or("").as_bytes());
    out
}

pub fn decode_hard_state(data: &[u8]) -> Result<HardState, String> {
    let mut r = Reader::new(data);
    let term = r.u64("term")?;
    let vote = r.string("vote")?;
    r.finish("hard state")?;
    Ok(HardState {
        term,
        vote: (!vote.is_empty()).then_some(vote),
    })
}

pub fn encode_snapshot_meta(meta: &SnapshotMeta, out: &mut Vec<u8>) {
    put_u64(out, meta.index);
    put_u64(out, meta.term);
    encode_membership(&meta.membership, out);
}

pub fn decode_snapshot_meta(r: &mut Reader<'_>) -> Result<SnapshotMeta, String> {
    Ok(SnapshotMeta {
        index: r.u64("snapshot index")?,
        term: r.u64("snapshot term")?,
        membership: decode_membership(r)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let m = Membership::with_voters([("n1", "127.0.0.1:1".to_string())]);
        for payload in [
            Payload::Noop,
            Payload::Command(Bytes::from_static(b"hello")),
            Payload::Command(Bytes::new()),
            Payload::Membership(m),
        ] {
            let e = Entry {
                index: 7,
                term: 3,
                payload,
            };
            let mut buf = Vec::new();
            encode_entry(&e, &mut buf);
            assert_eq!(decode_entry(&buf).unwrap(), e);
        }
    }

    #[test]
    fn records_detect_damage_anywhere() {
        let mut buf = Vec::new();
        put_record(&mut buf, b"payload");
        assert_eq!(get_record(&buf).unwrap(), (&b"payload"[..], buf.len()));
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(get_record(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
        assert_eq!(get_record(&buf[..5]), Err(RecordError::Truncated));
    }

    #[test]
    fn hard_state_round_trips() {
        for vote in [None, Some("n2".to_string())] {
            let hs = HardState { term: 9, vote };
            assert_eq!(decode_hard_state(&encode_hard_state(&hs)).unwrap(), hs);
        }
    }
}
