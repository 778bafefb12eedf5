//! Newtypes parsed once at the edge: targets, digests, artifacts, percentages, ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The name of one deploy target (a host, a pod, a directory, a region...).
///
/// Non-empty, at most 256 bytes, no whitespace or control characters, so it is
/// safe to splice into a shell command template.
///
/// ```
/// use rollgate_deploy::TargetId;
/// let t: TargetId = "web-1".parse()?;
/// assert_eq!(t.as_str(), "web-1");
/// assert!("web 1".parse::<TargetId>().is_err());
/// // Targets sort naturally: digit runs compare as numbers.
/// let mut ts: Vec<TargetId> = ["web-10", "web-2", "web-1"].iter().map(|t| t.parse()).collect::<Result<_, _>>()?;
/// ts.sort();
/// assert_eq!(ts.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["web-1", "web-2", "web-10"]);
/// # Ok::<(), rollgate_deploy::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TargetId(String);

impl Ord for TargetId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        natural_cmp(&self.0, &other.0)
    }
}

impl PartialOrd for TargetId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Natural order: runs of ASCII digits compare by value (`web-2` before
/// `web-10`), the rest byte by byte; names equal that way (`web-01`,
/// `web-1`) fall back to plain byte order, so the order is total and agrees
/// with equality.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        if x[i].is_ascii_digit() && y[j].is_ascii_digit() {
            let si = i;
            while i < x.len() && x[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < y.len() && y[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            let ord = x[i].cmp(&y[j]);
            if ord != Ordering::Equal {
                return ord;
            }
            i += 1;
            j += 1;
        }
    }
    (x.len() - i).cmp(&(y.len() - j)).then_with(|| a.cmp(b))
}

impl TargetId {
    /// The target name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TargetId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(Error::invalid("target", "target name is empty"));
        }
        if s.len() > 256 {
            return Err(Error::invalid(
                "target",
                format!(
                    "target name {:?}... is longer than 256 bytes",
                    &s[..s.floor_char_boundary(32)]
                ),
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || "'\"`$;&|<>\\".contains(*c))
        {
            return Err(Error::invalid(
                "target",
                format!("target name {s:?} contains {c:?}; use letters, digits and -_.:/@"),
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for TargetId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<TargetId> for String {
    fn from(t: TargetId) -> String {
        t.0
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A content address: `sha256:` followed by 64 lowercase hex digits.
///
/// ```
/// use rollgate_deploy::Digest;
/// let d = Digest::of_bytes(b"hello");
/// assert!(d.as_str().starts_with("sha256:"));
/// assert_eq!(d.as_str().parse::<Digest>()?, d);
/// assert!("sha256:xyz".parse::<Digest>().is_err());
/// # Ok::<(), rollgate_deploy::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// The SHA-256 digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(bytes);
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in hash.iter() {
            s.push_str(&format!("{b:02x}"));
        }
        Self(s)
    }

    /// The digest as written, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for display.
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            return Err(Error::invalid(
                "digest",
                format!("digest {s:?} must start with \"sha256:\""),
            ));
        };
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::invalid(
                "digest",
                format!("digest {s:?} must be \"sha256:\" and 64 lowercase hex digits"),
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for Digest {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An immutable, content-addressed artifact: what a target runs.
///
/// ```
/// use rollgate_deploy::{Artifact, Digest};
/// let a = Artifact::new("v2", Digest::of_bytes(b"build 2"));
/// assert_eq!(a.version, "v2");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Artifact {
    /// Human version label, e.g. `v2.3.1`.
    pub version: String,
    /// The content address; the identity of the artifact.
    pub digest: Digest,
    /// Where its software bill of materials lives, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<String>,
}

impl Artifact {
    /// An artifact without an SBOM reference.
    pub fn new(version: impl Into<String>, digest: Digest) -> Self {
        Self {
            version: version.into(),
            digest,
            sbom: None,
        }
    }

    /// Checks the version label: non-empty, no whitespace or shell metacharacters.
    pub fn validate(&self) -> Result<(), Error> {
        let v = &self.version;
        if v.is_empty() {
            return Err(Error::invalid("artifact", "artifact version is empty"));
        }
        if let Some(c) = v
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || "'\"`$;&|<>\\".contains(*c))
        {
            return Err(Error::invalid(
                "artifact",
                format!("artifact version {v:?} contains {c:?}"),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.version, self.digest.short())
    }
}

/// A percentage in `0..=100`, kept in hundredths so arithmetic is exact.
///
/// ```
/// use rollgate_deploy::Percent;
/// let p = Percent::new(10.0)?;
/// assert_eq!(p.of(10), 1);
/// assert_eq!(Percent::new(1.0)?.of(10), 1); // rounds up: a step always moves something
/// assert!(Percent::new(101.0).is_err());
/// # Ok::<(), rollgate_deploy::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Percent(u16);

impl Percent {
    /// 100 %.
    pub const FULL: Percent = Percent(10_000);

    /// Parses a percentage; rejects NaN and values outside `0..=100`.
    pub fn new(p: f64) -> Result<Self, Error> {
        if !p.is_finite() || !(0.0..=100.0).contains(&p) {
            return Err(Error::invalid(
                "percent",
                format!("percentage {p} is outside 0-100"),
            ));
        }
        Ok(Self((p * 100.0).round() as u16))
    }

    /// The value as a float, e.g. `12.5`.
    pub fn get(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// How many of `n` items this share covers, rounded up.
    pub fn of(self, n: usize) -> usize {
        (n * usize::from(self.0)).div_ceil(10_000)
    }
}

impl TryFrom<f64> for Percent {
    type Error = Error;
    fn try_from(p: f64) -> Result<Self, Error> {
        Percent::new(p)
    }
}

impl From<Percent> for f64 {
    fn from(p: Percent) -> f64 {
        p.get()
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(100) {
            write!(f, "{}%", self.0 / 100)
        } else {
            write!(f, "{}%", self.get())
        }
    }
}

/// The id a store gives a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RolloutId(pub u64);

impl fmt::Display for RolloutId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for RolloutId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        s.trim()
            .parse::<u64>()
            .map(RolloutId)
            .map_err(|_| Error::invalid("rollout id", format!("rollout id {s:?} is not a number")))
    }
}

/// A fencing token: grows each time a new owner takes a rollout's lease, so a
/// write from a controller that lost its lease is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fence(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_counts_round_up_exactly() {
        assert_eq!(Percent::new(10.0).unwrap().of(10), 1);
        assert_eq!(Percent::new(50.0).unwrap().of(10), 5);
        assert_eq!(Percent::new(100.0).unwrap().of(10), 10);
        assert_eq!(Percent::new(33.33).unwrap().of(3), 1);
        assert_eq!(Percent::new(0.01).unwrap().of(3), 1);
        assert_eq!(Percent::new(0.0).unwrap().of(3), 0);
        assert!(Percent::new(f64::NAN).is_err());
        assert!(Percent::new(-1.0).is_err());
    }

    #[test]
    fn digest_rejects_uppercase_and_short() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert!(ok.parse::<Digest>().is_ok());
        assert!(
            format!("sha256:{}", "A".repeat(64))
                .parse::<Digest>()
                .is_err()
        );
        assert!(
            format!("sha256:{}", "a".repeat(63))
                .parse::<Digest>()
                .is_err()
        );
        assert!(format!("md5:{}", "a".repeat(64)).parse::<Digest>().is_err());
    }

    #[test]
    fn target_rejects_shell_metacharacters() {
        for bad in ["", "a b", "a;b", "$(x)", "a`b", "a\nb"] {
            assert!(bad.parse::<TargetId>().is_err(), "{bad:?}");
        }
        assert!("eu-west/web-1.example:8080".parse::<TargetId>().is_ok());
    }

    #[test]
    fn targets_sort_naturally_and_totally() {
        use std::cmp::Ordering::*;
        let mut v = vec![
            "web-10", "web-2", "web-1", "db-3", "web-01", "web", "web-1a", "web-1b2", "web-1b10",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "db-3", "web", "web-01", "web-1", "web-1a", "web-1b2", "web-1b10", "web-2",
                "web-10"
            ]
        );
        assert_eq!(
            natural_cmp("web-01", "web-1"),
            Less,
            "ties fall back to bytes"
        );
        assert_eq!(natural_cmp("a", "a"), Equal);
        assert_eq!(natural_cmp("a9", "a10"), Less);
        assert_eq!(
            natural_cmp("a99999999999999999999999", "a100000000000000000000000"),
            Less
        );
    }
}
