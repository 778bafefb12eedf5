//! Redaction: masks secrets before they reach any output.
//!
//! Two rules: a field whose name contains a configured word (`password`,
//! `token`, ...) is replaced whole; any other text value (messages included)
//! is scanned for known secret shapes: `key=value` pairs with a sensitive key,
//! `Authorization: Bearer ...`, passwords in URLs (`scheme://user:pass@host`)
//! and well-known token prefixes (`ghp_`, `AKIA`, `xoxb-`, ...).

use std::borrow::Cow;

/// What a masked secret is replaced with.
pub const MASK: &str = "[REDACTED]";

/// Field-name words masked by default.
pub const DEFAULT_SENSITIVE_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "cookie",
    "private_key",
    "credential",
];

/// Words that, as the key of a `key=value` or `key: value` pair in free
/// text, mark the value as secret.
const SENSITIVE_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "access_key",
    "private_key",
    "authorization",
    "auth",
    "session",
    "sig",
    "signature",
    "credential",
];

/// Prefixes of well-known credential formats; the token that follows is masked.
/// First bytes of [`TOKEN_PREFIXES`], so most positions skip the prefix scan.
static TOKEN_FIRST_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < TOKEN_PREFIXES.len() {
        t[TOKEN_PREFIXES[i].as_bytes()[0] as usize] = true;
        i += 1;
    }
    t
};

const TOKEN_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "sk_live_",
    "rk_live_",
    "AKIA",
    "ASIA",
];

/// Masks secrets in field values and free text.
///
/// ```
/// use rollgate_telemetry::Redactor;
///
/// let r = Redactor::default();
/// assert_eq!(r.field("db_password", "hunter2"), "[REDACTED]");
/// assert_eq!(
///     r.text("GET https://bob:hunter2@db.local/x?token=abc123&page=2"),
///     "GET https://bob:[REDACTED]@db.local/x?token=[REDACTED]&page=2"
/// );
/// assert_eq!(r.text("all good"), "all good");
/// ```
#[derive(Debug, Clone)]
pub struct Redactor {
    /// Lowercase words; a field whose lowercase name contains one is masked.
    fields: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self {
            fields: DEFAULT_SENSITIVE_FIELDS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

impl Redactor {
    /// A redactor with the default field words plus `extra`.
    pub fn with_fields<I, S>(extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut r = Self::default();
        for f in extra {
            r.add_field(f.as_ref());
        }
        r
    }

    /// Adds a field-name word (matched case-insensitively, as a substring).
    pub fn add_field(&mut self, word: &str) {
        let w = word.to_ascii_lowercase();
        if !w.is_empty() && !self.fields.contains(&w) {
            self.fields.push(w);
        }
    }

    /// Whether a field with this name is masked whole.
    pub fn is_sensitive_field(&self, name: &str) -> bool {
        // Field names are short; avoid allocating for the common case.
        self.fields.iter().any(|w| contains_ignore_case(name, w))
    }

    /// The value to output for field `name`.
    pub fn field<'a>(&self, name: &str, value: &'a str) -> Cow<'a, str> {
        if self.is_sensitive_field(name) {
            Cow::Borrowed(MASK)
        } else {
            self.text(value)
        }
    }

    /// `text` with every secret shape masked.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        redact_text(text)
    }
}

fn contains_ignore_case(hay: &str, needle_lower: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle_lower.as_bytes());
    n.len() <= h.len()
        && h.windows(n.len())
            .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~' | b'+' | b'/' | b'=' | b'%')
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')
}

/// Byte ranges of `text` to mask, sorted and non-overlapping.
fn secret_ranges(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        // scheme://user:password@host
        if c == b':' && b.get(i + 1) == Some(&b'/') && b.get(i + 2) == Some(&b'/') {
            let start = i + 3;
            let mut j = start;
            while j < b.len() && !matches!(b[j], b'/' | b'?' | b'#' | b' ' | b'"' | b'\'' | b'\n') {
                j += 1;
            }
            if let Some(at) = b[start..j].iter().rposition(|x| *x == b'@') {
                let userinfo = &b[start..start + at];
                if let Some(colon) = userinfo.iter().position(|x| *x == b':') {
                    let (s, e) = (start + colon + 1, start + at);
                    if e > s {
                        ranges.push((s, e));
                    }
                }
            }
            i = start;
            continue;
        }
        // key=value / key: value / "key": "value"
        if c == b'=' || c == b':' {
            let mut k = i;
            // allow a closing quote between key and separator: "password": "x"
            if k > 0 && b[k - 1] == b'"' {
                k -= 1;
            }
            let key_end = k;
            while k > 0 && is_key_char(b[k - 1]) {
                k -= 1;
            }
            let key = &text[k..key_end];
            if !key.is_empty()
                && SENSITIVE_KEYS.iter().any(|w| {
                    key.len() >= w.len() && key[key.len() - w.len()..].eq_ignore_ascii_case(w)
                })
            {
                let mut s = i + 1;
                while s < b.len() && matches!(b[s], b' ' | b'"' | b'\'') {
                    s += 1;
                }
                // "Authorization: Bearer xyz" masks the credential after the scheme.
                for scheme in ["bearer ", "basic ", "token "] {
                    if b.len() >= s + scheme.len()
                        && b[s..s + scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
                    {
                        s += scheme.len();
                    }
                }
                let mut e = s;
                while e < b.len() && is_token_char(b[e]) && b[e] != b'&' {
                    e += 1;
                }
                if e > s {
                    ranges.push((s, e));
                    i = e;
                    continue;
                }
            }
        }
        // Bearer <token> anywhere
        if (c == b'B' || c == b'b')
            && b.len() >= i + 7
            && b[i..i + 7].eq_ignore_ascii_case(b"bearer ")
            && (i == 0 || !is_key_char(b[i - 1]))
        {
            let s = i + 7;
            let mut e = s;
            while e < b.len() && is_token_char(b[e]) {
                e += 1;
            }
            if e > s {
                ranges.push((s, e));
                i = e;
                continue;
            }
        }
        // Well-known token prefixes (only where a prefix can start)
        if TOKEN_FIRST_BYTES[c as usize]
            && (i == 0 || !is_key_char(b[i - 1]))
            && let Some(p) = TOKEN_PREFIXES
                .iter()
                .find(|p| b[i..].starts_with(p.as_bytes()))
        {
            let mut e = i + p.len();
            while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
                e += 1;
            }
            if e - i - p.len() >= 12 {
                ranges.push((i, e));
                i = e;
                continue;
            }
        }
        i += 1;
    }
    ranges.sort_unstable();
    ranges.dedup();
    ranges
}

fn redact_text(text: &str) -> Cow<'_, str> {
    let ranges = secret_ranges(text);
    if ranges.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (s, e) in ranges {
        if s < pos {
            continue;
        }
        out.push_str(&text[pos..s]);
        out.push_str(MASK);
        pos = e;
    }
    out.push_str(&text[pos..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> String {
        Redactor::default().text(s).into_owned()
    }

    #[test]
    fn masks_secret_shapes_in_free_text() {
        assert_eq!(
            t("password=hunter2 user=bob"),
            "password=[REDACTED] user=bob"
        );
        assert_eq!(t("{\"api_key\": \"abc\"}"), "{\"api_key\": \"[REDACTED]\"}");
        assert_eq!(
            t("Authorization: Bearer eyJhbGciOi.x.y ok"),
            "Authorization: Bearer [REDACTED] ok"
        );
        assert_eq!(t("sent bearer abc.def"), "sent bearer [REDACTED]");
        assert_eq!(
            t("key ghp_0123456789abcdefABCDEF used"),
            "key [REDACTED] used"
        );
        assert_eq!(t("AKIAIOSFODNN7EXAMPLE"), "[REDACTED]");
        assert_eq!(
            t("postgres://app:s3cr3t@db:5432/x"),
            "postgres://app:[REDACTED]@db:5432/x"
        );
        assert_eq!(t("https://example.com/a?b=1"), "https://example.com/a?b=1");
        assert_eq!(t("at 12:30 ratio=0.5"), "at 12:30 ratio=0.5");
        assert_eq!(t("ünïcödé token=é"), "ünïcödé token=é");
    }

    #[test]
    fn masks_sensitive_field_names_case_insensitively() {
        let r = Redactor::with_fields(["ssn"]);
        assert!(r.is_sensitive_field("X-Api-Token"));
        assert!(r.is_sensitive_field("customer_SSN"));
        assert!(!r.is_sensitive_field("route"));
    }
}
