//! The differ on arena trees (ADR 0004), parsed or converted from owned
//! nodes, gives exactly the report and patch it gives on the owned trees:
//! every field of every difference (positions included), in order, and the
//! same patch.

mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use rollgate_drift::arena::Tree;
use rollgate_drift::{Differ, Format, Limits, Map, Node, Report, Rules, Value, load, load_tree};

fn config() -> Config {
    Config {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x0a7e_4a00),
        failure_persistence: None,
        ..Config::default()
    }
}

/// A rules file touching every rule attribute the differ reads, on paths the
/// generated trees use.
const RULES: &str = r#"
[defaults]
severity = "info"

[[rule]]
path = "/t/b"
ignore = true

[[rule]]
path = "/t/**/c"
normalise = ["case", "trim"]
severity = "critical"

[[rule]]
path = "/t/a"
normalise = ["number"]

[[rule]]
path = "/t/**"
key = "a"

[[rule]]
path = "/p/**"
key = ["name", "v"]

[[rule]]
path = "/t/**/e~1f"
default = "a"

[[rule]]
path = "/k/**/g~0h"
secret = true

[[rule]]
path = "/k/*/*/v"
secret = true
severity = "warning"

[[rule]]
path = "/p/*/v"
ignore = true
"#;

fn obj(entries: Vec<(&str, Node)>) -> Node {
    let mut m = Map::new();
    for (k, v) in entries {
        m.insert(k, v);
    }
    Node::new(Value::Object(m))
}

fn s(x: &str) -> Node {
    Node::new(Value::String(x.into()))
}

/// A document mixing aligned lists, keyed lists and secret-looking keys
/// (`password`, `{name: DB_PASSWORD, value: ...}`).
fn document() -> impl Strategy<Value = Node> {
    (
        common::tree(),
        common::keyed_tree(),
        common::keyed_tree(),
        common::leaf(),
        common::leaf(),
        prop::sample::select(vec!["DB_PASSWORD", "HOST", "api_token"]),
        any::<bool>(),
    )
        .prop_map(|(t, k, p, pw, env_value, env_name, with_password)| {
            let mut top = vec![
                ("t", t),
                ("k", k),
                ("p", p),
                (
                    "env",
                    Node::new(Value::Array(vec![
                        obj(vec![("name", s(env_name)), ("value", Node::new(env_value))]),
                        obj(vec![("name", s("PORT")), ("value", s("80"))]),
                    ])),
                ),
            ];
            if with_password {
                top.push(("password", Node::new(pw)));
            }
            obj(top)
        })
}

/// The shared generators' strings differ in their first byte or their
/// length, and are all short. This maps some of them to strings that share
/// both (inline `ab`/`ac`; long ones the arena keeps in its text), and the
/// float 0.5 to 2.0, which equals the integer 2.
///
/// `swap` first exchanges those look-alikes (and 2 with 0.5) on one side,
/// so the same path holds `ab` against `ac`, two long strings differing in
/// their last byte, or `2` against `2.0`.
fn swap(node: &mut Node) {
    use rollgate_drift::Number;
    match &mut node.value {
        Value::String(x) => {
            let to = match x.as_str() {
                "a" => "c",
                "c" => "a",
                "b" => "x y",
                "x y" => "b",
                _ => return,
            };
            *x = to.into();
        }
        Value::Number(Number::Int(2)) => node.value = Value::Number(Number::Float(0.5)),
        Value::Number(Number::Float(f)) if *f == 0.5 => node.value = Value::Number(Number::Int(2)),
        Value::Array(items) => items.iter_mut().for_each(swap),
        Value::Object(m) => m.iter_mut().for_each(|(_, v)| swap(v)),
        _ => {}
    }
}

fn widen(node: &mut Node) {
    match &mut node.value {
        Value::String(x) => {
            let to = match x.as_str() {
                "a" => "ab",
                "c" => "ac",
                "b" => "a-long-string-over-eleven-bytes",
                "x y" => "a-long-string-over-eleven-bytez",
                _ => return,
            };
            *x = to.into();
        }
        Value::Number(rollgate_drift::Number::Float(f)) if *f == 0.5 => *f = 2.0,
        Value::Array(items) => items.iter_mut().for_each(widen),
        Value::Object(m) => m.iter_mut().for_each(|(_, v)| widen(v)),
        _ => {}
    }
}

/// A pair of documents sharing structure, or two unrelated ones.
fn pair() -> impl Strategy<Value = (Node, Node)> {
    let widened = |(mut d, mut l): (Node, Node)| {
        widen(&mut d);
        widen(&mut l);
        (d, l)
    };
    prop_oneof![
        base_pair(),
        base_pair().prop_map(widened),
        document().prop_map(move |d| {
            let mut l = d.clone();
            swap(&mut l);
            widened((d, l))
        }),
    ]
}

fn base_pair() -> impl Strategy<Value = (Node, Node)> {
    prop_oneof![
        (document(), document()),
        (document(), common::related_pair()).prop_map(|(d, (t1, t2))| {
            let mut l = d.clone();
            let mut d = d;
            if let (Value::Object(dm), Value::Object(lm)) = (&mut d.value, &mut l.value) {
                dm.insert("t", t1);
                lm.insert("t", t2);
            }
            (d, l)
        }),
        document().prop_map(|d| (d.clone(), d)),
    ]
}

/// Every field of every difference, positions and key positions included
/// (`Debug` shows them; `==` on nodes ignores them), and the patch.
fn show(r: &Report) -> (Vec<String>, String, String) {
    (
        r.differences().iter().map(|d| format!("{d:?}")).collect(),
        format!("{:?}", r.patch()),
        r.patch().to_json(),
    )
}

fn both(differ: &Differ, desired: &str, live: &str) -> Result<(), TestCaseError> {
    let limits = Limits::default();
    let (d, l) = (
        load(desired, Format::Json, "desired.json", &limits)
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
        load(live, Format::Json, "live.json", &limits)
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
    );
    let (da, la) = (
        load_tree(desired, Format::Json, "desired.json", &limits)
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
        load_tree(live, Format::Json, "live.json", &limits)
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
    );
    let owned = differ.diff(&d, &l);
    let views = differ.diff_trees(&da, &la);
    prop_assert_eq!(show(&owned), show(&views));
    // Trees converted from the owned nodes (as YAML, TOML and overlay
    // results reach the differ) hold positions in a table instead.
    let (dt, lt) = (Tree::from_node(&d).unwrap(), Tree::from_node(&l).unwrap());
    let converted = differ.diff_trees(&dt, &lt);
    prop_assert_eq!(show(&owned), show(&converted));
    prop_assert_eq!(owned, views);
    Ok(())
}

fn rules() -> Rules {
    Rules::from_toml(RULES, "equiv.rules.toml").expect("rules parse")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arena_diff_equals_owned_diff_without_rules((d, l) in pair(), pretty in any::<(bool, bool)>()) {
        let render = |n: &Node, p: bool| if p { rollgate_drift::to_json_pretty(n) } else { n.to_json() };
        both(&Differ::default(), &render(&d, pretty.0), &render(&l, pretty.1))?;
    }

    #[test]
    fn arena_diff_equals_owned_diff_with_rules((d, l) in pair(), pretty in any::<(bool, bool)>()) {
        let render = |n: &Node, p: bool| if p { rollgate_drift::to_json_pretty(n) } else { n.to_json() };
        both(&Differ::new(rules()), &render(&d, pretty.0), &render(&l, pretty.1))?;
    }
}

/// The generated pairs do reach every path of the differ the rules steer
/// (otherwise the equivalence above would prove little).
#[test]
fn the_generated_pairs_exercise_rules_and_masking() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let differ = Differ::new(rules());
    let (mut masked, mut moved, mut critical, mut keyed_label, mut type_changed) = (0, 0, 0, 0, 0);
    for _ in 0..256 {
        let (d, l) = pair().new_tree(&mut runner).expect("value").current();
        let r = differ.diff(&d, &l);
        for x in r.differences() {
            masked += usize::from(x.secret);
            moved += usize::from(x.kind == rollgate_drift::Kind::Moved);
            critical += usize::from(x.severity == rollgate_drift::Severity::Critical);
            keyed_label += usize::from(x.label.contains('='));
            type_changed += usize::from(x.kind == rollgate_drift::Kind::TypeChanged);
        }
    }
    assert!(
        masked > 0 && moved > 0 && critical > 0 && keyed_label > 0 && type_changed > 0,
        "masked {masked}, moved {moved}, critical {critical}, keyed {keyed_label}, type-changed {type_changed}"
    );
}
