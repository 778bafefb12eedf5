//! Two arbitrary trees: the differ's patch turns LIVE into DESIRED exactly
//! (no list keys, no secret-looking keys), diff(x, x) is empty, the patch
//! JSON loads back as JSON, and the compact trees (converted, and parsed
//! from the JSON text) give the same report as the owned ones.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rollgate_drift::arena::Tree;
use rollgate_drift::{Differ, Format, Limits, Map, Node, Number, Value, diff, load, load_tree};

#[derive(Debug, Arbitrary)]
enum T {
    Null,
    Bool(bool),
    Int(i8),
    Float(u8),
    Str(u8),
    Arr(Vec<T>),
    Obj(Vec<(u8, T)>),
}

const WORDS: [&str; 8] = ["a", "b", "c", "", "x/y", "m~n", "é", "\"q\""];

fn node(t: &T, depth: usize) -> Node {
    let v = match t {
        T::Null => Value::Null,
        T::Bool(b) => Value::Bool(*b),
        T::Int(i) => Value::Number(Number::Int(i64::from(*i))),
        T::Float(f) => Value::Number(Number::Float(f64::from(*f) / 4.0)),
        T::Str(s) => Value::String(WORDS[usize::from(*s) % WORDS.len()].into()),
        T::Arr(items) if depth < 32 => {
            Value::Array(items.iter().map(|i| node(i, depth + 1)).collect())
        }
        T::Obj(entries) if depth < 32 => {
            let mut m = Map::new();
            for (k, v) in entries {
                m.insert(WORDS[usize::from(*k) % WORDS.len()], node(v, depth + 1));
            }
            Value::Object(m)
        }
        _ => Value::Null,
    };
    Node::new(v)
}

fuzz_target!(|pair: (T, T)| {
    let desired = node(&pair.0, 0);
    let live = node(&pair.1, 0);
    let report = diff(&desired, &live);
    let mut patched = live.clone();
    report
        .patch()
        .apply(&mut patched)
        .expect("the patch must apply to LIVE");
    assert_eq!(patched, desired, "patch: {}", report.patch().to_json());
    assert_eq!(report.has_drift(), desired != live);
    assert!(!diff(&desired, &desired).has_drift());
    let differ = Differ::default();
    let to_tree = |n: &Node| Tree::from_node(n).expect("small trees convert");
    let converted = differ.diff_trees(&to_tree(&desired), &to_tree(&live));
    assert_eq!(converted, report);
    let parse = |n: &Node, name| load_tree(&n.to_json(), Format::Json, name, &Limits::default());
    let (d, l) = (parse(&desired, "d.json").unwrap(), parse(&live, "l.json").unwrap());
    // Positions differ (the parsed trees have them); paths and kinds do not.
    let shape = |r: &rollgate_drift::Report| -> Vec<(String, rollgate_drift::Kind)> {
        r.differences().iter().map(|x| (x.path.clone(), x.kind)).collect()
    };
    assert_eq!(shape(&differ.diff_trees(&d, &l)), shape(&report));
    load(
        &report.patch().to_json(),
        Format::Json,
        "patch.json",
        &Limits::default(),
    )
    .expect("the patch must be valid JSON");
});
