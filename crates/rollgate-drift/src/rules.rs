//! The rules file: per path pattern, the list key, ignore, normalisers,
//! severity and secret marking.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::error::Error;
use crate::normalise::Normaliser;
use crate::tree::{Map, Node, Number, Value, unescape_token};

/// How much a difference matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Worth fixing (the default).
    #[default]
    Warning,
    /// Fix now.
    Critical,
}

impl Severity {
    /// The lowercase name.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Any,
    AnyDepth,
}

/// A JSON Pointer pattern: `*` matches one segment, `**` any number of
/// segments (including none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segs: Vec<Seg>,
    /// Segments that match exactly one token (all but `**`).
    fixed: usize,
    /// Whether a `**` lets the pattern match longer paths.
    open: bool,
    /// The index of the first `**` (`segs.len()` when there is none).
    split: usize,
}

impl PathPattern {
    /// Parses a pattern such as `/spec/containers/*/resources/**`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Self {
                text: String::new(),
                segs: Vec::new(),
                fixed: 0,
                open: false,
                split: 0,
            });
        }
        let rest = text
            .strip_prefix('/')
            .ok_or_else(|| format!("path pattern \"{text}\" must start with '/'"))?;
        let segs: Vec<Seg> = rest
            .split('/')
            .map(|s| match s {
                "*" => Seg::Any,
                "**" => Seg::AnyDepth,
                _ => Seg::Lit(unescape_token(s)),
            })
            .collect();
        let fixed = segs.iter().filter(|s| **s != Seg::AnyDepth).count();
        Ok(Self {
            text: text.to_owned(),
            open: fixed < segs.len(),
            split: segs
                .iter()
                .position(|s| *s == Seg::AnyDepth)
                .unwrap_or(segs.len()),
            segs,
            fixed,
        })
    }

    /// Whether the pattern matches a path given as unescaped tokens.
    #[must_use]
    pub fn matches<S: AsRef<str>>(&self, path: &[S]) -> bool {
        self.matches_tokens(path)
    }

    /// [`PathPattern::matches`] on any kind of path step (the differ's steps
    /// are key bytes and list indices, turned into text only for reports).
    pub(crate) fn matches_tokens<S: PathToken>(&self, path: &[S]) -> bool {
        // Cheap rejections first (the differ asks at every node): the path's
        // length, then the literal segments.
        if path.len() < self.fixed || (!self.open && path.len() != self.fixed) {
            return false;
        }
        if self.fixed + 1 >= self.segs.len() {
            // At most one `**` (nearly every pattern): the segments before
            // it match the path's first tokens and those after it the last
            // ones, the `**` taking what lies between (the length check
            // keeps the two apart). The last tokens first: they differ most.
            let (before, after) = self.segs.split_at(self.split);
            let after = after.get(1..).unwrap_or_default();
            let lit = |(seg, token): (&Seg, &S)| match seg {
                Seg::Lit(l) => token.is(l),
                _ => true,
            };
            // The deepest segments first: they differ most.
            return after.iter().rev().zip(path.iter().rev()).all(lit)
                && before.iter().zip(path).rev().all(lit);
        }
        self.matches_general(path)
    }

    /// Whether the pattern can match a path of `len` tokens.
    pub(crate) fn fits_len(&self, len: usize) -> bool {
        len >= self.fixed && (self.open || len == self.fixed)
    }

    /// [`PathPattern::matches_tokens`] for any number of `**`.
    fn matches_general<S: PathToken>(&self, path: &[S]) -> bool {
        if path.len() < self.fixed || (!self.open && path.len() != self.fixed) {
            return false;
        }
        for (seg, token) in [
            (self.segs.last(), path.last()),
            (self.segs.first(), path.first()),
        ] {
            if let (Some(Seg::Lit(l)), Some(t)) = (seg, token)
                && !t.is(l)
            {
                return false;
            }
        }
        fn go<S: PathToken>(p: &[Seg], path: &[S]) -> bool {
            match p.split_first() {
                None => path.is_empty(),
                Some((Seg::AnyDepth, rest)) => (0..=path.len()).any(|i| go(rest, &path[i..])),
                Some((seg, rest)) => match path.split_first() {
                    None => false,
                    Some((head, tail)) => {
                        let ok = match seg {
                            Seg::Lit(l) => head.is(l),
                            _ => true,
                        };
                        ok && go(rest, tail)
                    }
                },
            }
        }
        go(&self.segs, path)
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One step of a path matched against patterns.
pub(crate) trait PathToken {
    /// Whether the step is the unescaped token `lit`.
    fn is(&self, lit: &str) -> bool;
}

impl<S: AsRef<str>> PathToken for S {
    #[inline]
    fn is(&self, lit: &str) -> bool {
        self.as_ref() == lit
    }
}

/// Which fields identify an element of a list: one or more field paths
/// (`name`, or `/metadata/name` for a nested field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    fields: Vec<Vec<String>>,
}

impl KeySpec {
    /// A key made of the given fields; each is a plain field name or a JSON
    /// Pointer into the element.
    #[must_use]
    pub fn new<S: AsRef<str>>(fields: &[S]) -> Self {
        let fields = fields
            .iter()
            .map(|f| {
                let f = f.as_ref();
                match f.strip_prefix('/') {
                    Some(p) => p.split('/').map(unescape_token).collect(),
                    None => vec![f.to_owned()],
                }
            })
            .collect();
        Self { fields }
    }

    pub(crate) fn fields(&self) -> &[Vec<String>] {
        &self.fields
    }

    /// The key as rules and reports print it (`name`, `kind+/metadata/name`).
    #[must_use]
    pub fn describe(&self) -> String {
        self.fields
            .iter()
            .map(|f| {
                if f.len() == 1 {
                    f[0].clone()
                } else {
                    f.iter().map(|t| format!("/{t}")).collect::<String>()
                }
            })
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// One rule. Attributes left unset inherit from earlier matching rules.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Rule {
    /// The paths the rule applies to.
    pub path: PathPattern,
    /// List key for lists at these paths.
    pub key: Option<KeySpec>,
    /// Skip these paths entirely.
    pub ignore: Option<bool>,
    /// Normalisers applied to scalars at these paths before comparing.
    pub normalise: Option<Vec<Normaliser>>,
    /// Severity of differences at these paths.
    pub severity: Option<Severity>,
    /// Compare but never print values at these paths (and below).
    pub secret: Option<bool>,
    /// The value a key has when it is absent (a declared default): a key
    /// missing on one side equals this value on the other.
    pub default: Option<Value>,
}

impl Rule {
    /// A rule for `pattern` with nothing set.
    pub fn new(pattern: &str) -> Result<Self, Error> {
        Ok(Self {
            path: PathPattern::parse(pattern).map_err(|message| Error::Rules {
                source_name: "<code>".to_owned(),
                message,
            })?,
            key: None,
            ignore: None,
            normalise: None,
            severity: None,
            secret: None,
            default: None,
        })
    }

    /// Sets the list key fields.
    #[must_use]
    pub fn key<S: AsRef<str>>(mut self, fields: &[S]) -> Self {
        self.key = Some(KeySpec::new(fields));
        self
    }

    /// Ignores the paths.
    #[must_use]
    pub fn ignore(mut self) -> Self {
        self.ignore = Some(true);
        self
    }

    /// Sets the normalisers.
    #[must_use]
    pub fn normalise(mut self, normalisers: &[Normaliser]) -> Self {
        self.normalise = Some(normalisers.to_vec());
        self
    }

    /// Sets the severity.
    #[must_use]
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }

    /// Marks the paths secret.
    #[must_use]
    pub fn secret(mut self) -> Self {
        self.secret = Some(true);
        self
    }

    /// Marks the paths as holding no secret, though their key looks like it
    /// (`secret = false` in a rules file): values there are printed and
    /// patched.
    ///
    /// ```
    /// use rollgate_drift::{Differ, Format, Limits, Rule, Rules, load};
    /// let d = load(r#"{"tokenTtl": "1h"}"#, Format::Json, "d.json", &Limits::default())?;
    /// let l = load(r#"{"tokenTtl": "2h"}"#, Format::Json, "l.json", &Limits::default())?;
    /// let rules = Rules::new().with_rule(Rule::new("/tokenTtl")?.not_secret());
    /// let report = Differ::new(rules).diff(&d, &l);
    /// assert!(!report.differences()[0].secret);
    /// assert!(report.withheld().is_empty());
    /// # Ok::<(), rollgate_drift::Error>(())
    /// ```
    #[must_use]
    pub fn not_secret(mut self) -> Self {
        self.secret = Some(false);
        self
    }

    /// Declares the value an absent key has.
    #[must_use]
    pub fn default_value(mut self, value: Value) -> Self {
        self.default = Some(value);
        self
    }
}

/// A set of rules plus global settings.
///
/// ```
/// use rollgate_drift::{Rules, Severity};
/// let rules = Rules::from_toml(r#"
/// [defaults]
/// severity = "info"
///
/// [[rule]]
/// path = "/spec/containers/*/resources/**/cpu"
/// normalise = ["cpu"]
/// severity = "critical"
///
/// [[rule]]
/// path = "/metadata/annotations"
/// ignore = true
/// "#, "rules.toml")?;
/// assert_eq!(rules.rules().len(), 2);
/// assert_eq!(rules.default_severity(), Severity::Info);
/// # Ok::<(), rollgate_drift::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    rules: Vec<Rule>,
    default_severity: Severity,
    mask_secret_keys: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            default_severity: Severity::Warning,
            mask_secret_keys: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    rule: Vec<RuleFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Defaults {
    severity: Option<Severity>,
    mask_secret_keys: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum KeyFile {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    path: String,
    key: Option<KeyFile>,
    ignore: Option<bool>,
    #[serde(alias = "normalize")]
    normalise: Option<Vec<Normaliser>>,
    severity: Option<Severity>,
    secret: Option<bool>,
    default: Option<toml::Value>,
}

impl Rules {
    /// No rules, secret-looking keys masked.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a rules file's text; `source_name` names it in errors.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Self, Error> {
        let err = |message: String| Error::Rules {
            source_name: source_name.to_owned(),
            message,
        };
        let file: RulesFile = toml::from_str(text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|s| crate::load::line_col(text.as_bytes(), s.start))
                .unwrap_or((0, 0));
            err(format!("{line}:{col}: {}", e.message().trim_end()))
        })?;
        let mut rules = Self::default();
        if let Some(s) = file.defaults.severity {
            rules.default_severity = s;
        }
        if let Some(m) = file.defaults.mask_secret_keys {
            rules.mask_secret_keys = m;
        }
        for r in file.rule {
            let path = PathPattern::parse(&r.path).map_err(err)?;
            let key = match r.key {
                None => None,
                Some(KeyFile::One(k)) => Some(KeySpec::new(&[k])),
                Some(KeyFile::Many(ks)) if ks.is_empty() => {
                    return Err(err(format!("rule \"{}\": key must not be empty", r.path)));
                }
                Some(KeyFile::Many(ks)) => Some(KeySpec::new(&ks)),
            };
            rules.rules.push(Rule {
                path,
                key,
                ignore: r.ignore,
                normalise: r.normalise,
                severity: r.severity,
                secret: r.secret,
                default: r.default.as_ref().map(from_toml),
            });
        }
        Ok(rules)
    }

    /// Reads a rules file.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Adds a rule (later rules override earlier ones attribute by attribute).
    #[must_use]
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Sets the severity of differences no rule classifies.
    #[must_use]
    pub fn with_default_severity(mut self, severity: Severity) -> Self {
        self.default_severity = severity;
        self
    }

    /// Turns masking of secret-looking keys on or off (on by default).
    #[must_use]
    pub fn with_secret_key_masking(mut self, on: bool) -> Self {
        self.mask_secret_keys = on;
        self
    }

    /// The rules in order.
    #[must_use]
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The severity of differences no rule classifies.
    #[must_use]
    pub fn default_severity(&self) -> Severity {
        self.default_severity
    }

    /// Whether values under secret-looking keys are masked.
    #[must_use]
    pub fn masks_secret_keys(&self) -> bool {
        self.mask_secret_keys
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What overlays need of the rules matching `path` (an owned copy).
    pub(crate) fn resolve<S: PathToken>(&self, path: &[S]) -> Resolved {
        Resolved {
            key: self.resolve_ref(path).key.cloned(),
        }
    }

    /// The merged attributes of every rule matching `path`, borrowed from
    /// the rules: nothing is cloned, allocated or dropped (the differ asks
    /// at every node).
    pub(crate) fn resolve_ref<S: PathToken>(&self, path: &[S]) -> Res<'_> {
        self.resolve_among(path, u64::MAX)
    }

    /// For each path length below [`DEPTHS`], the rules whose pattern can
    /// match a path that long, as a bit set over the first 64 rules (the
    /// others are always tried), for [`Rules::resolve_among`].
    pub(crate) fn by_length(&self) -> Vec<u64> {
        (0..DEPTHS)
            .map(|len| {
                self.rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| match i {
                        0..64 if !r.path.fits_len(len) => 0,
                        0..64 => 1 << i,
                        _ => 0,
                    })
                    .fold(0, |a, b| a | b)
            })
            .collect()
    }

    /// [`Rules::resolve_ref`] trying among the first 64 rules only those in
    /// `candidates` (the rules the others cannot match are left out; see
    /// [`Rules::by_length`]).
    pub(crate) fn resolve_among<S: PathToken>(&self, path: &[S], candidates: u64) -> Res<'_> {
        let mut out = Res::plain(self.default_severity);
        for (i, r) in self.rules.iter().enumerate() {
            if (i < 64 && candidates & (1 << i) == 0) || !r.path.matches_tokens(path) {
                continue;
            }
            if let Some(k) = &r.key {
                out.key = Some(k);
            }
            if let Some(i) = r.ignore {
                out.ignore = i;
            }
            if let Some(n) = &r.normalise {
                out.normalise = n;
            }
            if let Some(s) = r.severity {
                out.severity = s;
                out.severity_set = true;
            }
            if let Some(s) = r.secret {
                out.secret = s;
                out.not_secret = !s;
            }
            if let Some(d) = &r.default {
                out.default = Some(d);
            }
        }
        out
    }
}

/// The path lengths [`Rules::by_length`] covers.
pub(crate) const DEPTHS: usize = 64;

/// The attributes overlays read at one path ([`Rules::resolve`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    pub key: Option<KeySpec>,
}

/// The attributes in force at one path ([`Rules::resolve_ref`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Res<'r> {
    pub key: Option<&'r KeySpec>,
    pub ignore: bool,
    pub normalise: &'r [Normaliser],
    pub severity: Severity,
    /// Whether a rule set the severity here (it then holds for the subtree).
    pub severity_set: bool,
    pub secret: bool,
    /// Whether a rule said `secret = false` here: a secret-looking name is
    /// then not masked.
    pub not_secret: bool,
    pub default: Option<&'r Value>,
}

impl Res<'_> {
    /// What holds at every path when no rule matches.
    pub(crate) const fn plain(severity: Severity) -> Self {
        Res {
            key: None,
            ignore: false,
            normalise: &[],
            severity,
            severity_set: false,
            secret: false,
            not_secret: false,
            default: None,
        }
    }
}

/// A TOML value as a tree value (datetimes become their text).
fn from_toml(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.as_str().into()),
        toml::Value::Integer(i) => Value::Number(Number::Int(*i)),
        toml::Value::Float(f) if f.is_finite() => Value::Number(Number::Float(*f)),
        toml::Value::Float(f) => Value::String(f.to_string().into()),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string().into()),
        toml::Value::Array(items) => {
            Value::Array(items.iter().map(|i| Node::new(from_toml(i))).collect())
        }
        toml::Value::Table(t) => {
            let mut m = Map::new();
            for (k, v) in t {
                m.insert(k.clone(), Node::new(from_toml(v)));
            }
            Value::Object(m)
        }
    }
}

/// Whether a key name looks like it holds a secret: it contains `password`,
/// `passwd`, `secret`, `token`, `credential` or `private`, or ends in `key`
/// or `keys` (`apiKey`, `api_key`, `ssh_keys`, `keys`). A key named just
/// `key` is not: it names something (Kubernetes tolerations,
/// `configMapKeyRef`, selector expressions, `{key, value}` tag lists); nor
/// is one ending in `name`, `ref`, `path` or `file` (`secretName`,
/// `secretKeyRef`, `tokenPath`, `ssl_keyfile`): it refers to a secret kept
/// elsewhere.
#[must_use]
pub fn is_secret_key(key: &str) -> bool {
    is_secret_key_bytes(key.as_bytes())
}

/// [`is_secret_key`] on the key's bytes (the arena's strings need no UTF-8
/// check for it).
pub(crate) fn is_secret_key_bytes(k: &[u8]) -> bool {
    // Called for every key the differ visits: one pass, no allocation, ASCII
    // case folded with `| 0x20` (exact for letters, and only letters are
    // compared); a word is checked only where its first letter is.
    let n = k.len();
    let folds = |at: usize, word: &[u8]| {
        k.get(at..at + word.len())
            .is_some_and(|s| s.iter().zip(word).all(|(&a, &b)| a | 0x20 == b))
    };
    // A field named just `key` names something (Kubernetes tolerations,
    // `configMapKeyRef`, selector expressions, tag lists): not a secret.
    if n == 3 {
        return false;
    }
    // Nor does one that refers to a secret kept elsewhere: `secretName`,
    // `secretKeyRef`, `tokenPath`, `ssl_keyfile`, `passwordFile`.
    const REFERENCE: [&[u8]; 6] = [b"name", b"names", b"ref", b"refs", b"path", b"file"];
    if REFERENCE
        .iter()
        .any(|w| n > w.len() && folds(n - w.len(), w))
    {
        return false;
    }
    if (n > 3 && folds(n - 3, b"key")) || (n >= 4 && folds(n - 4, b"keys")) {
        return true;
    }
    // The shortest word is five letters ("token").
    (0..n.saturating_sub(4)).any(|i| match k[i] | 0x20 {
        b'p' => folds(i, b"password") || folds(i, b"passwd") || folds(i, b"private"),
        b's' => folds(i, b"secret"),
        b't' => folds(i, b"token"),
        b'c' => folds(i, b"credential"),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_wildcards() {
        let p = PathPattern::parse("/a/*/c").unwrap();
        assert!(p.matches(&["a", "0", "c"]));
        assert!(!p.matches(&["a", "c"]));
        let p = PathPattern::parse("/a/**/c").unwrap();
        assert!(p.matches(&["a", "c"]));
        assert!(p.matches(&["a", "x", "y", "c"]));
        assert!(!p.matches(&["a", "x", "y"]));
        assert!(PathPattern::parse("a").is_err());
    }

    #[test]
    fn quick_rejections_never_change_a_match() {
        // Every pattern of up to 4 segments over {a, b, *, **} against every
        // path of up to 5 tokens over {a, b}, checked against a plain matcher.
        fn reference(p: &[&str], path: &[&str]) -> bool {
            match p.split_first() {
                None => path.is_empty(),
                Some((&"**", rest)) => (0..=path.len()).any(|i| reference(rest, &path[i..])),
                Some((seg, rest)) => path
                    .split_first()
                    .is_some_and(|(h, t)| (*seg == "*" || seg == h) && reference(rest, t)),
            }
        }
        fn all<'a>(alphabet: &[&'a str], max: usize) -> Vec<Vec<&'a str>> {
            let mut out = vec![vec![]];
            let mut last = vec![vec![]];
            for _ in 0..max {
                let mut next = Vec::new();
                for v in &last {
                    for a in alphabet {
                        let mut w: Vec<&str> = v.clone();
                        w.push(a);
                        next.push(w);
                    }
                }
                out.extend(next.iter().cloned());
                last = next;
            }
            out
        }
        let paths = all(&["a", "b"], 5);
        let mut checked = 0;
        for pat in all(&["a", "b", "*", "**"], 4) {
            let text = if pat.is_empty() {
                String::new()
            } else {
                format!("/{}", pat.join("/"))
            };
            let p = PathPattern::parse(&text).unwrap();
            for path in &paths {
                assert_eq!(p.matches(path), reference(&pat, path), "{text} vs {path:?}");
                checked += 1;
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    #[test]
    fn secret_keys_are_recognised() {
        for k in [
            "password",
            "DB_PASSWORD",
            "apiKey",
            "api_key",
            "token",
            "clientSecret",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["name", "image", "keyboard", "replicas"] {
            assert!(!is_secret_key(k), "{k}");
        }
        // Case-insensitive, at the start, middle and end, and only whole words.
        for k in [
            "PASSWORD",
            "x_Passwd",
            "PrivateKey",
            "my-SECRET",
            "oauthToken",
            "Credentials",
            "monKey",
            "tokens",
            "keys",
            "apiKeys",
            "ssh_keys",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "",
            "k",
            "ke",
            "kez",
            "toke",
            "tokem",
            "secre",
            "passwor",
            "privat",
            "credentia",
            "pass_word",
            "keysym",
            "key",
            "KEY",
            "secretName",
            "secretKeyRef",
            "tokenPath",
            "ssl_keyfile",
            "passwordFile",
            "K\u{e9}y",
            "@ASSWORD",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn bad_rules_name_the_problem() {
        let err = Rules::from_toml("[[rule]]\npath = \"/a\"\nseverity = \"loud\"\n", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("r.toml: invalid rules: 3:"), "{err}");
        let err = Rules::from_toml("[[rule]]\npath = \"a\"\n", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must start with '/'"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 4096,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5e9_7a7),
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// The prefix/suffix check for patterns with at most one `**`
        /// decides as the general (backtracking) matcher does.
        #[test]
        fn patterns_match_as_the_general_matcher_does(
            segs in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", "0", "*", "**"]), 0..6),
            path in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", "0", "1"]), 0..8),
        ) {
            let text = if segs.is_empty() { String::new() } else { format!("/{}", segs.join("/")) };
            let p = PathPattern::parse(&text).unwrap();
            proptest::prop_assert_eq!(p.matches(&path), p.matches_general(&path), "{} {:?}", text, path);
        }

        /// Leaving out the rules that cannot match a path that long
        /// (`by_length`) resolves as trying every rule does.
        #[test]
        fn rules_left_out_by_length_cannot_match(
            pats in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::sample::select(vec!["a", "b", "*", "**"]), 0..5),
                0..70),
            path in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", "0"]), 0..8),
        ) {
            let mut rules = Rules::new();
            for (i, segs) in pats.iter().enumerate() {
                let text = if segs.is_empty() { String::new() } else { format!("/{}", segs.join("/")) };
                let rule = Rule::new(&text).unwrap();
                rules = rules.with_rule(match i % 3 {
                    0 => rule.severity(Severity::Critical),
                    1 => rule.secret(),
                    _ => rule.key(&[format!("k{i}")]),
                });
            }
            let by_length = rules.by_length();
            let among = rules.resolve_among(&path, by_length.get(path.len()).copied().unwrap_or(u64::MAX));
            proptest::prop_assert_eq!(format!("{among:?}"), format!("{:?}", rules.resolve_ref(&path)));
        }
    }
}
