//! Differ behaviour: keyed lists, LCS alignment, kinds, rules, masking, patch.

use rollgate_drift::{
    Differ, Format, Kind, Limits, Node, Normaliser, RenderOptions, Rule, Rules, Severity, diff,
    load, render_json, render_text,
};

fn j(text: &str) -> Node {
    load(text, Format::Json, "t.json", &Limits::default()).unwrap()
}

fn kinds(desired: &Node, live: &Node) -> Vec<(Kind, String)> {
    diff(desired, live)
        .differences()
        .iter()
        .map(|d| (d.kind, d.path.clone()))
        .collect()
}

fn roundtrip(desired: &Node, live: &Node) {
    let mut patched = live.clone();
    diff(desired, live).patch().apply(&mut patched).unwrap();
    assert_eq!(
        &patched,
        desired,
        "patch {}",
        diff(desired, live).patch().to_json()
    );
}

#[test]
fn reordered_keyed_list_is_not_drift() {
    let d = j(r#"[{"name":"a","v":1},{"name":"b","v":2},{"name":"c","v":3}]"#);
    let l = j(r#"[{"name":"c","v":3},{"name":"a","v":1},{"name":"b","v":2}]"#);
    assert!(kinds(&d, &l).is_empty());
    assert!(diff(&d, &l).patch().is_empty());
}

#[test]
fn keyed_list_reports_added_removed_changed_with_paths() {
    let d = j(r#"{"env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}"#);
    let l = j(r#"{"env":[{"name":"C","value":"3"},{"name":"B","value":"9"}]}"#);
    let r = diff(&d, &l);
    let got: Vec<_> = r
        .differences()
        .iter()
        .map(|d| (d.kind, d.path.as_str(), d.label.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Kind::Changed, "/env/1/value", "/env[name=B]/value"),
            (Kind::Added, "/env/0", "/env[name=C]"),
            (Kind::Removed, "/env/0", "/env[name=A]"),
        ]
    );
    let mut patched = l.clone();
    r.patch().apply(&mut patched).unwrap();
    // Keyed lists keep LIVE's order; the content equals DESIRED.
    assert!(diff(&d, &patched).differences().is_empty());
}

#[test]
fn composite_keys_and_id_keys_are_detected() {
    let d = j(r#"[{"id":1,"v":"x"},{"id":2,"v":"y"}]"#);
    let l = j(r#"[{"id":2,"v":"y"},{"id":1,"v":"z"}]"#);
    assert_eq!(kinds(&d, &l), [(Kind::Changed, "/0/v".to_owned())]);
    let d = j(
        r#"[{"kind":"Service","metadata":{"name":"web"}},{"kind":"Deployment","metadata":{"name":"web"},"spec":1}]"#,
    );
    let l = j(
        r#"[{"kind":"Deployment","metadata":{"name":"web"},"spec":2},{"kind":"Service","metadata":{"name":"web"}}]"#,
    );
    let r = diff(&d, &l);
    assert_eq!(r.differences().len(), 1);
    assert_eq!(
        r.differences()[0].label,
        "/[kind=Deployment,metadata.name=web]/spec"
    );
}

#[test]
fn unkeyed_lists_align_by_lcs_and_report_moves() {
    let d = j(r#"["a","b","c","d"]"#);
    let l = j(r#"["d","a","b","c"]"#);
    let r = diff(&d, &l);
    assert_eq!(r.differences().len(), 1);
    assert_eq!(r.differences()[0].kind, Kind::Moved);
    assert_eq!(r.differences()[0].path, "/3");
    assert_eq!(r.differences()[0].live_path.as_deref(), Some("/0"));
    roundtrip(&d, &l);
    let d = j(r#"["a","x","c"]"#);
    let l = j(r#"["a","y","c","e"]"#);
    assert_eq!(
        kinds(&d, &l),
        [
            (Kind::Changed, "/1".to_owned()),
            (Kind::Added, "/3".to_owned())
        ]
    );
    roundtrip(&d, &l);
}

#[test]
fn type_changes_are_their_own_kind() {
    let d = j(r#"{"a":1,"b":{"x":1},"c":[1]}"#);
    let l = j(r#"{"a":"1","b":[1],"c":[1]}"#);
    assert_eq!(
        kinds(&d, &l),
        [
            (Kind::TypeChanged, "/a".to_owned()),
            (Kind::TypeChanged, "/b".to_owned())
        ]
    );
    roundtrip(&d, &l);
}

#[test]
fn rules_normalise_ignore_key_and_grade() {
    let rules = Rules::new()
        .with_rule(Rule::new("/**/cpu").unwrap().normalise(&[Normaliser::Cpu]))
        .with_rule(
            Rule::new("/**/timeout")
                .unwrap()
                .normalise(&[Normaliser::Duration]),
        )
        .with_rule(Rule::new("/status").unwrap().ignore())
        .with_rule(Rule::new("/ports").unwrap().key(&["port"]))
        .with_rule(Rule::new("/image").unwrap().severity(Severity::Critical));
    let d = j(
        r#"{"cpu":"100m","timeout":"1m","status":"ok","image":"a","ports":[{"port":80,"p":"tcp"},{"port":443,"p":"tcp"}]}"#,
    );
    let l = j(
        r#"{"cpu":0.1,"timeout":"60s","status":"bad","image":"b","ports":[{"port":443,"p":"tcp"},{"port":80,"p":"udp"}]}"#,
    );
    let r = Differ::new(rules).diff(&d, &l);
    let got: Vec<_> = r
        .differences()
        .iter()
        .map(|d| (d.kind, d.path.as_str(), d.severity))
        .collect();
    assert_eq!(
        got,
        [
            (Kind::Changed, "/image", Severity::Critical),
            (Kind::Changed, "/ports/0/p", Severity::Warning),
        ]
    );
    assert_eq!(r.max_severity(), Some(Severity::Critical));
}

#[test]
fn secrets_never_reach_any_output() {
    const CANARY: &str = "canary-5ecret-value";
    let d = j(&format!(
        r#"{{"db":{{"password":"{CANARY}","host":"a"}},"apiKey":"{CANARY}","extra":{{"token":"{CANARY}"}},"vault":"{CANARY}"}}"#
    ));
    let l = j(r#"{"db":{"password":"other","host":"b"},"apiKey":"other","vault":"x"}"#);
    let rules = Rules::new().with_rule(Rule::new("/vault").unwrap().secret());
    let r = Differ::new(rules).diff(&d, &l);
    assert_eq!(r.differences().len(), 5);
    let opts = RenderOptions::new("d", "l");
    for out in [
        render_text(&r, &opts),
        render_json(&r, &opts),
        format!("{r:?}"),
    ] {
        assert!(!out.contains(CANARY), "{out}");
        assert!(out.contains("***"));
    }
    // The patch carries no secret, masked or not: the operations that would
    // write one are withheld, by path.
    let patch = r.patch().to_json();
    assert_eq!(patch, r#"[{"op":"replace","path":"/db/host","value":"a"}]"#);
    let mut withheld = r.withheld().to_vec();
    withheld.sort();
    assert_eq!(withheld, ["/apiKey", "/db/password", "/extra", "/vault"]);
}

#[test]
fn withheld_secret_insertions_do_not_shift_the_rest_of_the_patch() {
    // An unkeyed list (LCS): the second element holds a secret, the third
    // does not; the third must still land right after the first.
    let d = j(r#"{"l":[{"x":1},{"password":"p"},{"x":3}]}"#);
    let l = j(r#"{"l":[{"x":1}]}"#);
    let r = diff(&d, &l);
    assert_eq!(r.withheld(), ["/l/1"]);
    let mut patched = l.clone();
    r.patch().apply(&mut patched).unwrap();
    assert_eq!(patched, j(r#"{"l":[{"x":1},{"x":3}]}"#));
    // A keyed list: a new container with a secret env value is withheld,
    // the next new one is appended after LIVE's.
    let d = j(
        r#"{"c":[{"name":"a"},{"name":"b","env":[{"name":"DB_PASSWORD","value":"p"}]},{"name":"c"}]}"#,
    );
    let l = j(r#"{"c":[{"name":"a"}]}"#);
    let r = diff(&d, &l);
    assert_eq!(r.withheld(), ["/c/1"]);
    assert_eq!(r.withheld_labels(), ["/c[name=b]"]);
    let mut patched = l.clone();
    r.patch().apply(&mut patched).unwrap();
    assert_eq!(patched, j(r#"{"c":[{"name":"a"},{"name":"c"}]}"#));
    assert!(!r.patch().to_json().contains("***"));
}

#[test]
fn lists_keyed_by_a_secret_looking_field_mask_it_in_labels() {
    let rules = Rules::new().with_rule(Rule::new("/creds").unwrap().key(&["token"]));
    let d = j(
        r#"{"creds":[{"token":"canary-tok-1","scope":"read"}],"tags":[{"key":"env","value":"prod"}]}"#,
    );
    let l = j(
        r#"{"creds":[{"token":"canary-tok-1","scope":"write"}],"tags":[{"key":"env","value":"dev"}]}"#,
    );
    let r = Differ::new(rules).diff(&d, &l);
    let labels: Vec<&str> = r.differences().iter().map(|d| d.label.as_str()).collect();
    assert_eq!(labels, ["/creds[token=***]/scope", "/tags[key=env]/value"]);
    let opts = RenderOptions::new("d", "l");
    for out in [
        render_text(&r, &opts),
        render_json(&r, &opts),
        format!("{r:?}"),
    ] {
        assert!(!out.contains("canary-tok-1"), "{out}");
    }
}

#[test]
fn identical_documents_have_no_drift_and_an_empty_patch() {
    let d = j(r#"{"a":[1,{"b":[true,null]}],"c":"x"}"#);
    let r = diff(&d, &d.clone());
    assert!(!r.has_drift());
    assert_eq!(r.patch().to_json(), "[]");
    assert_eq!(
        render_text(&r, &RenderOptions::default()),
        "no drift: live matches desired\n"
    );
}

#[test]
fn overlays_merge_maps_replace_scalars_and_merge_keyed_lists() {
    use rollgate_drift::apply_overlay;
    let y = |t: &str| load(t, Format::Yaml, "o.yaml", &Limits::default()).unwrap();
    let mut base = y(
        "a: {x: 1, y: 2}\nargs: [--a, --b]\nports: [{port: 80}, {port: 443}]\nenv: [{name: A, value: '1'}]\n",
    );
    let rules = Rules::new().with_rule(Rule::new("/ports").unwrap().key(&["port"]));
    let over = y(
        "a: {y: 3, z: 4}\nargs: [--c]\nports: [{port: 443, $patch: delete}, {port: 8080}]\nenv: [{name: A, value: '2'}, {name: B, value: '3'}]\n",
    );
    apply_overlay(&mut base, &over, &rules, "o.yaml").unwrap();
    assert_eq!(
        base.to_json(),
        r#"{"a":{"x":1,"y":3,"z":4},"args":["--c"],"env":[{"name":"A","value":"2"},{"name":"B","value":"3"}],"ports":[{"port":80},{"port":8080}]}"#
    );
    let mut base = y("a: {x: 1, y: 2}\nl: [{name: a}, {name: b}]\n");
    let over = y("a: {$patch: replace, z: 1}\nl: [{$patch: replace}, {name: c}]\n");
    apply_overlay(&mut base, &over, &rules, "o.yaml").unwrap();
    assert_eq!(base.to_json(), r#"{"a":{"z":1},"l":[{"name":"c"}]}"#);
    // A key whose value is {$patch: delete} is removed, at any depth; a
    // key the base does not have is no error.
    let mut base = y("a: {x: 1, y: {z: 2, w: 3}}\nb: 4\n");
    let over = y("a: {y: {w: {$patch: delete}}}\nb: {$patch: delete}\nc: {$patch: delete}\n");
    apply_overlay(&mut base, &over, &rules, "o.yaml").unwrap();
    assert_eq!(base.to_json(), r#"{"a":{"x":1,"y":{"z":2}}}"#);
    let bad = y("a: {$patch: explode}\n");
    let e = apply_overlay(&mut base, &bad, &rules, "o.yaml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "o.yaml:1:4: cannot apply overlay at /a: $patch must be \"delete\" or \"replace\""
    );
}

#[test]
fn ignored_keyed_elements_do_not_break_the_patch() {
    let rules = Rules::new().with_rule(Rule::new("/l/0").unwrap().ignore());
    let d = j(r#"{"l":[{"name":"a"},{"name":"b"},{"name":"c"}]}"#);
    let l = j(r#"{"l":[{"name":"z"}]}"#);
    let r = Differ::new(rules).diff(&d, &l);
    let mut patched = l.clone();
    r.patch().apply(&mut patched).unwrap();
    assert_eq!(patched.to_json(), r#"{"l":[{"name":"b"},{"name":"c"}]}"#);
}

#[test]
fn declared_defaults_equal_absent_keys() {
    let rules = Rules::from_toml(
        r#"
[[rule]]
path = "/containers/*/imagePullPolicy"
default = "IfNotPresent"

[[rule]]
path = "/timeout"
default = "30s"
normalise = ["duration"]
"#,
        "r.toml",
    )
    .unwrap();
    let differ = Differ::new(rules);
    let d = j(r#"{"containers":[{"name":"a"},{"name":"b","imagePullPolicy":"IfNotPresent"}]}"#);
    let l = j(
        r#"{"containers":[{"name":"a","imagePullPolicy":"IfNotPresent"},{"name":"b"}],"timeout":"0.5m"}"#,
    );
    assert!(!differ.diff(&d, &l).has_drift());
    let l = j(
        r#"{"containers":[{"name":"a","imagePullPolicy":"Always"},{"name":"b"}],"timeout":"1m"}"#,
    );
    let got: Vec<_> = differ
        .diff(&d, &l)
        .differences()
        .iter()
        .map(|d| (d.kind, d.path.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (Kind::Added, "/containers/0/imagePullPolicy".to_owned()),
            (Kind::Added, "/timeout".to_owned())
        ]
    );
}

#[test]
fn a_secret_that_only_moved_is_left_in_place() {
    // Removing it to put it back would need the secret: the list is
    // withheld whole, and the patch leaves LIVE's secrets where they are.
    let d = j(r#"{"tokens":["s1","s2"],"a":1}"#);
    let l = j(r#"{"tokens":["s2","s1"],"a":2}"#);
    let r = diff(&d, &l);
    assert_eq!(r.withheld(), ["/tokens"]);
    assert_eq!(
        r.patch().to_json(),
        r#"[{"op":"replace","path":"/a","value":1}]"#
    );
    // Two secret insertions in a row are told apart by their DESIRED index.
    let d = j(r#"{"l":[{"x":1},{"token":"a"},{"token":"b"},{"x":2}]}"#);
    let l = j(r#"{"l":[{"x":1},{"x":2}]}"#);
    let r = diff(&d, &l);
    assert_eq!(r.withheld(), ["/l/1", "/l/2"]);
    assert_eq!(r.patch().to_json(), "[]");
}

#[test]
fn labels_mask_keys_under_a_secret_or_marked_by_a_rule() {
    let d = j(
        r#"{"api_keys":[{"id":"sk_live_1","scope":"a"}],"users":[{"name":"u-canary","role":"x"}]}"#,
    );
    let l = j(
        r#"{"api_keys":[{"id":"sk_live_1","scope":"b"}],"users":[{"name":"u-canary","role":"y"}]}"#,
    );
    let labels = |r: &rollgate_drift::Report| -> Vec<String> {
        r.differences().iter().map(|d| d.label.clone()).collect()
    };
    let r = diff(&d, &l);
    assert_eq!(
        labels(&r),
        ["/api_keys[id=***]/scope", "/users[name=u-canary]/role"]
    );
    // A rule marks the users' names secret.
    let rules = Rules::new().with_rule(Rule::new("/users/*/name").unwrap().secret());
    let r = Differ::new(rules).diff(&d, &l);
    assert_eq!(
        labels(&r),
        ["/api_keys[id=***]/scope", "/users[name=***]/role"]
    );
    // With name-based masking off, only rules mask.
    let r = Differ::new(Rules::new().with_secret_key_masking(false)).diff(&d, &l);
    assert_eq!(
        labels(&r),
        [
            "/api_keys[id=sk_live_1]/scope",
            "/users[name=u-canary]/role"
        ]
    );
}

#[test]
fn a_field_named_key_is_no_secret() {
    // Kubernetes tolerations: added whole by the patch, printed as they are.
    let d = j(r#"{"tolerations":[{"key":"node.kubernetes.io/unreachable","operator":"Exists"}]}"#);
    let l = j(r#"{"tolerations":[]}"#);
    let r = diff(&d, &l);
    assert!(r.withheld().is_empty());
    assert!(
        r.patch()
            .to_json()
            .contains("node.kubernetes.io/unreachable")
    );
}

#[test]
fn colour_only_adds_escapes() {
    let d = j(r#"{"a":1,"b":[{"name":"x","v":1}],"c":"k"}"#);
    let l = j(r#"{"a":2,"b":[{"name":"x","v":2}],"d":true}"#);
    let r = diff(&d, &l);
    let plain = render_text(&r, &RenderOptions::new("d", "l"));
    let coloured = render_text(&r, &RenderOptions::new("d", "l").color(true));
    assert!(coloured.contains("\x1b[") && !plain.contains('\x1b'));
    // Stripping the escapes gives the plain text back.
    let mut stripped = String::new();
    let mut rest = coloured.as_str();
    while let Some(at) = rest.find("\x1b[") {
        stripped.push_str(&rest[..at]);
        let end = rest[at..].find('m').expect("an escape ends with m");
        rest = &rest[at + end + 1..];
    }
    stripped.push_str(rest);
    assert_eq!(stripped, plain);
}

#[test]
fn a_large_input_over_the_size_limit_stops_with_a_clear_error() {
    // 24 MB streamed through the reader with an 8 MB limit: refused, naming
    // the source and the limit, without reading on to the end.
    let mut doc = String::from("[");
    while doc.len() < 24 << 20 {
        doc.push_str("{\"name\":\"svc\",\"replicas\":3,\"image\":\"registry.example.com/a:1\"},\n");
    }
    doc.push_str("null]");
    let limits = Limits {
        max_bytes: 8 << 20,
        ..Limits::default()
    };
    let err = rollgate_drift::load_tree_reader(doc.as_bytes(), Format::Json, "big.json", &limits)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("big.json") && err.contains(&(8u64 << 20).to_string()),
        "{err}"
    );
    // Under the default limit the same document loads.
    let tree = rollgate_drift::load_tree_reader(
        doc.as_bytes(),
        Format::Json,
        "big.json",
        &Limits::default(),
    )
    .unwrap();
    assert!(tree.used_bytes() > 24 << 20);
}

#[test]
fn kubernetes_names_flags_and_secrets_are_masked_as_they_should_be() {
    let d = j(
        r#"{"spec":{"automountServiceAccountToken":false,"volumes":[{"name":"v","secret":{"secretName":"db-new"}}],
        "env":[{"name":"DB","valueFrom":{"secretKeyRef":{"name":"creds-new","key":"password"}}}]},
        "kind":"Secret","data":{"url":"cG9zdGdyZXM6Ly9hcHA6Y2FuYXJ5"},"stringData":{"dsn":"canary-dsn"}}"#,
    );
    let l = j(
        r#"{"spec":{"automountServiceAccountToken":true,"volumes":[{"name":"v","secret":{"secretName":"db-old"}}],
        "env":[{"name":"DB","valueFrom":{"secretKeyRef":{"name":"creds-old","key":"password"}}}]},
        "kind":"Secret","data":{"url":"b3RoZXI="},"stringData":{}}"#,
    );
    let r = diff(&d, &l);
    let found: Vec<(&str, bool)> = r
        .differences()
        .iter()
        .map(|d| (d.path.as_str(), d.secret))
        .collect();
    assert_eq!(
        found,
        [
            ("/data/url", true),
            ("/spec/automountServiceAccountToken", false),
            ("/spec/env/0/valueFrom/secretKeyRef/name", false),
            // Under a key named `secret` (a secret volume): masked, as a
            // rule with `secret = false` can undo (below).
            ("/spec/volumes/0/secret/secretName", true),
            ("/stringData/dsn", true),
        ]
    );
    let mut withheld = r.withheld().to_vec();
    withheld.sort();
    assert_eq!(
        withheld,
        [
            "/data/url",
            "/spec/volumes/0/secret/secretName",
            "/stringData/dsn"
        ]
    );
    let rules = Rules::from_toml(
        "[[rule]]\npath = \"/**/volumes/*/secret/secretName\"\nsecret = false\n",
        "r.toml",
    )
    .unwrap();
    let r2 = Differ::new(rules).diff(&d, &l);
    assert!(r2.patch().to_json().contains("db-new"));
    let opts = RenderOptions::new("d", "l");
    for out in [
        render_text(&r, &opts),
        render_json(&r, &opts),
        r.patch().to_json(),
    ] {
        assert!(
            !out.contains("cG9zdGdy") && !out.contains("canary"),
            "{out}"
        );
    }
    assert!(r.patch().to_json().contains("creds-new"));
    // A rule says a secret-looking name holds no secret.
    let d = j(r#"{"tokenTtl":"1h","password":"canary"}"#);
    let l = j(r#"{"tokenTtl":"2h","password":"other"}"#);
    let rules =
        Rules::from_toml("[[rule]]\npath = \"/tokenTtl\"\nsecret = false\n", "r.toml").unwrap();
    let r = Differ::new(rules).diff(&d, &l);
    assert_eq!(r.withheld(), ["/password"]);
    assert_eq!(
        r.patch().to_json(),
        r#"[{"op":"replace","path":"/tokenTtl","value":"1h"}]"#
    );
}

#[test]
fn a_key_cannot_forge_a_line_of_the_text_report() {
    let d = j(r#"{"k\nwarning  changed      image":1,"e\u001b[31m":1}"#);
    let l = j(r#"{"k\nwarning  changed      image":2,"e\u001b[31m":2}"#);
    let text = render_text(&diff(&d, &l), &RenderOptions::new("d", "l"));
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("warning  changed      image")),
        "{text}"
    );
    assert!(text.contains(r"k\nwarning"), "{text}");
}
