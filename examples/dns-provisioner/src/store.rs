//! The embedded record store: one SQLite file per instance (WAL journal),
//! and the validation of what goes into it.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The record types the provisioner serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordType {
    /// An IPv4 address.
    A,
    /// An IPv6 address.
    #[allow(clippy::upper_case_acronyms)]
    AAAA,
    /// An alias for another name.
    #[allow(clippy::upper_case_acronyms)]
    CNAME,
    /// A mail exchanger: `PRIORITY NAME`.
    MX,
    /// Free text, at most 255 bytes.
    #[allow(clippy::upper_case_acronyms)]
    TXT,
}

impl RecordType {
    /// Every type, in a fixed order.
    pub const ALL: [RecordType; 5] = [Self::A, Self::AAAA, Self::CNAME, Self::MX, Self::TXT];

    /// The type's name, as in zone files and the `type` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::AAAA => "AAAA",
            Self::CNAME => "CNAME",
            Self::MX => "MX",
            Self::TXT => "TXT",
        }
    }

    /// Parses a type name (`A`, `AAAA`, `CNAME`, `MX`, `TXT`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One DNS record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The owner name (`www.example.com`).
    pub name: String,
    /// The record type.
    #[serde(rename = "type")]
    pub kind: RecordType,
    /// The data, checked against the type.
    pub value: String,
    /// Time to live in seconds (30 to 86 400).
    pub ttl: u32,
}

/// The smallest and largest TTL accepted, in seconds.
pub const TTL_RANGE: std::ops::RangeInclusive<u32> = 30..=86_400;

/// Why a request could not be served; [`reason`](Self::reason) is the
/// `reason` label of `dns_record_failures_total`.
#[derive(Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The owner name is not a valid DNS name.
    InvalidName(String),
    /// The value does not fit the record type.
    InvalidValue(String),
    /// The TTL is outside [`TTL_RANGE`].
    InvalidTtl(u32),
    /// A record with this name exists already.
    Duplicate(String),
    /// No record has this name.
    NotFound(String),
    /// SQLite failed.
    Storage(String),
}

impl StoreError {
    /// The failure's `reason` label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidName(_) => "invalid_name",
            Self::InvalidValue(_) => "invalid_value",
            Self::InvalidTtl(_) => "invalid_ttl",
            Self::Duplicate(_) => "duplicate",
            Self::NotFound(_) => "not_found",
            Self::Storage(_) => "storage",
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidName(n) => write!(f, "name {n:?} is not a valid DNS name"),
            Self::InvalidValue(v) => write!(f, "value {v:?} does not fit the record type"),
            Self::InvalidTtl(t) => write!(
                f,
                "ttl {t} is outside {}..={} seconds",
                TTL_RANGE.start(),
                TTL_RANGE.end()
            ),
            Self::Duplicate(n) => write!(f, "a record named {n:?} exists already"),
            Self::NotFound(n) => write!(f, "no record named {n:?}"),
            Self::Storage(e) => write!(f, "storage: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

fn storage(e: rusqlite::Error) -> StoreError {
    StoreError::Storage(e.to_string())
}

/// Whether `name` is a DNS name: 1 to 253 bytes, labels of 1 to 63 ASCII
/// letters, digits and inner hyphens, separated by dots.
pub fn valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Checks a record before it is stored.
pub fn validate(r: &Record) -> Result<(), StoreError> {
    if !valid_name(&r.name) {
        return Err(StoreError::InvalidName(r.name.clone()));
    }
    if !TTL_RANGE.contains(&r.ttl) {
        return Err(StoreError::InvalidTtl(r.ttl));
    }
    let ok = match r.kind {
        RecordType::A => r.value.parse::<Ipv4Addr>().is_ok(),
        RecordType::AAAA => r.value.parse::<Ipv6Addr>().is_ok(),
        RecordType::CNAME => valid_name(&r.value),
        RecordType::MX => r
            .value
            .split_once(' ')
            .is_some_and(|(p, host)| p.parse::<u16>().is_ok() && valid_name(host)),
        RecordType::TXT => r.value.len() <= 255,
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidValue(r.value.clone()))
    }
}

/// The records of one instance, in one SQLite database.
///
/// ```
/// use dns_provisioner::{Record, RecordType, Store};
///
/// let store = Store::open_in_memory()?;
/// let r = Record { name: "www.example.com".into(), kind: RecordType::A, value: "192.0.2.7".into(), ttl: 300 };
/// store.create(&r)?;
/// assert_eq!(store.get("www.example.com")?, r);
/// store.delete("www.example.com")?;
/// assert!(store.get("www.example.com").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Store {
    conn: Mutex<rusqlite::Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open(path).map_err(storage)?;
        // WAL without a sync per commit: a provisioner instance that dies
        // loses at most its last transactions, never the file's integrity.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(storage)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(storage)?;
        Self::init(conn)
    }

    /// A database that lives as long as the store (tests, examples).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(rusqlite::Connection::open_in_memory().map_err(storage)?)
    }

    fn init(conn: rusqlite::Connection) -> Result<Self, StoreError> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS records (
                name TEXT PRIMARY KEY,
                type TEXT NOT NULL,
                value TEXT NOT NULL,
                ttl INTEGER NOT NULL
            )",
        )
        .map_err(storage)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (each statement is atomic), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a new record; validates it first.
    pub fn create(&self, r: &Record) -> Result<(), StoreError> {
        validate(r)?;
        let conn = self.conn();
        let mut st = conn
            .prepare_cached(
                "INSERT INTO records (name, type, value, ttl) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO NOTHING",
            )
            .map_err(storage)?;
        let n = st
            .execute((&r.name, r.kind.as_str(), &r.value, r.ttl))
            .map_err(storage)?;
        if n == 0 {
            return Err(StoreError::Duplicate(r.name.clone()));
        }
        Ok(())
    }

    /// The record named `name`.
    pub fn get(&self, name: &str) -> Result<Record, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("SELECT type, value, ttl FROM records WHERE name = ?1")
            .map_err(storage)?;
        let mut rows = st.query([name]).map_err(storage)?;
        let Some(row) = rows.next().map_err(storage)? else {
            return Err(StoreError::NotFound(name.to_owned()));
        };
        let kind: String = row.get(0).map_err(storage)?;
        Ok(Record {
            name: name.to_owned(),
            kind: RecordType::parse(&kind)
                .ok_or_else(|| StoreError::Storage(format!("unknown type {kind:?} stored")))?,
            value: row.get(1).map_err(storage)?,
            ttl: row.get(2).map_err(storage)?,
        })
    }

    /// Deletes the record named `name`.
    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("DELETE FROM records WHERE name = ?1")
            .map_err(storage)?;
        match st.execute([name]).map_err(storage)? {
            0 => Err(StoreError::NotFound(name.to_owned())),
            _ => Ok(()),
        }
    }

    /// How many records are stored.
    pub fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))
            .map_err(storage)?;
        Ok(n.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, kind: RecordType, value: &str, ttl: u32) -> Record {
        Record {
            name: name.into(),
            kind,
            value: value.into(),
            ttl,
        }
    }

    #[test]
    fn validation_names_the_reason() {
        let bad = [
            (
                rec("-x.example", RecordType::A, "192.0.2.1", 60),
                "invalid_name",
            ),
            (rec("x.example", RecordType::A, "::1", 60), "invalid_value"),
            (
                rec("x.example", RecordType::AAAA, "192.0.2.1", 60),
                "invalid_value",
            ),
            (
                rec("x.example", RecordType::MX, "mail.example", 60),
                "invalid_value",
            ),
            (
                rec("x.example", RecordType::A, "192.0.2.1", 5),
                "invalid_ttl",
            ),
            (
                rec("x.example", RecordType::A, "192.0.2.1", 90_000),
                "invalid_ttl",
            ),
        ];
        for (r, reason) in bad {
            assert_eq!(validate(&r).map_err(|e| e.reason()), Err(reason), "{r:?}");
        }
        assert!(validate(&rec("x.example", RecordType::MX, "10 mail.example", 60)).is_ok());
        assert!(validate(&rec("x.example.", RecordType::CNAME, "y.example", 30)).is_ok());
    }

    #[test]
    fn duplicates_and_missing_records_are_refused() {
        let s = Store::open_in_memory().unwrap();
        let r = rec("a.example", RecordType::TXT, "hello", 300);
        s.create(&r).unwrap();
        assert_eq!(s.create(&r).unwrap_err().reason(), "duplicate");
        assert_eq!(s.count().unwrap(), 1);
        s.delete("a.example").unwrap();
        assert_eq!(s.delete("a.example").unwrap_err().reason(), "not_found");
        assert_eq!(s.get("a.example").unwrap_err().reason(), "not_found");
    }

    #[test]
    fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.db");
        let r = rec("b.example", RecordType::AAAA, "2001:db8::1", 3600);
        Store::open(&path).unwrap().create(&r).unwrap();
        assert_eq!(Store::open(&path).unwrap().get("b.example").unwrap(), r);
    }
}
