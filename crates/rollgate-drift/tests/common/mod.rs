//! Tree generators shared by the property tests and the jsonpatch cross-check.
#![allow(dead_code)]

use proptest::prelude::*;
use rollgate_drift::{Map, Node, Number, Value};

pub fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(|i| Value::Number(Number::Int(i))),
        prop::sample::select(vec![0.5, -2.25, 1e300]).prop_map(|f| Value::Number(Number::Float(f))),
        prop::sample::select(vec!["a", "b", "c", "", "é\"/~", "x y"])
            .prop_map(|s| Value::String(s.into())),
    ]
}

fn object(entries: Vec<(String, Node)>) -> Node {
    let mut m = Map::new();
    for (k, v) in entries {
        m.insert(k, v);
    }
    Node::new(Value::Object(m))
}

/// Trees without list keys or secret-looking keys: every list is aligned by
/// LCS, so a patch reproduces DESIRED exactly.
pub fn tree() -> impl Strategy<Value = Node> {
    tree_with_keys(vec!["a", "b", "c", "d", "e/f", "g~h"])
}

/// Trees of leaves, lists and objects whose keys are drawn from `keys`.
fn tree_with_keys(keys: Vec<&'static str>) -> impl Strategy<Value = Node> {
    leaf()
        .prop_map(Node::new)
        .prop_recursive(4, 40, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(|v| Node::new(Value::Array(v))),
                prop::collection::vec((prop::sample::select(keys.clone()), inner), 0..5).prop_map(
                    |kv| object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                ),
            ]
        })
}

/// Trees whose lists of objects carry unique `name` keys.
pub fn keyed_tree() -> impl Strategy<Value = Node> {
    leaf()
        .prop_map(Node::new)
        .prop_recursive(3, 40, 5, |inner| {
            prop_oneof![
                prop::collection::btree_map(
                    prop::sample::select(vec!["w", "x", "y", "z"]),
                    inner.clone(),
                    0..4
                )
                .prop_map(|m| {
                    Node::new(Value::Array(
                        m.into_iter()
                            .map(|(name, v)| {
                                object(vec![
                                    ("name".to_owned(), Node::new(Value::String(name.into()))),
                                    ("v".to_owned(), v),
                                ])
                            })
                            .collect(),
                    ))
                }),
                prop::collection::vec((prop::sample::select(vec!["a", "b", "c"]), inner), 0..4)
                    .prop_map(|kv| object(
                        kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                    )),
            ]
        })
}

/// A pair that shares structure: LIVE is DESIRED with random subtrees
/// swapped in, so diffs are small and lists partly align.
pub fn related_pair() -> impl Strategy<Value = (Node, Node)> {
    (tree(), tree(), any::<u64>()).prop_map(|(d, other, seed)| {
        let mut live = d.clone();
        graft(&mut live, &other, seed);
        (d, live)
    })
}

fn graft(node: &mut Node, other: &Node, seed: u64) {
    let pick = seed % 5;
    match (&mut node.value, &other.value) {
        (Value::Array(items), _) if !items.is_empty() && pick < 2 => {
            let i = (seed as usize / 5) % items.len();
            if pick == 0 {
                items.remove(i);
            } else {
                let x = items.remove(i);
                items.push(x);
            }
        }
        (Value::Array(items), _) if !items.is_empty() => {
            let i = (seed as usize / 7) % items.len();
            graft(&mut items[i], other, seed / 11);
        }
        (Value::Object(m), _) if !m.is_empty() && pick < 4 => {
            let keys: Vec<String> = m.iter().map(|e| e.key.to_string()).collect();
            let k = &keys[(seed as usize / 5) % keys.len()];
            if pick == 0 {
                m.remove(k);
            } else if let Some(child) = m.get_mut(k) {
                graft(child, other, seed / 13);
            }
        }
        _ => *node = other.clone(),
    }
}

/// Trees like [`tree`] whose objects may also hold secret-looking keys
/// (`token`, `apiKey`): the patch must withhold what would write them.
pub fn secret_tree() -> impl Strategy<Value = Node> {
    tree_with_keys(vec!["a", "b", "token", "apiKey"])
}
