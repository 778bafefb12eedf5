//! Loader behaviour: positions, limits, duplicate keys, hostile inputs.

use rollgate_drift::{Error, Format, Limits, Value, load};

fn ld(text: &str, format: Format) -> Result<rollgate_drift::Node, Error> {
    load(text, format, "in", &Limits::default())
}

#[test]
fn the_three_formats_load_to_the_same_tree() {
    let j = ld(r#"{"a": {"b": [1, 2.5, "x", true, null]}}"#, Format::Json).unwrap();
    let y = ld("a:\n  b: [1, 2.5, x, true, ~]\n", Format::Yaml).unwrap();
    let t = ld("[a]\nb = [1, 2.5, \"x\", true]\n", Format::Toml).unwrap();
    assert_eq!(j, y);
    assert_eq!(j.pointer("/a/b/0"), t.pointer("/a/b/0"));
    assert_eq!(j.pointer("/a/b/2"), t.pointer("/a/b/2"));
}

#[test]
fn positions_are_kept_for_every_format() {
    let j = ld("{\n  \"a\": {\n    \"b\": 7\n  }\n}", Format::Json).unwrap();
    assert_eq!(j.pointer("/a/b").unwrap().pos.to_string(), "3:10");
    let y = ld("a:\n  b: 7\n", Format::Yaml).unwrap();
    assert_eq!(y.pointer("/a/b").unwrap().pos.to_string(), "2:6");
    let t = ld("x = 1\n[a]\nb = 7\n", Format::Toml).unwrap();
    assert_eq!(t.pointer("/a/b").unwrap().pos.to_string(), "3:5");
}

#[test]
fn duplicate_keys_are_rejected_with_both_positions() {
    let e = ld("a: 1\nb: 2\na: 3\n", Format::Yaml).unwrap_err();
    assert_eq!(e.to_string(), "in:3:1: duplicate key \"a\" (first at 1:1)");
    let e = ld("{\"x\": {\"k\": 1,\n \"k\": 2}}", Format::Json).unwrap_err();
    assert_eq!(e.to_string(), "in:2:2: duplicate key \"k\" (first at 1:8)");
    let e = ld("k = 1\nk = 2\n", Format::Toml).unwrap_err();
    assert_eq!(e.to_string(), "in:2:1: invalid toml: duplicate key \"k\"");
}

#[test]
fn yaml_multi_document_streams_load_as_a_list() {
    let y = ld("a: 1\n---\nb: 2\n", Format::Yaml).unwrap();
    let Value::Array(docs) = &y.value else {
        panic!("expected a list, got {y:?}")
    };
    assert_eq!(docs.len(), 2);
    assert_eq!(y.pointer("/1/b").unwrap().pos.line, 3);
}

#[test]
fn yaml_anchors_aliases_and_merge_keys_expand() {
    let y = ld(
        "base: &b {cpu: 1, mem: 2}\nweb:\n  <<: *b\n  mem: 4\ncopy: *b\n",
        Format::Yaml,
    )
    .unwrap();
    assert_eq!(y.pointer("/web/cpu"), y.pointer("/base/cpu"));
    assert_eq!(y.pointer("/web/mem").unwrap().to_json(), "4");
    assert_eq!(y.pointer("/copy"), y.pointer("/base"));
}

#[test]
fn yaml_alias_bombs_hit_the_node_limit() {
    let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        doc.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let limits = Limits {
        max_nodes: 1_000_000,
        ..Limits::default()
    };
    let e = load(&doc, Format::Yaml, "bomb.yaml", &limits).unwrap_err();
    assert!(matches!(e, Error::TooManyNodes { .. }), "{e}");
    assert!(e.to_string().starts_with("bomb.yaml:"), "{e}");
}

#[test]
fn deep_nesting_of_100k_levels_is_an_error_not_a_crash() {
    let n = 100_000;
    let json = format!("{}{}", "[".repeat(n), "]".repeat(n));
    let e = ld(&json, Format::Json).unwrap_err();
    assert_eq!(
        e.to_string(),
        "in:1:129: nesting deeper than the limit of 128 levels"
    );
    let yaml = format!("{}{}", "[".repeat(n), "]".repeat(n));
    // saphyr-parser stops flow nesting itself, with a position.
    let e = ld(&yaml, Format::Yaml).unwrap_err().to_string();
    assert!(
        e.starts_with("in:1:") && e.contains("recursion limit"),
        "{e}"
    );
    let yaml_block: String = (0..2000)
        .map(|i| format!("{}- \n", " ".repeat(i)))
        .collect();
    assert!(matches!(
        ld(&yaml_block, Format::Yaml),
        Err(Error::TooDeep { .. } | Error::Syntax { .. })
    ));
    let toml = format!("a = {}{}", "[".repeat(n), "]".repeat(n));
    assert!(matches!(
        ld(&toml, Format::Toml),
        Err(Error::TooDeep { .. })
    ));
    let dotted = format!("{} = 1", vec!["a"; n].join("."));
    assert!(matches!(
        ld(&dotted, Format::Toml),
        Err(Error::TooDeep { .. })
    ));
    let inline = format!("x = {}1{}", "{a = ".repeat(n), "}".repeat(n));
    assert!(matches!(
        ld(&inline, Format::Toml),
        Err(Error::TooDeep { .. })
    ));
}

#[test]
fn size_limit_is_enforced_before_parsing() {
    let limits = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    let e = load("[1,2,3,4,5,6,7]", Format::Json, "big.json", &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        "big.json: 15 bytes exceed the size limit of 10 bytes"
    );
}

#[test]
fn truncated_and_malformed_inputs_give_positions() {
    let cases = [
        (
            "{\"a\": [1, 2",
            Format::Json,
            "in:1:12: invalid json: expected ',' or ']'",
        ),
        (
            "{\"a\": tru}",
            Format::Json,
            "in:1:7: invalid json: invalid literal",
        ),
        (
            "[1,]",
            Format::Json,
            "in:1:4: invalid json: expected a value",
        ),
        (
            "\"\\uD800\"",
            Format::Json,
            "in:1:8: invalid json: unpaired surrogate in \\u escape",
        ),
        (
            "[1e999]",
            Format::Json,
            "in:1:2: invalid json: number out of range",
        ),
        (
            "[01]",
            Format::Json,
            "in:1:3: invalid json: expected ',' or ']'",
        ),
    ];
    for (text, format, want) in cases {
        assert_eq!(ld(text, format).unwrap_err().to_string(), want, "{text}");
    }
    let e = ld("a: [1, 2\nb: 3\n", Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("in:") && e.contains("invalid yaml"), "{e}");
    let e = ld("a = [1,\n", Format::Toml).unwrap_err().to_string();
    assert!(e.starts_with("in:") && e.contains("invalid toml"), "{e}");
    let e = rollgate_drift::load_bytes(b"[\"\xff\"]", Format::Json, "bin", &Limits::default())
        .unwrap_err()
        .to_string();
    assert_eq!(e, "bin:1:3: invalid json: invalid UTF-8");
}

#[test]
fn numbers_keep_their_meaning() {
    let j = ld("[1, 1.0, -0, 12345678901234567890, 1e3]", Format::Json).unwrap();
    assert_eq!(j.pointer("/0"), j.pointer("/1"));
    assert_eq!(j.pointer("/4").unwrap().to_json(), "1000.0");
    assert_eq!(j.pointer("/3").unwrap().to_json(), "1.2345678901234567e19");
    let y = ld(
        "[0x10, 0o10, 1_000, .5, .inf, 'true', !!str 3]",
        Format::Yaml,
    )
    .unwrap();
    assert_eq!(y.to_json(), r#"[16,8,"1_000",0.5,".inf","true","3"]"#);
}

#[test]
fn files_load_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.yml");
    std::fs::write(&p, "a: 1\n").unwrap();
    let n = rollgate_drift::load_file(&p, &Limits::default()).unwrap();
    assert_eq!(n.to_json(), r#"{"a":1}"#);
    let q = dir.path().join("x.ini");
    std::fs::write(&q, "a=1").unwrap();
    let e = rollgate_drift::load_file(&q, &Limits::default()).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("unknown format (use a .json, .yaml, .yml or .toml file name)")
    );
    let e = rollgate_drift::load_file(&dir.path().join("missing.json"), &Limits::default())
        .unwrap_err();
    assert!(e.to_string().contains("missing.json: cannot read:"), "{e}");
}

#[test]
fn a_byte_order_mark_is_skipped() {
    for (text, format) in [
        ("\u{feff}{\"a\": 1}", Format::Json),
        ("\u{feff}a: 1\n", Format::Yaml),
        ("\u{feff}a = 1\n", Format::Toml),
    ] {
        assert_eq!(
            ld(text, format).unwrap().to_json(),
            r#"{"a":1}"#,
            "{format:?}"
        );
    }
}

#[test]
fn load_reader_streams_json_and_reads_other_formats_whole_within_the_size_limit() {
    use rollgate_drift::{Error, Format, Limits, load, load_reader};
    let limits = Limits::default();
    let yaml = "a: 1\nb: [x, y]\n";
    assert_eq!(
        load_reader(yaml.as_bytes(), Format::Yaml, "in.yaml", &limits).unwrap(),
        load(yaml, Format::Yaml, "in.yaml", &limits).unwrap()
    );
    let json = "{\"a\": 1,\n\"b\": [\"x\", \"y\"]}\n";
    assert_eq!(
        load_reader(json.as_bytes(), Format::Json, "in.json", &limits).unwrap(),
        load(yaml, Format::Yaml, "in.yaml", &limits).unwrap()
    );
    let small = Limits {
        max_bytes: 8,
        ..Limits::default()
    };
    for format in [Format::Json, Format::Yaml, Format::Toml] {
        let err = load_reader("[1,\n2,\n3,\n4]\n".as_bytes(), format, "big", &small).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{format:?}: {err}");
        assert!(err.to_string().starts_with("big"), "{err}");
    }
}

#[test]
fn yaml_integers_with_a_leading_zero_are_octal_as_kubernetes_reads_them() {
    let t = load(
        "a: 0644\nb: -010\nc: 0\nd: 0o17\ne: 09\nf: '0644'\ng: 0x1F\nh: 0777777777777777777777777\n",
        Format::Yaml,
        "m.yaml",
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        t.to_json(),
        r#"{"a":420,"b":-8,"c":0,"d":15,"e":9,"f":"0644","g":31,"h":"0777777777777777777777777"}"#
    );
}
