//! The differ: walks DESIRED and LIVE together, matches lists by key (or by
//! an LCS alignment when no key exists), applies rules and records each
//! difference and the RFC 6902 operations that turn LIVE into DESIRED.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};

use crate::arena::Tree;
use crate::patch::PatchOp;
use crate::rules::{KeySpec, Res, Rules, Severity, is_secret_key, is_secret_key_bytes};
use crate::tree::{Node, Str, Value, escape_token};
use crate::view::{ListView, ObjView, Scalar, Shape, View};

/// The text every masked value is replaced by.
pub const MASK: &str = "***";

/// Cells above which the LCS of an unkeyed list falls back from the exact
/// quadratic table to a greedy alignment.
const LCS_TABLE_LIMIT: usize = 4_000_000;

/// What kind of difference LIVE shows against DESIRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Present in LIVE only.
    Added,
    /// Present in DESIRED only (missing from LIVE).
    Removed,
    /// Same type, different value.
    Changed,
    /// The same element sits at another position of an unkeyed list.
    Moved,
    /// Different types (a string against a number, an object against a list).
    TypeChanged,
}

impl Kind {
    /// The kebab-case name reports print.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Added => "added",
            Kind::Removed => "removed",
            Kind::Changed => "changed",
            Kind::Moved => "moved",
            Kind::TypeChanged => "type-changed",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One difference between DESIRED and LIVE.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Difference {
    /// What differs.
    pub kind: Kind,
    /// JSON Pointer into DESIRED, or into LIVE when the node exists only there.
    pub path: String,
    /// JSON Pointer into LIVE when the node exists there.
    pub live_path: Option<String>,
    /// A path for people: keyed list elements are shown as `[name=web]`.
    pub label: String,
    /// The DESIRED value (masked when secret), with its position.
    pub desired: Option<Node>,
    /// The LIVE value (masked when secret), with its position.
    pub live: Option<Node>,
    /// How much it matters.
    pub severity: Severity,
    /// Whether the values were masked.
    pub secret: bool,
}

/// The result of a comparison: the differences and the remediation patch.
///
/// ```
/// use rollgate_drift::{Format, Limits, Rules, Differ, Kind, load};
/// let desired = load(r#"{"containers": [{"name": "web", "image": "web:2"}, {"name": "log", "image": "log:1"}]}"#,
///     Format::Json, "desired.json", &Limits::default())?;
/// let live = load("containers:\n- name: log\n  image: log:1\n- name: web\n  image: web:1\n",
///     Format::Yaml, "live.yaml", &Limits::default())?;
/// let report = Differ::new(Rules::new()).diff(&desired, &live);
/// assert_eq!(report.differences().len(), 1);
/// let d = &report.differences()[0];
/// assert_eq!((d.kind, d.path.as_str(), d.label.as_str()), (Kind::Changed, "/containers/0/image", "/containers[name=web]/image"));
/// assert_eq!(d.live.as_ref().map(|n| n.pos.line), Some(5));
/// assert_eq!(report.patch().to_json(), r#"[{"op":"replace","path":"/containers/1/image","value":"web:2"}]"#);
/// # Ok::<(), rollgate_drift::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    differences: Vec<Difference>,
    patch: crate::patch::Patch,
    withheld: Vec<String>,
    withheld_labels: Vec<String>,
    parity: bool,
}

impl Report {
    /// The differences in document order.
    #[must_use]
    pub fn differences(&self) -> &[Difference] {
        &self.differences
    }

    /// Whether LIVE drifted from DESIRED.
    #[must_use]
    pub fn has_drift(&self) -> bool {
        !self.differences.is_empty()
    }

    /// The RFC 6902 patch that turns LIVE into DESIRED, less the operations
    /// that would write a secret (see [`Report::withheld`]): a patch never
    /// carries a secret, masked or not, so applying it never overwrites one
    /// with `***`.
    #[must_use]
    pub fn patch(&self) -> &crate::patch::Patch {
        &self.patch
    }

    /// The DESIRED paths (JSON Pointers, as in [`Difference::path`]) of the
    /// values left out of [`Report::patch`] because they hold a secret:
    /// apply those from the secret store. An unkeyed list in which a secret
    /// only moved is left out whole (removing it to put it back would need
    /// the secret), under the list's path.
    ///
    /// ```
    /// use rollgate_drift::{Format, Limits, Differ, load_tree};
    /// let limits = Limits::default();
    /// let desired = load_tree(r#"{"db": {"host": "db-2", "password": "new"}}"#, Format::Json, "d.json", &limits)?;
    /// let live = load_tree(r#"{"db": {"host": "db-1", "password": "old"}}"#, Format::Json, "l.json", &limits)?;
    /// let report = Differ::default().diff_trees(&desired, &live);
    /// assert_eq!(report.differences().len(), 2);
    /// assert_eq!(report.patch().to_json(), r#"[{"op":"replace","path":"/db/host","value":"db-2"}]"#);
    /// assert_eq!(report.withheld(), ["/db/password"]);
    /// # Ok::<(), rollgate_drift::Error>(())
    /// ```
    #[must_use]
    pub fn withheld(&self) -> &[String] {
        &self.withheld
    }

    /// The same places as [`Report::withheld`], in the same order, as
    /// labels for people: keyed list elements shown by their key
    /// (`/containers[name=web]/env[name=DB_PASSWORD]/value`), which name
    /// the place in LIVE as well as in DESIRED.
    #[must_use]
    pub fn withheld_labels(&self) -> &[String] {
        &self.withheld_labels
    }

    /// The number of differences of each severity.
    #[must_use]
    pub fn counts(&self) -> BTreeMap<Severity, usize> {
        let mut out = BTreeMap::new();
        for d in &self.differences {
            *out.entry(d.severity).or_insert(0) += 1;
        }
        out
    }

    /// Whether this is a structure-only (parity) comparison.
    #[must_use]
    pub fn is_parity(&self) -> bool {
        self.parity
    }

    /// The highest severity found, if any.
    #[must_use]
    pub fn max_severity(&self) -> Option<Severity> {
        self.differences.iter().map(|d| d.severity).max()
    }
}

/// Compares trees under a set of rules.
#[derive(Debug, Clone, Default)]
pub struct Differ {
    rules: Rules,
}

impl Differ {
    /// A differ applying `rules`.
    #[must_use]
    pub fn new(rules: Rules) -> Self {
        Self { rules }
    }

    /// The rules in force.
    #[must_use]
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Compares DESIRED with LIVE.
    #[must_use]
    pub fn diff(&self, desired: &Node, live: &Node) -> Report {
        self.run(desired, live, false)
    }

    /// Structure-only comparison (environment parity): the same keys, list
    /// entries and types are required; scalar values may differ.
    ///
    /// ```
    /// use rollgate_drift::{Differ, Format, Limits, Rules, Kind, load};
    /// let staging = load("db: {host: a, port: 5432}\nreplicas: 1\n", Format::Yaml, "staging.yaml", &Limits::default())?;
    /// let prod = load("db: {host: b, port: \"5432\"}\nreplicas: 9\ncache: true\n", Format::Yaml, "prod.yaml", &Limits::default())?;
    /// let report = Differ::new(Rules::new()).parity(&staging, &prod);
    /// let found: Vec<_> = report.differences().iter().map(|d| (d.kind, d.path.as_str())).collect();
    /// assert_eq!(found, [(Kind::Added, "/cache"), (Kind::TypeChanged, "/db/port")]);
    /// # Ok::<(), rollgate_drift::Error>(())
    /// ```
    #[must_use]
    pub fn parity(&self, a: &Node, b: &Node) -> Report {
        self.run(a, b, true)
    }

    /// Compares DESIRED with LIVE loaded as compact trees ([`crate::load_tree`],
    /// [`crate::load_tree_file`], or [`Tree::from_node`]): the same report
    /// and patch as [`Differ::diff`] on the owned trees, faster and in about
    /// half the memory on large documents.
    ///
    /// ```
    /// use rollgate_drift::{Differ, Format, Kind, Limits, load_tree};
    /// let limits = Limits::default();
    /// let desired = load_tree(r#"{"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}"#, Format::Json, "d.json", &limits)?;
    /// let live = load_tree(r#"{"env": [{"name": "B", "value": "3"}, {"name": "A", "value": "1"}]}"#, Format::Json, "l.json", &limits)?;
    /// let report = Differ::default().diff_trees(&desired, &live);
    /// let found: Vec<_> = report.differences().iter().map(|d| (d.kind, d.path.as_str())).collect();
    /// assert_eq!(found, [(Kind::Changed, "/env/1/value")]);
    /// # Ok::<(), rollgate_drift::Error>(())
    /// ```
    #[must_use]
    pub fn diff_trees(&self, desired: &Tree, live: &Tree) -> Report {
        self.run(desired.root(), live.root(), false)
    }

    /// [`Differ::parity`] on compact trees.
    #[must_use]
    pub fn parity_trees(&self, a: &Tree, b: &Tree) -> Report {
        self.run(a.root(), b.root(), true)
    }

    fn run<'a, V: View<'a>>(&'a self, desired: V, live: V, structure: bool) -> Report {
        let mut w = Walk::<'a, V> {
            rules: &self.rules,
            plain: self.rules.is_empty(),
            structure,
            path: Vec::new(),
            scratch: Scratch::default(),
            by_length: self.rules.by_length().into(),
            diffs: Vec::new(),
            ops: Vec::new(),
            withheld: Vec::new(),
            withheld_labels: Vec::new(),
            wrote_mask: std::cell::Cell::new(false),
            severity: None,
            fork: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
        };
        w.node(desired, live, false);
        Report {
            differences: w.diffs,
            patch: crate::patch::Patch::new(w.ops),
            withheld: w.withheld,
            withheld_labels: w.withheld_labels,
            parity: structure,
        }
    }
}

/// Compares DESIRED with LIVE with no rules (secret-looking keys masked).
#[must_use]
pub fn diff(desired: &Node, live: &Node) -> Report {
    Differ::default().diff(desired, live)
}

/// One step of a path: a key's bytes as the document holds them (no UTF-8
/// check on the way down) or an index (no decimal text on the way down).
/// Both become text only for a report, a patch or a rule's literal.
#[derive(Debug, Clone, Copy)]
enum Tok<'a> {
    Key(&'a [u8]),
    Idx(usize),
}

impl Tok<'_> {
    /// The step as text (pointers escape it).
    fn text(self) -> String {
        match self {
            Tok::Key(k) => key_text(k).into_owned(),
            Tok::Idx(i) => i.to_string(),
        }
    }
}

impl crate::rules::PathToken for Tok<'_> {
    #[inline]
    fn is(&self, lit: &str) -> bool {
        match *self {
            Tok::Key(k) => k == lit.as_bytes(),
            // Most literals are names: no decimal text to build.
            Tok::Idx(_) if !lit.as_bytes().first().is_some_and(u8::is_ascii_digit) => false,
            Tok::Idx(i) => index_is(i, lit),
        }
    }
}

/// Whether `lit` is the decimal text of `i` (without allocating).
#[cold]
fn index_is(i: usize, lit: &str) -> bool {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut n = i;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..] == lit.as_bytes()
}

/// A key's text. Every document's keys are UTF-8 (the loaders check it), so
/// this borrows; the walk itself carries keys as bytes.
fn key_text(k: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(k)
}

/// One step of the walk, on both sides at once: the DESIRED and LIVE
/// path tokens and the step of the label people read.
#[derive(Debug, Clone, Copy)]
enum Step<'a, V> {
    /// A key, the same on both sides.
    Key(&'a [u8]),
    /// The key `value` of the objects `(DESIRED, LIVE)`: secret when a
    /// sibling names a secret (see [`Walk::keys_secret`]).
    Value(V, V),
    /// Element `i` of DESIRED's list and `j` of LIVE's, labelled `/i`.
    Idx(usize, usize),
    /// Elements `i` and `j` matched by key, labelled by the element's key
    /// (formatted only when a difference is recorded).
    Sel(usize, usize, V, &'a KeySpec),
}

impl<'a, V> Step<'a, V> {
    /// The step in DESIRED.
    #[inline]
    fn desired(&self) -> Tok<'a> {
        match *self {
            Step::Key(k) => Tok::Key(k),
            Step::Value(..) => Tok::Key(b"value"),
            Step::Idx(i, _) | Step::Sel(i, ..) => Tok::Idx(i),
        }
    }

    /// The step in LIVE.
    #[inline]
    fn live(&self) -> Tok<'a> {
        match *self {
            Step::Key(k) => Tok::Key(k),
            Step::Value(..) => Tok::Key(b"value"),
            Step::Idx(_, j) | Step::Sel(_, j, ..) => Tok::Idx(j),
        }
    }

    /// The step on `side`.
    #[inline]
    fn on(&self, side: Side) -> Tok<'a> {
        match side {
            Side::Desired => self.desired(),
            Side::Live => self.live(),
        }
    }
}

impl<'a, V: View<'a>> Step<'a, V> {
    /// Whether this step's key makes what lies below it secret by name: a
    /// secret-looking key, or `value` beside a `name`/`key` naming a secret
    /// (Kubernetes env).
    fn names_secret(&self) -> bool {
        match self {
            Step::Key(k) => is_secret_key_bytes(k),
            // `value` itself is no secret-looking key.
            Step::Value(d, l) => names_secret_in(*d) || names_secret_in(*l),
            Step::Idx(..) | Step::Sel(..) => false,
        }
    }
}

/// Rules see DESIRED's path.
impl<V> crate::rules::PathToken for Step<'_, V> {
    #[inline]
    fn is(&self, lit: &str) -> bool {
        self.desired().is(lit)
    }
}

/// The JSON Pointer of `path` on `side`, plus `extra` (an index) if given.
fn pointer<V>(path: &[Step<'_, V>], side: Side, extra: Option<usize>) -> String {
    let mut s = String::new();
    for t in path.iter().map(|t| t.on(side)).chain(extra.map(Tok::Idx)) {
        s.push('/');
        match t {
            Tok::Key(k) => s.push_str(&escape_token(&key_text(k))),
            Tok::Idx(i) => {
                use std::fmt::Write as _;
                let _ = write!(s, "{i}");
            }
        }
    }
    s
}

fn label<'a, V: View<'a>>(
    path: &[Step<'a, V>],
    masked: impl Fn(usize, &[String]) -> bool,
) -> String {
    let mut s = String::new();
    for (at, t) in path.iter().enumerate() {
        match t {
            Step::Key(k) => {
                s.push('/');
                s.push_str(&escape_token(&key_text(k)));
            }
            Step::Value(..) => s.push_str("/value"),
            Step::Idx(i, _) => {
                s.push('/');
                s.push_str(&i.to_string());
            }
            Step::Sel(_, _, node, spec) => {
                s.push_str(&selector(spec, *node, |field| masked(at, field)));
            }
        }
    }
    if s.starts_with('/') {
        s
    } else {
        format!("/{s}")
    }
}

struct Walk<'a, V> {
    rules: &'a Rules,
    plain: bool,
    structure: bool,
    /// Where the walk is, on both sides.
    path: Vec<Step<'a, V>>,
    /// Buffers of keyed lists already compared, for the next ones.
    scratch: Scratch,
    /// The rules that can match a path of each length (`Rules::by_length`).
    by_length: std::sync::Arc<[u64]>,
    diffs: Vec<Difference>,
    ops: Vec<PatchOp>,
    /// DESIRED paths of the values left out of the patch because they would
    /// carry a secret (see [`Report::withheld`]).
    withheld: Vec<String>,
    /// Their labels (see [`Report::withheld_labels`]).
    withheld_labels: Vec<String>,
    /// Set when [`Walk::masked`] put a [`MASK`] into the value it built.
    wrote_mask: std::cell::Cell<bool>,
    /// Severity set by a rule on an ancestor.
    severity: Option<Severity>,
    /// Whether a large keyed list may be split across two threads (only the
    /// outermost one is, and only when the machine has two cores or more).
    fork: bool,
}

/// Buffers of keyed lists already compared, reused by the next ones (a walk
/// meets tens of thousands of small keyed lists; nested lists take their
/// own).
#[derive(Default)]
struct Scratch {
    orders: Vec<Vec<(u128, usize)>>,
    partners: Vec<Vec<usize>>,
    taken: Vec<Vec<bool>>,
}

/// Matched pairs a keyed list needs before its comparison is split across two
/// threads: below this the thread costs more than it saves.
const FORK_MIN_PAIRS: usize = 512;

/// Which side(s) of the comparison a node exists on, for path bookkeeping.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Desired,
    Live,
}

impl<'a, V: View<'a>> Walk<'a, V> {
    /// A walk at the same place with no findings yet, for another thread.
    fn branch(&self) -> Self {
        Walk {
            rules: self.rules,
            plain: self.plain,
            structure: self.structure,
            path: self.path.clone(),
            scratch: Scratch::default(),
            by_length: self.by_length.clone(),
            diffs: Vec::new(),
            ops: Vec::new(),
            withheld: Vec::new(),
            withheld_labels: Vec::new(),
            wrote_mask: std::cell::Cell::new(false),
            severity: self.severity,
            fork: false,
        }
    }

    /// Compares the matched pairs `(i, partner[i])` of a keyed list, in `i`
    /// order. Findings come out in the same order whether or not the work is
    /// split across two threads.
    fn matched(
        &mut self,
        da: V::List,
        la: V::List,
        spec: &'a KeySpec,
        partner: &[usize],
        pairs: usize,
        secret: bool,
    ) {
        if self.fork && pairs >= FORK_MIN_PAIRS {
            let mid = partner.len() / 2;
            let mut second = self.branch();
            self.fork = false;
            std::thread::scope(|scope| {
                let job = scope.spawn(|| {
                    second.matched_range(da, la, spec, partner, mid, secret);
                    second
                });
                self.matched_range(da, la, spec, &partner[..mid], 0, secret);
                match job.join() {
                    Ok(second) => {
                        self.diffs.extend(second.diffs);
                        self.ops.extend(second.ops);
                        self.withheld.extend(second.withheld);
                        self.withheld_labels.extend(second.withheld_labels);
                    }
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            });
            self.fork = true;
        } else {
            self.matched_range(da, la, spec, partner, 0, secret);
        }
    }

    fn matched_range(
        &mut self,
        da: V::List,
        la: V::List,
        spec: &'a KeySpec,
        partner: &[usize],
        from: usize,
        secret: bool,
    ) {
        for (i, &j) in partner.iter().enumerate().skip(from) {
            if j == usize::MAX {
                continue;
            }
            self.path.push(Step::Sel(i, j, da.at(i), spec));
            self.node(da.at(i), la.at(j), secret);
            self.pop();
        }
    }

    fn tokens(&self, side: Side) -> Vec<String> {
        self.path.iter().map(|t| t.on(side).text()).collect()
    }

    /// What the rules say at the current path (borrowed from them: nothing
    /// is built or dropped per node).
    fn resolve(&self, side: Side) -> Res<'a> {
        let inherited = self.severity.unwrap_or(self.rules.default_severity());
        if self.plain {
            // No rules: the same answer everywhere.
            return Res::plain(inherited);
        }
        let mut res = match side {
            Side::Desired => {
                let candidates = self.by_length.get(self.path.len()).copied();
                self.rules
                    .resolve_among(&self.path, candidates.unwrap_or(u64::MAX))
            }
            // Only for nodes present in LIVE alone: rare.
            Side::Live => {
                let live: Vec<Tok<'_>> = self.path.iter().map(Step::live).collect();
                self.rules.resolve_ref(&live)
            }
        };
        if !res.severity_set {
            res.severity = inherited;
        }
        res
    }

    fn key_secret(&self, key: &str) -> bool {
        self.rules.masks_secret_keys() && is_secret_key(key)
    }

    /// Whether a key on the current path makes it secret: a secret-looking
    /// key, or `value` beside a `name`/`key` naming a secret (Kubernetes
    /// env). Asked only when a difference is recorded or a value printed, so
    /// the walk tests no key it merely passes; a node is secret when any
    /// ancestor's key is, so the answer is the same as testing each key on
    /// the way down.
    fn keys_secret(&self) -> bool {
        self.rules.masks_secret_keys()
            && self.path.iter().any(Step::names_secret)
            // A rule's `secret = false` here (rare: asked last).
            && (self.plain || !self.resolve(Side::Desired).not_secret)
    }

    /// The current path for people, list keys masked where secret.
    fn label(&self) -> String {
        label(&self.path, |at, field| self.selector_secret(at, field))
    }

    /// Whether the key `field` of the list element at `self.path[at]` is to
    /// be masked in labels: its name looks secret, a key above the list
    /// does, or a rule makes the list, the element or the field secret.
    fn selector_secret(&self, at: usize, field: &[String]) -> bool {
        let named = self.rules.masks_secret_keys()
            && (field.last().is_some_and(|f| is_secret_key(f))
                || self.path[..at].iter().any(Step::names_secret));
        if named || self.plain {
            return named;
        }
        let mut toks: Vec<Tok<'_>> = self.path[..=at].iter().map(Step::desired).collect();
        let by_rule =
            |toks: &[Tok<'_>]| (1..=toks.len()).any(|n| self.rules.resolve_ref(&toks[..n]).secret);
        if by_rule(&toks) {
            return true;
        }
        for part in field {
            toks.push(Tok::Key(part.as_bytes()));
        }
        self.rules.resolve_ref(&toks).secret
    }

    /// Whether a rule says `secret = false` for `key` under the path `toks`
    /// (a secret-looking name that holds no secret).
    fn rule_unmasks(&self, toks: &mut Vec<String>, key: &str) -> bool {
        if self.plain {
            return false;
        }
        toks.push(key.to_owned());
        let unmasked = self.rules.resolve_ref(toks).not_secret;
        toks.pop();
        unmasked
    }

    /// A copy of `node` fit for printing: secret parts replaced by [`MASK`]
    /// (`secret`: the whole value is, by a rule or a secret-looking key on
    /// the path, see [`Walk::keys_secret`]).
    fn masked(&self, node: V, secret: bool, side: Side) -> Node {
        if secret {
            self.wrote_mask.set(true);
            return Node::at(Value::String(Str::const_new(MASK)), node.pos());
        }
        let mut toks = self.tokens(side);
        self.mask_rec(node, &mut toks)
    }

    fn mask_rec<W: View<'a>>(&self, node: W, toks: &mut Vec<String>) -> Node {
        let rule_secret = !self.plain && self.rules.resolve_ref(toks).secret;
        if rule_secret {
            self.wrote_mask.set(true);
            return Node::at(Value::String(Str::const_new(MASK)), node.pos());
        }
        match node.shape() {
            Shape::Object(map) => {
                let mut out = crate::tree::Map::new();
                let secret_kind = self.rules.masks_secret_keys() && is_kubernetes_secret(map);
                for k in 0..map.len() {
                    let (key, child) = map.entry(k);
                    let value_secret =
                        key == "value" && self.rules.masks_secret_keys() && names_secret(map);
                    let kube = secret_kind && (key == "data" || key == "stringData");
                    let by_name = (self.key_secret(key) || value_secret)
                        && !is_flag(child)
                        && !self.rule_unmasks(toks, key);
                    let child = if kube || by_name {
                        self.wrote_mask.set(true);
                        Node::at(Value::String(Str::const_new(MASK)), child.pos())
                    } else {
                        toks.push(key.to_owned());
                        let c = self.mask_rec(child, toks);
                        toks.pop();
                        c
                    };
                    out.insert(key, child);
                }
                Node::at(Value::Object(out), node.pos())
            }
            Shape::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in 0..items.len() {
                    toks.push(i.to_string());
                    out.push(self.mask_rec(items.at(i), toks));
                    toks.pop();
                }
                Node::at(Value::Array(out), node.pos())
            }
            Shape::Scalar(_) => node.to_node(),
        }
    }

    fn record(
        &mut self,
        kind: Kind,
        desired: Option<V>,
        live: Option<V>,
        severity: Severity,
        secret: bool,
    ) {
        let by_name = !secret && self.keys_secret();
        let secret =
            secret || (by_name && [desired, live].into_iter().flatten().any(|n| !is_flag(n)));
        let desired_path = pointer(&self.path, Side::Desired, None);
        let live_path = pointer(&self.path, Side::Live, None);
        let path = if desired.is_some() {
            desired_path
        } else {
            live_path.clone()
        };
        let d = desired.map(|n| self.masked(n, secret, Side::Desired));
        let l = live.map(|n| self.masked(n, secret, Side::Live));
        self.diffs.push(Difference {
            kind,
            path,
            live_path: live.map(|_| live_path),
            label: self.label(),
            desired: d,
            live: l,
            severity,
            secret,
        });
    }

    fn node(&mut self, d: V, l: V, inherited_secret: bool) {
        let res = self.resolve(Side::Desired);
        if res.ignore {
            return;
        }
        // A severity a rule sets holds for the whole subtree.
        let saved = self.severity;
        if res.severity_set {
            self.severity = Some(res.severity);
        }
        self.compare(d, l, inherited_secret, &res);
        self.severity = saved;
    }

    fn compare(&mut self, d: V, l: V, inherited_secret: bool, res: &Res<'a>) {
        let secret = inherited_secret || res.secret;
        if res.normalise.is_empty() && d.quick_equal(l) {
            // Equal scalars: nothing to report in either mode.
            return;
        }
        match (d.shape(), l.shape()) {
            (Shape::Object(dm), Shape::Object(lm)) => self.object(d, l, dm, lm, secret),
            (Shape::Array(da), Shape::Array(la)) => self.array(da, la, res, secret),
            (Shape::Scalar(dv), Shape::Scalar(lv)) => self.scalars(d, l, dv, lv, res, secret),
            _ => {
                self.record(Kind::TypeChanged, Some(d), Some(l), res.severity, secret);
                if !self.structure {
                    self.replace(d, secret);
                }
            }
        }
    }

    /// Two scalars that are not plainly equal (out of line: the walk's
    /// recursion stays small).
    #[cold]
    #[inline(never)]
    fn scalars(&mut self, d: V, l: V, dv: Scalar<'a>, lv: Scalar<'a>, res: &Res<'a>, secret: bool) {
        let (same_type, equal) = if res.normalise.is_empty() {
            (
                std::mem::discriminant(&dv) == std::mem::discriminant(&lv),
                dv == lv,
            )
        } else {
            normalised_eq(dv, lv, res.normalise)
        };
        if self.structure {
            if !same_type {
                self.record(Kind::TypeChanged, Some(d), Some(l), res.severity, secret);
            }
            return;
        }
        if equal {
            return;
        }
        let kind = if same_type {
            Kind::Changed
        } else {
            Kind::TypeChanged
        };
        self.record(kind, Some(d), Some(l), res.severity, secret);
        self.replace(d, secret);
    }

    fn replace(&mut self, d: V, secret: bool) {
        if let Some(value) = self.patch_value(d, secret) {
            let path = pointer(&self.path, Side::Live, None);
            self.ops.push(PatchOp::Replace { path, value });
        }
    }

    /// The value a patch operation writes for DESIRED's `d` at the current
    /// path, or `None` when it would carry a secret: then the DESIRED path is
    /// recorded as withheld instead (a patch that wrote `***` would
    /// overwrite the real secret when applied).
    fn patch_value(&mut self, d: V, secret: bool) -> Option<Node> {
        let value = self.secret_free(d, secret);
        if value.is_none() {
            self.withhold();
        }
        value
    }

    /// Records the current path as withheld from the patch.
    fn withhold(&mut self) {
        self.withheld.push(pointer(&self.path, Side::Desired, None));
        let label = self.label();
        self.withheld_labels.push(label);
    }

    /// DESIRED's `d` as a patch may carry it: `None` when any part is secret.
    fn secret_free(&self, d: V, secret: bool) -> Option<Node> {
        self.wrote_mask.set(false);
        let secret = secret || (!is_flag(d) && self.keys_secret());
        let value = self.masked(d, secret, Side::Desired);
        (!self.wrote_mask.get()).then_some(value)
    }

    /// `secret` is the secrecy rules set; secret-looking keys are tested
    /// only when a difference is found ([`Walk::keys_secret`]).
    fn object(&mut self, d: V, l: V, dm: V::Obj, lm: V::Obj, secret: bool) {
        let (dn, ln) = (dm.len(), lm.len());
        // A Kubernetes Secret's `data` and `stringData` are secret, whatever
        // their keys are called.
        // (Asked only at those two keys: the walk meets millions of objects.)
        let masks = self.rules.masks_secret_keys();
        let secret_at = |key: &[u8]| {
            secret
                || ((key == b"data" || key == b"stringData")
                    && masks
                    && (is_kubernetes_secret(dm) || is_kubernetes_secret(lm)))
        };
        let (mut di, mut li) = (0, 0);
        // Equal scalars with no rules: nothing to report (as `compare` would
        // find), so no step into them.
        let skip_equal = self.plain;
        // Keys are compared and taken into the path as bytes (the order
        // objects are sorted in); they become text only in reports.
        loop {
            let order = match (di < dn, li < ln) {
                (false, false) => break,
                (true, false) => std::cmp::Ordering::Less,
                (false, true) => std::cmp::Ordering::Greater,
                (true, true) => dm.key_cmp(di, lm, li),
            };
            match order {
                std::cmp::Ordering::Equal => {
                    let (dv, lv) = (dm.value(di), lm.value(li));
                    if !(skip_equal && dv.quick_equal(lv)) {
                        self.push_key(dm.key_bytes(di), d, l);
                        self.node(dv, lv, secret_at(dm.key_bytes(di)));
                        self.pop();
                    }
                    di += 1;
                    li += 1;
                }
                std::cmp::Ordering::Less => {
                    self.push_key(dm.key_bytes(di), d, l);
                    let _ = self.only_desired(dm.value(di), secret_at(dm.key_bytes(di)), None);
                    self.pop();
                    di += 1;
                }
                std::cmp::Ordering::Greater => {
                    self.push_key(lm.key_bytes(li), d, l);
                    self.only_live(lm.value(li), secret_at(lm.key_bytes(li)));
                    self.pop();
                    li += 1;
                }
            }
        }
    }

    /// Steps into `key` of the objects `d` and `l`.
    fn push_key(&mut self, key: &'a [u8], d: V, l: V) {
        self.path.push(if key == b"value" {
            Step::Value(d, l)
        } else {
            Step::Key(key)
        });
    }

    fn pop(&mut self) {
        self.path.pop();
    }

    /// A node missing from LIVE. `insert_at` is the live path to add it at
    /// (defaults to the current live path).
    /// Returns whether a patch operation was emitted.
    fn only_desired(&mut self, d: V, secret: bool, insert_at: Option<String>) -> bool {
        let res = self.resolve(Side::Desired);
        if res.ignore || equals_default(&res, d) {
            return false;
        }
        let secret = secret || res.secret;
        self.record(Kind::Removed, Some(d), None, res.severity, secret);
        if self.structure {
            return false;
        }
        match self.patch_value(d, secret) {
            Some(value) => {
                let path = insert_at.unwrap_or_else(|| pointer(&self.path, Side::Live, None));
                self.ops.push(PatchOp::Add { path, value });
                true
            }
            None => false,
        }
    }

    /// A node present only in LIVE. The patch removal is emitted by the caller
    /// for list elements (they must go in descending order).
    fn only_live(&mut self, l: V, secret: bool) {
        let res = self.resolve(Side::Live);
        if res.ignore || equals_default(&res, l) {
            return;
        }
        let secret = secret || res.secret;
        self.record(Kind::Added, None, Some(l), res.severity, secret);
        if !self.structure && matches!(self.path.last(), Some(Step::Key(_) | Step::Value(..))) {
            self.ops.push(PatchOp::Remove {
                path: pointer(&self.path, Side::Live, None),
            });
        }
    }

    fn array(&mut self, da: V::List, la: V::List, res: &Res<'a>, secret: bool) {
        if let Some((spec, dk, lk)) = keyed(res.key, da, la, &mut self.scratch.orders) {
            self.keyed(da, la, spec, &dk, &lk, secret);
            self.scratch.orders.extend([dk.order, lk.order]);
        } else if self.structure {
            for i in 0..da.len().min(la.len()) {
                self.push_idx(i, i);
                self.node(da.at(i), la.at(i), secret);
                self.pop();
            }
        } else {
            self.aligned(da, la, secret);
        }
    }

    fn push_idx(&mut self, i: usize, j: usize) {
        self.path.push(Step::Idx(i, j));
    }

    fn keyed(
        &mut self,
        da: V::List,
        la: V::List,
        spec: &'a KeySpec,
        dk: &KeyTable<'_, V::List>,
        lk: &KeyTable<'_, V::List>,
        secret: bool,
    ) {
        let (partner, taken, pairs) = dk.pair(
            lk,
            self.scratch.partners.pop().unwrap_or_default(),
            self.scratch.taken.pop().unwrap_or_default(),
        );
        self.matched(da, la, spec, &partner, pairs, secret);
        // Nearly always every element has its partner: no scan for none.
        let missing: Vec<usize> = if pairs == da.len() {
            Vec::new()
        } else {
            (0..da.len())
                .filter(|&i| partner[i] == usize::MAX)
                .collect()
        };
        let extra: Vec<usize> = if pairs == la.len() {
            Vec::new()
        } else {
            (0..la.len()).filter(|&j| !taken[j]).collect()
        };
        self.scratch.partners.push(partner);
        self.scratch.taken.push(taken);
        for &j in &extra {
            // Reported from LIVE's side.
            self.path.push(Step::Sel(j, j, la.at(j), spec));
            self.only_live(la.at(j), secret);
            self.pop();
        }
        if !self.structure {
            for &j in extra.iter().rev() {
                let path = pointer(&self.path, Side::Live, Some(j));
                self.ops.push(PatchOp::Remove { path });
            }
        }
        // Appended after LIVE's kept elements; an ignored element adds nothing,
        // so the next one takes its place.
        let mut len = la.len() - extra.len();
        for i in missing {
            self.path.push(Step::Sel(i, len, da.at(i), spec));
            let at = pointer(&self.path, Side::Live, None);
            if self.only_desired(da.at(i), secret, Some(at)) {
                len += 1;
            }
            self.pop();
        }
    }

    fn aligned(&mut self, da: V::List, la: V::List, secret: bool) {
        let hd: Vec<u64> = (0..da.len()).map(|i| hash_view(da.at(i))).collect();
        let hl: Vec<u64> = (0..la.len()).map(|j| hash_view(la.at(j))).collect();
        let anchors = lcs(&hd, &hl);
        // Kept pairs: LCS anchors plus positional pairs inside each gap.
        let mut kept: Vec<(usize, usize, bool)> = Vec::new();
        let mut d_only = Vec::new();
        let mut l_only = Vec::new();
        let (mut pi, mut pj) = (0, 0);
        for &(ai, aj) in anchors.iter().chain(std::iter::once(&(da.len(), la.len()))) {
            let gd = ai - pi;
            let gl = aj - pj;
            let paired = gd.min(gl);
            for k in 0..paired {
                kept.push((pi + k, pj + k, false));
            }
            d_only.extend(pi + paired..ai);
            l_only.extend(pj + paired..aj);
            if ai < da.len() {
                kept.push((ai, aj, true));
            }
            pi = ai + 1;
            pj = aj + 1;
        }
        // Elements that only moved: equal content on both unmatched sides.
        let mut moved_from: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for &j in &l_only {
            moved_from.entry(hl[j]).or_default().push(j);
        }
        let mut moved_live = vec![false; la.len()];
        let mut moved_desired = vec![false; da.len()];
        for &i in &d_only {
            if let Some(js) = moved_from.get_mut(&hd[i])
                && let Some(pos) = js
                    .iter()
                    .position(|&j| crate::view::equal(la.at(j), da.at(i)))
            {
                let j = js.remove(pos);
                moved_live[j] = true;
                moved_desired[i] = true;
                if !self.structure {
                    self.push_idx(i, j);
                    let res = self.resolve(Side::Desired);
                    if !res.ignore {
                        let s = secret || res.secret;
                        self.record(Kind::Moved, Some(da.at(i)), Some(la.at(j)), res.severity, s);
                    }
                    self.pop();
                }
            }
        }
        for &(i, j, anchor) in &kept {
            if anchor && crate::view::equal(da.at(i), la.at(j)) {
                continue;
            }
            self.push_idx(i, j);
            self.node(da.at(i), la.at(j), secret);
            self.pop();
        }
        for &j in &l_only {
            if moved_live[j] {
                continue;
            }
            self.path.push(Step::Idx(j, j));
            self.only_live(la.at(j), secret);
            self.pop();
        }
        for &i in &d_only {
            if moved_desired[i] {
                continue;
            }
            self.push_idx(i, i);
            let res = self.resolve(Side::Desired);
            if !res.ignore {
                let s = secret || res.secret;
                self.record(Kind::Removed, Some(da.at(i)), None, res.severity, s);
            }
            self.pop();
        }
        if self.structure {
            return;
        }
        // Patch: removals in descending order, then insertions ascending at
        // their DESIRED index; the kept elements keep their relative order.
        // An insertion left out (ignored, or withheld for a secret) shifts the
        // later ones down.
        let mut adds = Vec::with_capacity(d_only.len());
        for &i in &d_only {
            self.push_idx(i, i);
            let res = self.resolve(Side::Desired);
            let insert = if res.ignore {
                Insert::Ignored
            } else {
                self.secret_free(da.at(i), secret || res.secret)
                    .map_or(Insert::Secret, Insert::Value)
            };
            self.pop();
            adds.push((i, insert));
        }
        // A secret that only moved would be removed and not put back: the
        // list is then left as it is, whole, for the secret store.
        if adds
            .iter()
            .any(|(i, insert)| moved_desired[*i] && matches!(insert, Insert::Secret))
        {
            self.withhold();
            return;
        }
        for &j in l_only.iter().rev() {
            let path = pointer(&self.path, Side::Live, Some(j));
            self.ops.push(PatchOp::Remove { path });
        }
        let mut skipped = 0;
        for (i, insert) in adds {
            match insert {
                Insert::Value(value) => {
                    self.path.push(Step::Idx(i, i - skipped));
                    let path = pointer(&self.path, Side::Live, None);
                    self.path.pop();
                    self.ops.push(PatchOp::Add { path, value });
                }
                Insert::Secret => {
                    self.push_idx(i, i);
                    self.withhold();
                    self.pop();
                    skipped += 1;
                }
                Insert::Ignored => skipped += 1,
            }
        }
    }
}

/// Whether two scalars have the same type and are equal once normalised
/// (out of line: the walk's recursion stays small).
#[inline(never)]
fn normalised_eq(dv: Scalar<'_>, lv: Scalar<'_>, normalise: &[crate::Normaliser]) -> (bool, bool) {
    if identical(dv, lv) {
        // The same scalar on both sides (nearly always): it is normalised
        // once, normalisers being functions of the value. Compared with
        // itself all the same: a value not equal to itself (NaN) stays a
        // difference.
        let mut a = dv.to_value();
        for n in normalise {
            a = n.apply(&a);
        }
        #[allow(clippy::eq_op)]
        return (true, a == a);
    }
    let mut a = dv.to_value();
    let mut b = lv.to_value();
    for n in normalise {
        a = n.apply(&a);
        b = n.apply(&b);
    }
    (
        std::mem::discriminant(&a) == std::mem::discriminant(&b),
        a == b,
    )
}

/// Whether two scalars are the same, bit for bit (`1` and `1.0`, or `0.0`
/// and `-0.0`, are not).
fn identical(a: Scalar<'_>, b: Scalar<'_>) -> bool {
    use crate::tree::Number;
    match (a, b) {
        (Scalar::Null, Scalar::Null) => true,
        (Scalar::Bool(x), Scalar::Bool(y)) => x == y,
        (Scalar::Number(Number::Int(x)), Scalar::Number(Number::Int(y))) => x == y,
        (Scalar::Number(Number::Float(x)), Scalar::Number(Number::Float(y))) => {
            x.to_bits() == y.to_bits()
        }
        (Scalar::String(x), Scalar::String(y)) => x == y,
        _ => false,
    }
}

/// Whether a value present on one side only equals the declared default
/// (compared after the path's normalisers).
fn equals_default<'a, V: View<'a>>(res: &Res<'_>, node: V) -> bool {
    let Some(default) = res.default else {
        return false;
    };
    let value = node.to_node().value;
    let norm = |v: &Value| res.normalise.iter().fold(v.clone(), |acc, n| n.apply(&acc));
    if res.normalise.is_empty() {
        *default == value
    } else {
        norm(default) == norm(&value)
    }
}

/// [`names_secret`] of a value that is an object (`false` for others).
fn names_secret_in<'a, V: View<'a>>(node: V) -> bool {
    match node.shape() {
        Shape::Object(map) => names_secret(map),
        _ => false,
    }
}

/// What an unkeyed list's patch does with an element only DESIRED has.
enum Insert {
    /// Inserts it.
    Value(Node),
    /// Leaves it out: it holds a secret (withheld).
    Secret,
    /// Leaves it out: a rule ignores it.
    Ignored,
}

/// A boolean or null: never a secret by its key's name alone
/// (`automountServiceAccountToken: false`).
fn is_flag<'a, V: View<'a>>(node: V) -> bool {
    matches!(node.shape(), Shape::Scalar(Scalar::Bool(_) | Scalar::Null))
}

/// Whether an object is a Kubernetes Secret (`kind: Secret`).
fn is_kubernetes_secret<'a, O: ObjView<'a>>(map: O) -> bool {
    map.get("kind")
        .and_then(View::str_bytes)
        .is_some_and(|k| k == b"Secret")
}

/// Whether an object names a secret through its `name` or `key` field.
fn names_secret<'a, O: ObjView<'a>>(map: O) -> bool {
    ["name", "key"].iter().any(|f| {
        map.get(f)
            .and_then(View::str_bytes)
            .is_some_and(crate::rules::is_secret_key_bytes)
    })
}

/// `[name=web]` for an element matched by key.
fn selector<'a, V: View<'a>>(
    spec: &KeySpec,
    node: V,
    masked: impl Fn(&[String]) -> bool,
) -> String {
    let parts: Vec<String> = spec
        .fields()
        .iter()
        .map(|f| {
            // A list keyed by a secret field (by its name, by a rule, or
            // under a secret) would print the secret in every label.
            let secret = masked(f);
            let v = field(node, f).map_or_else(String::new, |n| match n.shape() {
                _ if secret => MASK.to_owned(),
                Shape::Scalar(Scalar::String(s)) => s.to_owned(),
                _ => n.to_node().to_json(),
            });
            let name = if f.len() == 1 {
                f[0].clone()
            } else {
                f.join(".")
            };
            format!("{name}={v}")
        })
        .collect();
    format!("[{}]", parts.join(","))
}

fn field<'a, V: View<'a>>(node: V, path: &[String]) -> Option<V> {
    let mut cur = node;
    for t in path {
        match cur.shape() {
            Shape::Object(m) => cur = m.get(t)?,
            _ => return None,
        }
    }
    Some(cur)
}

/// One scalar of a list key, borrowed from the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum KeyPart<'a> {
    Bool(bool),
    Num(u64),
    Str(&'a [u8]),
}

/// A list element's key: the first field plus any further ones.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a>(KeyPart<'a>, Vec<KeyPart<'a>>);

fn key_part<'a, V: View<'a>>(node: V) -> Option<KeyPart<'a>> {
    if let Some(s) = node.str_bytes() {
        return Some(KeyPart::Str(s));
    }
    match node.shape() {
        Shape::Scalar(Scalar::Number(n)) => {
            let x = n.as_f64();
            Some(KeyPart::Num(if x == 0.0 { 0 } else { x.to_bits() }))
        }
        Shape::Scalar(Scalar::Bool(b)) => Some(KeyPart::Bool(b)),
        _ => None,
    }
}

/// A digest of a key that orders as the key does: `rank(a) < rank(b)`
/// implies `a < b`, and equal ranks mean equal keys when [`exact`] says so
/// (else the keys are compared in full). Big-endian bytes: the part's kind,
/// 14 bytes of payload (a number's bits, a string's first bytes padded with
/// zeros), then a string's length, or [`INEXACT`] for a longer string or a
/// key with further fields. Sorting and pairing keyed lists thus compares
/// integers, not byte strings.
///
/// For strings of at most 14 bytes (padded bytes, then length) is exactly
/// byte order: where the padded bytes first differ, either both strings have
/// a byte there or the shorter one ended and is a prefix of the other; where
/// they are all equal, the shorter string is a prefix of the longer.
fn rank(head: &KeyPart<'_>, single: bool) -> u128 {
    let mut b = [0u8; 16];
    match *head {
        KeyPart::Bool(x) => b[1] = u8::from(x),
        KeyPart::Num(n) => {
            b[0] = 1;
            b[1..9].copy_from_slice(&n.to_be_bytes());
        }
        KeyPart::Str(s) => {
            b[0] = 2;
            let n = s.len().min(RANK_BYTES);
            for (to, from) in b[1..=n].iter_mut().zip(s) {
                *to = *from;
            }
            #[allow(clippy::cast_possible_truncation)]
            if s.len() <= RANK_BYTES {
                b[15] = s.len() as u8;
            } else {
                b[15] = INEXACT;
            }
        }
    }
    if !single {
        b[15] = INEXACT;
    }
    u128::from_be_bytes(b)
}

/// The string bytes a [`rank`] holds.
const RANK_BYTES: usize = 14;
/// The last byte of a [`rank`] that does not decide equality.
const INEXACT: u8 = 15;

/// Whether keys with this (same) rank are equal.
#[inline]
fn exact(rank: u128) -> bool {
    rank as u8 != INEXACT
}

/// A list's elements in key order, as `(rank, element index)`. Full keys
/// are not kept: they are read again from the list for the rare ties of
/// inexact ranks (keys longer than the rank holds, composite keys).
struct KeyTable<'s, L> {
    spec: &'s KeySpec,
    items: L,
    order: Vec<(u128, usize)>,
}

/// The full key of element `i` (`None` when it has none; a table is only
/// built when every element has one).
fn key_at<'a, L: ListView<'a>>(spec: &KeySpec, items: L, i: usize) -> Option<Key<'a>> {
    let item = items.at(i);
    let (first, rest) = spec.fields().split_first()?;
    let head = key_part(field(item, first)?)?;
    let tail = rest
        .iter()
        .map(|f| field(item, f).and_then(key_part))
        .collect::<Option<Vec<_>>>()?;
    Some(Key(head, tail))
}

/// Key order of element `a` of `ta` and element `b` of `tb` (ranked).
#[inline]
fn ranked_cmp<'a, L: ListView<'a>>(
    ta: &KeyTable<'_, L>,
    a: (u128, usize),
    tb: &KeyTable<'_, L>,
    b: (u128, usize),
) -> std::cmp::Ordering {
    match a.0.cmp(&b.0) {
        std::cmp::Ordering::Equal if !exact(a.0) => full_cmp(ta, a.1, tb, b.1),
        o => o,
    }
}

/// [`ranked_cmp`] on a tie of inexact ranks: the full keys.
#[cold]
#[inline(never)]
fn full_cmp<'a, L: ListView<'a>>(
    ta: &KeyTable<'_, L>,
    a: usize,
    tb: &KeyTable<'_, L>,
    b: usize,
) -> std::cmp::Ordering {
    key_at(ta.spec, ta.items, a).cmp(&key_at(tb.spec, tb.items, b))
}

impl<'a, L: ListView<'a>> KeyTable<'_, L> {
    /// Pairs this list's elements with `other`'s by key, in one merge over
    /// both key orders: `partner[i]` is the index in `other` of element
    /// `i`'s key (`usize::MAX` when it has none there), and `taken[j]` says
    /// whether `other`'s element `j` was paired.
    /// `partner` and `taken` are buffers to fill (their contents ignored);
    /// the third result is the number of pairs.
    fn pair(
        &self,
        other: &KeyTable<'_, L>,
        mut partner: Vec<usize>,
        mut taken: Vec<bool>,
    ) -> (Vec<usize>, Vec<bool>, usize) {
        partner.clear();
        partner.resize(self.order.len(), usize::MAX);
        taken.clear();
        taken.resize(other.order.len(), false);
        let (mut a, mut b, mut pairs) = (0, 0, 0);
        while let (Some(&x), Some(&y)) = (self.order.get(a), other.order.get(b)) {
            match ranked_cmp(self, x, other, y) {
                std::cmp::Ordering::Less => a += 1,
                std::cmp::Ordering::Greater => b += 1,
                std::cmp::Ordering::Equal => {
                    partner[x.1] = y.1;
                    taken[y.1] = true;
                    a += 1;
                    b += 1;
                    pairs += 1;
                }
            }
        }
        (partner, taken, pairs)
    }
}

/// The elements of `items` in key order, or `None` when some element lacks
/// a scalar key or two elements share one. A list already in strictly
/// increasing key order (a generated or sorted document) is not sorted.
/// `order` is a buffer to fill (its contents ignored).
fn keys_of<'s, 'a, L: ListView<'a>>(
    spec: &'s KeySpec,
    items: L,
    mut order: Vec<(u128, usize)>,
) -> Option<KeyTable<'s, L>> {
    let (first, rest) = spec.fields().split_first()?;
    let n = items.len();
    order.clear();
    order.reserve(n);
    let mut table = KeyTable { spec, items, order };
    // The head field is looked up in every element: a plain field name is
    // prepared once.
    type Obj<'a, L> = <<L as ListView<'a>>::Item as View<'a>>::Obj;
    let probe = match first.as_slice() {
        [name] => Some((Obj::<L>::probe(name), name.as_str())),
        _ => None,
    };
    let mut increasing = true;
    for i in 0..n {
        let item = items.at(i);
        let head = match probe {
            Some((probe, name)) => match item.shape() {
                Shape::Object(m) => m.find(probe, name),
                _ => None,
            },
            None => field(item, first),
        };
        let head = head?;
        for f in rest {
            key_part(field(item, f)?)?;
        }
        let single = rest.is_empty();
        let r = match head.short_str_rank() {
            Some(r) if single => r,
            _ => rank(&key_part(head)?, single),
        };
        let r = (r, i);
        if increasing && let Some(&prev) = table.order.last() {
            increasing = ranked_cmp(&table, prev, &table, r).is_lt();
        }
        table.order.push(r);
    }
    if !increasing {
        let mut order = std::mem::take(&mut table.order);
        let t = &table;
        order.sort_unstable_by(|&a, &b| ranked_cmp(t, a, t, b));
        if order
            .windows(2)
            .any(|w| ranked_cmp(t, w[0], t, w[1]).is_eq())
        {
            return None;
        }
        table.order = order;
    }
    Some(table)
}

/// The key a list is matched by (a rule's or a built-in default, borrowed:
/// every element's path label shares it) and both lists' key tables.
type Keyed<'s, L> = (&'s KeySpec, KeyTable<'s, L>, KeyTable<'s, L>);

/// For each element of `a`, the index of the element of `b` with the same
/// key, under the rule's key or the first default key that identifies every
/// element of both lists; `None` when the lists are not keyed (used by
/// overlays, paired as the differ pairs).
pub(crate) fn partners(
    rule: Option<&KeySpec>,
    a: &[Node],
    b: &[Node],
) -> Option<Vec<Option<usize>>> {
    let (_, ka, kb) = keyed(rule, a, b, &mut Vec::new())?;
    let (partner, _, _) = ka.pair(&kb, Vec::new(), Vec::new());
    Some(
        partner
            .into_iter()
            .map(|j| (j != usize::MAX).then_some(j))
            .collect(),
    )
}

static DEFAULT_KEYS: std::sync::LazyLock<[KeySpec; 4]> = std::sync::LazyLock::new(|| {
    [
        KeySpec::new(&["name"]),
        KeySpec::new(&["id"]),
        KeySpec::new(&["key"]),
        KeySpec::new(&["kind", "/metadata/name"]),
    ]
});

/// Picks the list key: the rule's, else the first of `name`, `id`, `key`,
/// `kind`+`/metadata/name` that identifies every element on both sides.
/// `pool` holds buffers for the key tables (those of failed tries go back).
fn keyed<'s, 'a, L: ListView<'a>>(
    rule: Option<&'s KeySpec>,
    da: L,
    la: L,
    pool: &mut Vec<Vec<(u128, usize)>>,
) -> Option<Keyed<'s, L>> {
    if da.len() == 0 && la.len() == 0 {
        return None;
    }
    let all_objects =
        (0..da.len()).all(|i| da.at(i).is_object()) && (0..la.len()).all(|j| la.at(j).is_object());
    if !all_objects {
        return None;
    }
    let mut tables = |spec: &'s KeySpec| {
        let dk = keys_of(spec, da, pool.pop().unwrap_or_default());
        let lk = keys_of(spec, la, pool.pop().unwrap_or_default());
        match (dk, lk) {
            (Some(dk), Some(lk)) => Some((spec, dk, lk)),
            (dk, lk) => {
                pool.extend(dk.into_iter().chain(lk).map(|t| t.order));
                None
            }
        }
    };
    if let Some(spec) = rule {
        return tables(spec);
    }
    let defaults: &'static [KeySpec; 4] = &DEFAULT_KEYS;
    defaults.iter().find_map(tables)
}

/// A structural hash that agrees with [`crate::view::equal`] (`1` and `1.0`
/// hash alike). `DefaultHasher::new()` uses fixed keys, so it is
/// deterministic, and both tree models hash alike.
fn hash_view<'a, V: View<'a>>(node: V) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    hash_value(node, &mut h);
    h.finish()
}

fn hash_value<'a, V: View<'a>, H: Hasher>(v: V, h: &mut H) {
    match v.shape() {
        Shape::Scalar(Scalar::Null) => 0u8.hash(h),
        Shape::Scalar(Scalar::Bool(b)) => {
            1u8.hash(h);
            b.hash(h);
        }
        Shape::Scalar(Scalar::Number(n)) => {
            2u8.hash(h);
            let x = n.as_f64();
            let x = if x == 0.0 { 0.0 } else { x };
            x.to_bits().hash(h);
        }
        Shape::Scalar(Scalar::String(s)) => {
            3u8.hash(h);
            s.hash(h);
        }
        Shape::Array(items) => {
            4u8.hash(h);
            items.len().hash(h);
            for i in 0..items.len() {
                hash_value(items.at(i), h);
            }
        }
        Shape::Object(m) => {
            5u8.hash(h);
            m.len().hash(h);
            for k in 0..m.len() {
                let (key, value) = m.entry(k);
                key.hash(h);
                hash_value(value, h);
            }
        }
    }
}

/// A monotone list of index pairs with equal hashes: an exact LCS for
/// moderate sizes, a greedy alignment beyond [`LCS_TABLE_LIMIT`] cells.
fn lcs(a: &[u64], b: &[u64]) -> Vec<(usize, usize)> {
    let mut pre = 0;
    while pre < a.len() && pre < b.len() && a[pre] == b[pre] {
        pre += 1;
    }
    let mut suf = 0;
    while suf < a.len() - pre && suf < b.len() - pre && a[a.len() - 1 - suf] == b[b.len() - 1 - suf]
    {
        suf += 1;
    }
    let ma = &a[pre..a.len() - suf];
    let mb = &b[pre..b.len() - suf];
    let mut out: Vec<(usize, usize)> = (0..pre).map(|i| (i, i)).collect();
    let (n, m) = (ma.len(), mb.len());
    if n > 0 && m > 0 {
        if n.saturating_mul(m) <= LCS_TABLE_LIMIT {
            // table[i][j] = LCS length of ma[i..] and mb[j..]
            let w = m + 1;
            let mut t = vec![0u32; (n + 1) * w];
            for i in (0..n).rev() {
                for j in (0..m).rev() {
                    t[i * w + j] = if ma[i] == mb[j] {
                        t[(i + 1) * w + j + 1] + 1
                    } else {
                        t[(i + 1) * w + j].max(t[i * w + j + 1])
                    };
                }
            }
            let (mut i, mut j) = (0, 0);
            while i < n && j < m {
                if ma[i] == mb[j] {
                    out.push((pre + i, pre + j));
                    i += 1;
                    j += 1;
                } else if t[(i + 1) * w + j] >= t[i * w + j + 1] {
                    i += 1;
                } else {
                    j += 1;
                }
            }
        } else {
            let mut positions: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
            for (j, h) in mb.iter().enumerate() {
                positions.entry(*h).or_default().push(j);
            }
            let mut next_j = 0;
            for (i, h) in ma.iter().enumerate() {
                if let Some(js) = positions.get(h) {
                    let k = js.partition_point(|&j| j < next_j);
                    if let Some(&j) = js.get(k) {
                        out.push((pre + i, pre + j));
                        next_j = j + 1;
                    }
                }
            }
        }
    }
    out.extend((0..suf).map(|k| (a.len() - suf + k, b.len() - suf + k)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Map;

    fn item(i: usize, image: &str, extra: bool) -> Node {
        let mut env = Vec::new();
        for k in 0..3 {
            let mut m = Map::new();
            m.insert("name", Node::new(Value::String(format!("VAR_{k}").into())));
            m.insert("value", Node::new(Value::String(format!("{i}-{k}").into())));
            env.push(Node::new(Value::Object(m)));
        }
        let mut m = Map::new();
        m.insert(
            "name",
            Node::new(Value::String(format!("svc-{i:05}").into())),
        );
        m.insert("image", Node::new(Value::String(image.into())));
        m.insert("env", Node::new(Value::Array(env)));
        if extra {
            m.insert("token", Node::new(Value::String("CANARY-SECRET".into())));
        }
        Node::new(Value::Object(m))
    }

    fn walk<'a>(rules: &'a Rules, fork: bool) -> Walk<'a, &'a Node> {
        Walk {
            rules,
            plain: rules.is_empty(),
            structure: false,
            path: Vec::new(),
            scratch: Scratch::default(),
            by_length: rules.by_length().into(),
            diffs: Vec::new(),
            ops: Vec::new(),
            withheld: Vec::new(),
            withheld_labels: Vec::new(),
            wrote_mask: std::cell::Cell::new(false),
            severity: None,
            fork,
        }
    }

    #[test]
    fn split_comparison_reports_exactly_what_one_thread_does() {
        let n = 3 * FORK_MIN_PAIRS;
        let desired: Vec<Node> = (0..n).map(|i| item(i, "app:2", false)).collect();
        // LIVE: reversed order, every 5th image old, some elements gone and some extra.
        let mut live: Vec<Node> = (0..n + 40)
            .rev()
            .filter(|i| i % 97 != 3)
            .map(|i| item(i, if i % 5 == 0 { "app:1" } else { "app:2" }, i % 7 == 0))
            .collect();
        if let Value::Object(m) = &mut live[10].value {
            m.remove("env");
        }
        let (d, l) = (
            Node::new(Value::Array(desired)),
            Node::new(Value::Array(live)),
        );
        let rules = Rules::new();
        let mut one = walk(&rules, false);
        one.node(&d, &l, false);
        let mut two = walk(&rules, true);
        two.node(&d, &l, false);
        assert!(one.diffs.len() > n / 5, "{} differences", one.diffs.len());
        let show = |w: &Walk<'_, &Node>| {
            (
                w.diffs
                    .iter()
                    .map(|x| format!("{} {} {:?} {:?}", x.kind, x.path, x.desired, x.live))
                    .collect::<Vec<_>>(),
                crate::patch::Patch::new(w.ops.clone()).to_json(),
            )
        };
        assert_eq!(show(&one), show(&two));
        // The patch still turns LIVE into DESIRED (keyed lists keep LIVE's
        // order, which is no drift).
        let mut patched = l.clone();
        crate::patch::Patch::new(two.ops)
            .apply(&mut patched)
            .expect("patch applies");
        assert_ne!(patched, l);
        assert!(!diff(&d, &patched).has_drift());
    }

    /// Both models' reports for two JSON texts, checked to agree.
    fn both(rules: &Rules, d: &str, l: &str) -> Report {
        let limits = crate::Limits::default();
        let owned = |t: &str| crate::load(t, crate::Format::Json, "x.json", &limits).unwrap();
        let tree = |t: &str| crate::load_tree(t, crate::Format::Json, "x.json", &limits).unwrap();
        let differ = Differ::new(rules.clone());
        let a = differ.diff(&owned(d), &owned(l));
        let b = differ.diff_trees(&tree(d), &tree(l));
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        a
    }

    /// Secret-looking keys are tested only when a difference is recorded
    /// (`Walk::keys_secret`): every difference below such a key, at any
    /// depth and through keyed and unkeyed lists, must still be secret and
    /// masked, and none elsewhere.
    #[test]
    fn differences_anywhere_below_a_secret_key_are_masked() {
        const CANARY: &str = "canary-5ecret";
        let d = format!(
            r#"{{"db":{{"password":{{"a":[1,{{"b":"{CANARY}"}}],"c":"{CANARY}"}},"host":"h"}},
            "env":[{{"name":"DB_PASSWORD","value":{{"x":["{CANARY}",2],"y":"{CANARY}"}}}},
                   {{"name":"HOST","value":"h1"}},
                   {{"name":"api_token","value":"{CANARY}"}}],
            "vaultKey":[{{"name":"a","v":"{CANARY}"}},{{"name":"b","v":"{CANARY}"}}],
            "tokens":["{CANARY}","{CANARY}-2",{{"n":"{CANARY}"}}],
            "list":[{{"key":"private_thing","value":["{CANARY}"]}}],
            "plain":{{"value":"v1","name":"n"}}}}"#
        );
        let l = r#"{"db":{"password":{"a":[1,{"b":"o"},3],"c":5},"host":"h2"},
            "env":[{"name":"DB_PASSWORD","value":{"x":["o"],"z":1}},
                   {"name":"HOST","value":"h2"},
                   {"name":"api_token"}],
            "vaultKey":[{"name":"b","v":"o"},{"name":"c","v":"o"}],
            "tokens":[{"n":"o"},"x"],
            "list":[{"key":"private_thing","value":[]}],
            "plain":{"value":"v2","name":"n"}}"#;
        for rules in [
            Rules::new(),
            Rules::new().with_rule(
                crate::Rule::new("/db/host")
                    .unwrap()
                    .severity(Severity::Info),
            ),
        ] {
            let r = both(&rules, &d, l);
            let shown = format!("{r:?}{}", r.patch().to_json());
            assert!(!shown.contains(CANARY), "{shown}");
            let public = ["/db/host", "/env/1/value", "/plain/value"];
            assert!(r.differences().len() > 12, "{:#?}", r.differences());
            for x in r.differences() {
                assert_eq!(x.secret, !public.contains(&x.path.as_str()), "{x:?}");
            }
            // Without masking nothing is secret, and the values show.
            let r = both(&rules.clone().with_secret_key_masking(false), &d, l);
            assert!(r.differences().iter().all(|x| !x.secret));
            assert!(format!("{r:?}").contains(CANARY));
        }
    }

    /// Path steps are key bytes and plain indices (`Tok`): rules with literal
    /// indices and non-ASCII or escaped keys still match, and pointers and
    /// labels show the same text.
    #[test]
    fn rules_and_pointers_see_steps_as_text() {
        let d = r#"{"l":[0,1,2,3,4,5,6,7,8,9,10,{"ключ/~":1,"x":1}],"m":{"ключ/~":{"é":1}}}"#;
        let l = r#"{"l":[0,1,2,3,4,5,6,7,8,9,10,{"ключ/~":2,"x":2}],"m":{"ключ/~":{"é":2}}}"#;
        let rules = Rules::new()
            .with_rule(
                crate::Rule::new("/l/11/x")
                    .unwrap()
                    .severity(Severity::Critical),
            )
            .with_rule(crate::Rule::new("/l/011/ключ~1~0").unwrap().ignore())
            .with_rule(
                crate::Rule::new("/m/ключ~1~0/é")
                    .unwrap()
                    .severity(Severity::Info),
            );
        let r = both(&rules, d, l);
        let got: Vec<_> = r
            .differences()
            .iter()
            .map(|x| (x.path.as_str(), x.label.as_str(), x.severity))
            .collect();
        assert_eq!(
            got,
            [
                ("/l/11/x", "/l/11/x", Severity::Critical),
                ("/l/11/ключ~1~0", "/l/11/ключ~1~0", Severity::Warning),
                ("/m/ключ~1~0/é", "/m/ключ~1~0/é", Severity::Info),
            ]
        );
    }

    fn part(x: &(u8, Vec<u8>, u64)) -> KeyPart<'_> {
        match x.0 % 3 {
            0 => KeyPart::Bool(x.2 % 2 == 1),
            1 => KeyPart::Num(x.2),
            _ => KeyPart::Str(&x.1),
        }
    }

    /// Byte strings with shared prefixes, zero bytes and lengths around the
    /// 14 bytes a rank holds.
    fn bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        (
            prop::collection::vec(prop::sample::select(vec![0u8, 1, b'a', 0xff]), 0..20),
            0usize..3,
        )
            .prop_map(|(mut v, prefix)| {
                let head: &[u8] = [&b""[..], b"svc-000000", b"VAR_00_LEVEL_X"][prefix];
                v.splice(0..0, head.iter().copied());
                v
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 1024,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x4a7e_5eed),
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// `rank` orders as `KeyPart` does and, when exact, decides equality.
        #[test]
        fn ranks_order_as_keys_do(
            a in (0u8..3, bytes(), proptest::prelude::any::<u64>()),
            b in (0u8..3, bytes(), proptest::prelude::any::<u64>()),
            single in proptest::prelude::any::<bool>(),
        ) {
            let (pa, pb) = (part(&a), part(&b));
            let (ra, rb) = (rank(&pa, single), rank(&pb, single));
            match ra.cmp(&rb) {
                std::cmp::Ordering::Equal => {
                    if exact(ra) {
                        proptest::prop_assert!(single);
                        proptest::prop_assert_eq!(pa, pb);
                    }
                }
                o => proptest::prop_assert_eq!(o, pa.cmp(&pb)),
            }
            let short = match pa {
                KeyPart::Str(s) => s.len() <= RANK_BYTES,
                _ => true,
            };
            // Exact for every single-field key but long strings.
            proptest::prop_assert_eq!(exact(ra), single && short);
        }

        /// Key tables (already-sorted lists skip the sort) pair elements as
        /// a plain map from key to index does, and refuse duplicate keys.
        #[test]
        fn key_tables_pair_as_a_map_does(
            da in proptest::collection::vec(bytes(), 0..12),
            la in proptest::collection::vec(bytes(), 0..12),
            sort_d in proptest::prelude::any::<bool>(),
            two in proptest::prelude::any::<bool>(),
        ) {
            let mut da = da;
            if sort_d {
                da.sort();
            }
            let spec = if two { KeySpec::new(&["k", "n"]) } else { KeySpec::new(&["k"]) };
            let items = |v: &[Vec<u8>]| -> Vec<Node> {
                v.iter()
                    .enumerate()
                    .map(|(i, k)| {
                        let mut m = Map::new();
                        m.insert("k", Node::new(Value::String(String::from_utf8_lossy(k).as_ref().into())));
                        m.insert("n", Node::new(Value::Number(crate::Number::Int(i64::try_from(i % 2).unwrap()))));
                        Node::new(Value::Object(m))
                    })
                    .collect()
            };
            let (dn, ln) = (items(&da), items(&la));
            // The reference: the keys as owned values in a map.
            let key_of = |n: &Node, i: usize| -> (String, i64) {
                let Value::Object(m) = &n.value else { unreachable!() };
                let Some(Value::String(k)) = m.get("k").map(|x| &x.value) else { unreachable!() };
                (k.to_string(), if two { i64::try_from(i % 2).unwrap() } else { 0 })
            };
            let index = |v: &[Node]| {
                let mut map = BTreeMap::new();
                for (i, n) in v.iter().enumerate() {
                    if map.insert(key_of(n, i), i).is_some() {
                        return None;
                    }
                }
                Some(map)
            };
            let (Some(dm), Some(lm)) = (index(&dn), index(&ln)) else {
                proptest::prop_assert!(
                    keys_of(&spec, dn.as_slice(), vec![(5, 9); 4]).is_none()
                        || keys_of(&spec, ln.as_slice(), Vec::new()).is_none()
                );
                return Ok(());
            };
            let (dk, lk) = (
                keys_of(&spec, dn.as_slice(), vec![(5, 9); 4]).unwrap(),
                keys_of(&spec, ln.as_slice(), Vec::new()).unwrap(),
            );
            let (partner, taken, pairs) = dk.pair(&lk, vec![7; 3], vec![true; 20]);
            proptest::prop_assert_eq!(pairs, dm.keys().filter(|k| lm.contains_key(*k)).count());
            for (key, &i) in &dm {
                proptest::prop_assert_eq!(partner[i], lm.get(key).copied().unwrap_or(usize::MAX));
            }
            for (key, &j) in &lm {
                proptest::prop_assert_eq!(taken[j], dm.contains_key(key));
            }
        }
    }

    /// A scalar the same on both sides is normalised once (`normalised_eq`):
    /// equal after normalising unless the result is not equal to itself
    /// (a duration summing to NaN), which stays a difference as before.
    #[test]
    fn identical_scalars_are_normalised_once_and_still_compared() {
        let nan = format!("-1{z}h1{z}h", z = "0".repeat(308));
        let rules = Rules::new().with_rule(
            crate::Rule::new("/d/*")
                .unwrap()
                .normalise(&[crate::Normaliser::Duration]),
        );
        let d = format!(r#"{{"d":{{"a":"{nan}","b":"90m","c":"1h","e":1.5,"f":"x"}}}}"#);
        let l = format!(r#"{{"d":{{"a":"{nan}","b":"90m","c":"60m","e":1.5,"f":"y"}}}}"#);
        let r = both(&rules, &d, &l);
        let got: Vec<_> = r
            .differences()
            .iter()
            .map(|x| (x.kind, x.path.as_str()))
            .collect();
        assert_eq!(got, [(Kind::Changed, "/d/a"), (Kind::Changed, "/d/f")]);
    }

    /// The arena's rank of a short string read from its slot (the bytes
    /// after the string in the slot are the document's next bytes) is
    /// `rank` of its bytes.
    #[test]
    fn short_string_ranks_are_ranks() {
        let words = [
            "",
            "a",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefghij",
            "abcdefghijk",
            "\u{e9}t\u{e9}",
            "\u{0}",
            "a\u{0}b",
            "\u{10ffff}",
            "abcdefghijkl",
            "x y z",
            "\u{7f}\u{ff}",
        ];
        // JSON text: NUL escaped, everything else as is.
        let doc = format!(
            "[{}]",
            words
                .iter()
                .map(|w| format!("\"{}\"", w.replace('\0', "\\u0000")))
                .collect::<Vec<_>>()
                .join(",")
        );
        let tree = crate::load_tree(
            &doc,
            crate::Format::Json,
            "x.json",
            &crate::Limits::default(),
        )
        .unwrap();
        let Shape::Array(items) = tree.root().shape() else {
            panic!("an array")
        };
        assert_eq!(items.len(), words.len());
        for (i, w) in words.iter().enumerate() {
            let node = items.at(i);
            assert_eq!(node.str_bytes(), Some(w.as_bytes()));
            let expected = rank(&KeyPart::Str(w.as_bytes()), true);
            match node.short_str_rank() {
                Some(r) => assert_eq!(r, expected, "{w:?}"),
                None => assert!(w.len() > 11, "{w:?}"),
            }
        }
    }
}
