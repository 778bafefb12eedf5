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

/// Byte classes for the scan: only bytes with a class can start a secret
/// shape, so every other byte is skipped with one table lookup.
const SEPARATOR: u8 = 1;
/// `b`/`B`, which can start `Bearer `.
const BEARER_START: u8 = 2;
/// The first byte of one of [`TOKEN_PREFIXES`].
const TOKEN_START: u8 = 4;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b':' as usize] = SEPARATOR;
    t[b'=' as usize] = SEPARATOR;
    t[b'b' as usize] = BEARER_START;
    t[b'B' as usize] = BEARER_START;
    let mut i = 0;
    while i < TOKEN_PREFIXES.len() {
        t[TOKEN_PREFIXES[i].as_bytes()[0] as usize] |= TOKEN_START;
        i += 1;
    }
    t
};

/// `TOKEN_SECOND[b]`: some token prefix has `b` as its second byte.
static TOKEN_SECOND: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < TOKEN_PREFIXES.len() {
        t[TOKEN_PREFIXES[i].as_bytes()[1] as usize] = true;
        i += 1;
    }
    t
};

/// `KEY_LAST[b]`: some sensitive key ends with the lowercase byte `b`, so
/// only keys ending in one are compared word by word.
static KEY_LAST: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < SENSITIVE_KEYS.len() {
        let w = SENSITIVE_KEYS[i].as_bytes();
        t[w[w.len() - 1] as usize] = true;
        i += 1;
    }
    t
};

/// Characters a well-known token needs after its prefix to be masked.
const MIN_TOKEN_BODY: usize = 12;

/// The shortest text from a token's first byte to its end: shortest prefix
/// plus [`MIN_TOKEN_BODY`].
const MIN_TOKEN_LEN: usize = {
    let mut min = usize::MAX;
    let mut i = 0;
    while i < TOKEN_PREFIXES.len() {
        if TOKEN_PREFIXES[i].len() < min {
            min = TOKEN_PREFIXES[i].len();
        }
        i += 1;
    }
    min + MIN_TOKEN_BODY
};

/// The shortest `bearer x` that masks something: the scheme, a space and
/// one token character.
const MIN_BEARER_LEN: usize = "bearer ".len() + 1;

/// Prefixes of well-known credential formats; the token that follows is masked.
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
#[derive(Clone)]
pub struct Redactor {
    /// Lowercase words; a field whose lowercase name contains one is masked.
    fields: Vec<String>,
    /// `first[b]`: some word in `fields` starts with the lowercase byte `b`,
    /// so a field name is only compared at positions a word can start.
    first: [bool; 256],
    /// Length of the shortest word (`usize::MAX` with no words).
    min_len: usize,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl Default for Redactor {
    fn default() -> Self {
        let mut r = Self {
            fields: Vec::new(),
            first: [false; 256],
            min_len: usize::MAX,
        };
        for w in DEFAULT_SENSITIVE_FIELDS {
            r.add_field(w);
        }
        r
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
        if let Some(&b) = w.as_bytes().first()
            && !self.fields.contains(&w)
        {
            self.first[usize::from(b)] = true;
            self.min_len = self.min_len.min(w.len());
            self.fields.push(w);
        }
    }

    /// Whether a field with this name is masked whole.
    pub fn is_sensitive_field(&self, name: &str) -> bool {
        // Field names are short: compare words only where one can start and
        // still fit, so most names are rejected after a few table lookups.
        let h = name.as_bytes();
        let Some(last_start) = h.len().checked_sub(self.min_len) else {
            return false;
        };
        (0..=last_start).any(|j| {
            let first = h[j].to_ascii_lowercase();
            self.first[usize::from(first)]
                && self.fields.iter().any(|w| {
                    w.as_bytes().first() == Some(&first)
                        && h.len() - j >= w.len()
                        && h[j..j + w.len()].eq_ignore_ascii_case(w.as_bytes())
                })
        })
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
    #[inline]
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        redact_text(text)
    }
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
        let class = CLASS[usize::from(c)];
        if class == 0 {
            i += 1;
            continue;
        }
        // scheme://user:password@host
        if c == b':' && b.get(i + 1) == Some(&b'/') && b.get(i + 2) == Some(&b'/') {
            let start = i + 3;
            // The user name ends at the first `:`; before it, a `/`, `?`,
            // `#` or `@` means there is no password. The password runs to the
            // last `@` before the URL ends: people write `/` and `@` in
            // passwords unencoded (`postgres://app:pa/ss@db`), and masking
            // too much is the safe mistake.
            let mut j = start;
            while j < b.len() && !matches!(b[j], b' ' | b'"' | b'\'' | b'\n' | b'\t' | b'\\') {
                j += 1;
            }
            let user_end = b[start..j]
                .iter()
                .position(|x| matches!(x, b':' | b'/' | b'?' | b'#' | b'@'))
                .filter(|&p| b[start + p] == b':');
            if let (Some(colon), Some(at)) =
                (user_end, b[start..j].iter().rposition(|x| *x == b'@'))
            {
                let (s, e) = (start + colon + 1, start + at);
                if e > s {
                    ranges.push((s, e));
                }
            }
            i = start;
            continue;
        }
        // key=value / key: value / "key": "value"
        if c == b'=' || c == b':' {
            let mut k = i;
            // Spaces before the separator: `password = x`.
            while k > 0 && b[k - 1] == b' ' {
                k -= 1;
            }
            // A closing quote, plain or escaped, between key and separator:
            // `"password": "x"`, and `{\"password\": \"x\"}` in `Debug` output.
            if k > 0 && matches!(b[k - 1], b'"' | b'\'') {
                k -= 1;
                if k > 0 && b[k - 1] == b'\\' {
                    k -= 1;
                }
            }
            let key_end = k;
            while k > 0 && is_key_char(b[k - 1]) {
                k -= 1;
            }
            let key = &text[k..key_end];
            if key
                .as_bytes()
                .last()
                .is_some_and(|l| KEY_LAST[usize::from(l.to_ascii_lowercase())])
                && SENSITIVE_KEYS.iter().any(|w| {
                    key.len() >= w.len() && key[key.len() - w.len()..].eq_ignore_ascii_case(w)
                })
            {
                let mut s = i + 1;
                while s < b.len() && b[s] == b' ' {
                    s += 1;
                }
                // A quoted value ends at the same quote (escaped in `Debug`
                // output); a bare one at a space or a list separator. Any other
                // byte, quotes and `@`/`!`/`#` included, is part of the secret.
                let quote: &[u8] = if b[s..].starts_with(b"\\\"") {
                    b"\\\""
                } else if matches!(b.get(s), Some(b'"' | b'\'')) {
                    &b[s..=s]
                } else {
                    b""
                };
                s += quote.len();
                // "Authorization: Bearer xyz" masks the credential after the scheme.
                for scheme in ["bearer ", "basic ", "token "] {
                    if b.len() >= s + scheme.len()
                        && b[s..s + scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
                    {
                        s += scheme.len();
                    }
                }
                let e = if quote.is_empty() {
                    b[s..]
                        .iter()
                        .position(|&x| x.is_ascii_whitespace() || matches!(x, b'&' | b',' | b';'))
                        .map_or(b.len(), |p| s + p)
                } else {
                    // A doubled quote (`'it''s'`) is one quote inside the value.
                    let mut e = s;
                    loop {
                        match b[e..].windows(quote.len()).position(|w| w == quote) {
                            None => break b.len(),
                            Some(p) if b[e + p + quote.len()..].starts_with(quote) => {
                                e += p + 2 * quote.len();
                            }
                            Some(p) => break e + p,
                        }
                    }
                };
                if e > s {
                    ranges.push((s, e));
                    i = e;
                    continue;
                }
            }
        }
        // Bearer <token> anywhere
        if class & BEARER_START != 0
            && (i == 0 || !is_key_char(b[i - 1]))
            && b.len() >= i + 7
            && b[i..i + 7].eq_ignore_ascii_case(b"bearer ")
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
        if class & TOKEN_START != 0
            && b.len() - i >= MIN_TOKEN_LEN
            && TOKEN_SECOND[usize::from(b[i + 1])]
            && (i == 0 || !is_key_char(b[i - 1]))
            && let Some(p) = TOKEN_PREFIXES
                .iter()
                .find(|p| b[i..].starts_with(p.as_bytes()))
        {
            let mut e = i + p.len();
            while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
                e += 1;
            }
            if e - i - p.len() >= MIN_TOKEN_BODY {
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

/// Whether `text` can hold any secret shape [`secret_ranges`] finds: a
/// separator (`:` or `=`, which every `key=value` pair and URL needs), or a
/// byte that starts `bearer ` or a token prefix with room for the rest.
/// Never false when `secret_ranges` would find something, so most values
/// (names, numbers, short words) skip the scan after one table lookup per byte.
fn may_hold_secret(b: &[u8]) -> bool {
    let n = b.len();
    // Positions a token can start at, then those only `bearer x` fits after.
    let token_end = (n + 1).saturating_sub(MIN_TOKEN_LEN);
    let bearer_end = (n + 1).saturating_sub(MIN_BEARER_LEN).max(token_end);
    for &c in &b[..token_end] {
        if CLASS[usize::from(c)] != 0 {
            return true;
        }
    }
    for &c in &b[token_end..bearer_end] {
        if CLASS[usize::from(c)] & (SEPARATOR | BEARER_START) != 0 {
            return true;
        }
    }
    for &c in &b[bearer_end..] {
        if CLASS[usize::from(c)] & SEPARATOR != 0 {
            return true;
        }
    }
    false
}

#[inline]
fn redact_text(text: &str) -> Cow<'_, str> {
    if may_hold_secret(text.as_bytes()) {
        mask_ranges(text)
    } else {
        Cow::Borrowed(text)
    }
}

/// The full scan, kept out of line so the common path stays small.
#[inline(never)]
fn mask_ranges(text: &str) -> Cow<'_, str> {
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
        // Whatever follows a sensitive key is secret, in any alphabet.
        assert_eq!(t("ünïcödé token=é"), "ünïcödé token=[REDACTED]");
    }

    /// Shapes that leaked before: a JSON key inside `Debug` output, spaces
    /// around `=`, quotes and symbols inside a value, `/` in a URL password.
    #[test]
    fn escaped_spaced_and_symbol_laden_secrets_are_masked() {
        let cases = [
            (
                format!("{:?}", r#"{"password": "hunter2", "user": "bob"}"#),
                r#""{\"password\": \"[REDACTED]\", \"user\": \"bob\"}""#.to_owned(),
            ),
            (
                "password = hunter2 next".to_owned(),
                "password = [REDACTED] next".to_owned(),
            ),
            (
                format!("{:?}", "password=hun\"ter2"),
                "\"password=[REDACTED]".to_owned(),
            ),
            (
                "pwd=p@ss!w#rd,ok".to_owned(),
                "pwd=[REDACTED],ok".to_owned(),
            ),
            (
                "secret: 'it''s' x".to_owned(),
                "secret: '[REDACTED]' x".to_owned(),
            ),
            (
                "https://bob:pa/ss@host/x".to_owned(),
                "https://bob:[REDACTED]@host/x".to_owned(),
            ),
            (
                "postgres://app:p@ss@db:5432/x".to_owned(),
                "postgres://app:[REDACTED]@db:5432/x".to_owned(),
            ),
            // No password: nothing to mask, even with `@` and `:` later on.
            (
                "https://host/x?q=a:b@c".to_owned(),
                "https://host/x?q=a:b@c".to_owned(),
            ),
            (
                "https://bob@host:8080/x".to_owned(),
                "https://bob@host:8080/x".to_owned(),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(t(&input), want, "{input}");
            for secret in ["hunter2", "ter2", "p@ss", "w#rd", "pa/ss", "s'"] {
                if !want.contains(secret) {
                    assert!(!t(&input).contains(secret), "{input} leaks {secret}");
                }
            }
        }
    }

    /// Every shape at the shortest length that masks, alone and at the end
    /// of a longer text: the prefilter's length cut-offs sit exactly there.
    #[test]
    fn every_secret_shape_at_its_shortest_is_masked() {
        let mut cases: Vec<(String, String)> = TOKEN_PREFIXES
            .iter()
            .map(|p| {
                (
                    format!("{p}{}", "A".repeat(MIN_TOKEN_BODY)),
                    MASK.to_owned(),
                )
            })
            .collect();
        cases.extend(
            [
                ("bearer x", "bearer [REDACTED]"),
                ("Bearer x", "Bearer [REDACTED]"),
                ("pwd=x", "pwd=[REDACTED]"),
                ("sig:x", "sig:[REDACTED]"),
                ("a://u:p@h", "a://u:[REDACTED]@h"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned())),
        );
        for (secret, masked) in cases {
            assert_eq!(t(&secret), masked, "{secret}");
            assert_eq!(t(&format!("seen {secret}")), format!("seen {masked}"));
            assert!(may_hold_secret(secret.as_bytes()), "{secret}");
        }
        // Every sensitive key, in any case and as the end of a longer key.
        for w in SENSITIVE_KEYS {
            assert_eq!(t(&format!("{w}=x")), format!("{w}=[REDACTED]"));
            let upper = w.to_ascii_uppercase();
            assert_eq!(
                t(&format!("{{\"DB_{upper}\": \"x\"}}")),
                format!("{{\"DB_{upper}\": \"[REDACTED]\"}}")
            );
        }
        // One character short of a shape: nothing to mask, and the
        // prefilter may skip the scan.
        for p in TOKEN_PREFIXES {
            let short = format!("{p}{}", "A".repeat(MIN_TOKEN_BODY - 1));
            assert_eq!(t(&short), short);
        }
        assert_eq!(t("bearer "), "bearer ");
        assert!(!may_hold_secret(b"bearer "));
        assert!(!may_hold_secret(b"order placed"));
    }

    proptest::proptest! {
        /// The prefilter never skips a text the full scan would mask.
        #[test]
        fn the_prefilter_never_skips_a_secret(
            before in "[a-zA-Z0-9 _./-]{0,12}",
            shape in proptest::sample::select(vec![
                "ghp_", "github_pat_", "glpat-", "xoxb-", "sk_live_", "rk_live_", "AKIA", "ASIA",
                "bearer ", "Bearer ", "token=", "pwd:", "sig=", "s://a:", "@",
            ]),
            after in "[a-zA-Z0-9 _:=@/-]{0,20}",
        ) {
            let text = format!("{before}{shape}{after}");
            let found = !secret_ranges(&text).is_empty();
            proptest::prop_assert!(!found || may_hold_secret(text.as_bytes()), "{}", text);
        }
    }

    /// The prefilter's length cut-offs, checked exhaustively where they
    /// bite: every token prefix with a body one shorter than, as long as and
    /// one longer than the minimum, and `bearer` in every case with 0–2
    /// characters after it, each at the very end of texts with no separator
    /// (the random inputs above nearly always hold a `:` or `=`).
    #[test]
    fn the_prefilter_agrees_with_the_scan_at_every_length_boundary() {
        let mut texts = Vec::new();
        for before in ["", "x ", "ab", "-", "é "] {
            for after in ["", " ", "!", "é"] {
                for p in TOKEN_PREFIXES {
                    for body in MIN_TOKEN_BODY - 1..=MIN_TOKEN_BODY + 1 {
                        for fill in ["A", "z", "9", "_"] {
                            texts.push(format!("{before}{p}{}{after}", fill.repeat(body)));
                        }
                    }
                }
                for mask in 0u32..64 {
                    let word: String = "bearer"
                        .chars()
                        .enumerate()
                        .map(|(i, c)| {
                            if mask >> i & 1 == 1 {
                                c.to_ascii_uppercase()
                            } else {
                                c
                            }
                        })
                        .collect();
                    for tail in ["", "x", "xy", "-."] {
                        texts.push(format!("{before}{word} {tail}{after}"));
                    }
                }
            }
        }
        let mut masked = 0;
        for text in &texts {
            let found = !secret_ranges(text).is_empty();
            masked += usize::from(found);
            assert!(
                !found || may_hold_secret(text.as_bytes()),
                "prefilter skips {text:?}"
            );
        }
        // Both sides of each boundary occur.
        assert!(
            masked > 1000 && masked < texts.len(),
            "{masked} of {}",
            texts.len()
        );
    }

    #[test]
    fn masks_sensitive_field_names_case_insensitively() {
        let r = Redactor::with_fields(["ssn"]);
        assert!(r.is_sensitive_field("X-Api-Token"));
        assert!(r.is_sensitive_field("customer_SSN"));
        assert!(!r.is_sensitive_field("route"));
        // Words match anywhere in the name, including at its very end, and
        // names shorter than every word are never sensitive.
        assert!(r.is_sensitive_field("ssn"));
        assert!(r.is_sensitive_field("db_passwd"));
        assert!(r.is_sensitive_field("TOKEN"));
        assert!(!r.is_sensitive_field("tok"));
        assert!(!r.is_sensitive_field(""));
        assert!(!Redactor::default().is_sensitive_field("ssn"));
    }
}
