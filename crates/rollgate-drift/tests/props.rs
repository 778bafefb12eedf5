//! Property tests of the differ's invariants (fixed seed, no persistence).

mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use rollgate_drift::{
    Differ, Map, Node, RenderOptions, Rules, Value, diff, render_json, render_text,
};

fn config() -> Config {
    Config {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x000d_21f7),
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn patch_turns_live_into_desired_exactly(d in common::tree(), l in common::tree()) {
        let mut patched = l.clone();
        diff(&d, &l).patch().apply(&mut patched).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(patched, d);
    }

    #[test]
    fn patch_roundtrips_on_related_pairs((d, l) in common::related_pair()) {
        let r = diff(&d, &l);
        let mut patched = l.clone();
        r.patch().apply(&mut patched).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&patched, &d);
        prop_assert_eq!(r.has_drift(), d != l);
    }

    #[test]
    fn patch_roundtrips_with_keyed_lists(d in common::keyed_tree(), l in common::keyed_tree()) {
        let mut patched = l.clone();
        diff(&d, &l).patch().apply(&mut patched).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Keyed lists keep LIVE's order: equal as far as drift is concerned.
        prop_assert!(!diff(&d, &patched).has_drift(), "{}", diff(&d, &patched).patch().to_json());
    }

    #[test]
    fn a_tree_never_drifts_from_itself(x in common::keyed_tree(), y in common::tree()) {
        prop_assert!(!diff(&x, &x.clone()).has_drift());
        prop_assert!(diff(&y, &y.clone()).patch().is_empty());
        prop_assert!(!Differ::default().parity(&y, &y.clone()).has_drift());
    }

    #[test]
    fn permuting_a_keyed_list_is_never_drift(
        items in prop::collection::btree_map("[a-z]{1,4}", common::tree(), 1..12)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
            .prop_shuffle()
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        key in prop::sample::select(vec!["name", "id", "key"]),
    ) {
        let list = |v: &[(String, Node)]| {
            Node::new(Value::Array(v.iter().map(|(k, n)| {
                let mut m = Map::new();
                m.insert(key, Node::new(Value::String(k.as_str().into())));
                m.insert("spec", n.clone());
                Node::new(Value::Object(m))
            }).collect()))
        };
        let (a, b) = (list(&items.0), list(&items.1));
        let r = diff(&a, &b);
        prop_assert!(!r.has_drift(), "{:?}", r.differences());
        prop_assert!(r.patch().is_empty());
    }

    /// With secrets about: the patch never writes the mask, applies, and
    /// leaves only secret drift (masked values, or what lies under a
    /// withheld path).
    #[test]
    fn the_patch_withholds_secrets_and_fixes_the_rest(d in common::secret_tree(), l in common::secret_tree()) {
        let r = diff(&d, &l);
        let text = r.patch().to_json();
        prop_assert!(!text.contains("***"), "{}", text);
        let mut patched = l.clone();
        r.patch().apply(&mut patched).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        let under = |p: &str| r.withheld().iter().any(|w| p == w || p.starts_with(&format!("{w}/")));
        for x in diff(&d, &patched).differences() {
            let masked = x.secret
                || [&x.desired, &x.live].iter().any(|v| v.as_ref().is_some_and(|n| n.to_json().contains("***")));
            prop_assert!(
                masked || under(&x.path) || x.live_path.as_deref().is_some_and(under),
                "{} {} left by the patch {}; withheld {:?}", x.kind, x.path, text, r.withheld()
            );
        }
    }

    #[test]
    fn masked_values_never_appear_in_any_output(
        d in common::tree(), l in common::tree(),
        secret_key in prop::sample::select(vec!["password", "apiKey", "token", "client_secret", "vault"]),
        nested in any::<bool>(),
    ) {
        const CANARY: &str = "canary-8f3a-do-not-print";
        let put = |t: &Node, value: &str| {
            let mut m = Map::new();
            m.insert("tree", t.clone());
            let leaf = Node::new(Value::String(value.into()));
            let v = if nested {
                let mut inner = Map::new();
                inner.insert("inner", leaf);
                Node::new(Value::Array(vec![Node::new(Value::Object(inner))]))
            } else {
                leaf
            };
            m.insert(secret_key, v);
            Node::new(Value::Object(m))
        };
        let rules = Rules::from_toml("[[rule]]\npath = \"/vault/**\"\nsecret = true\n", "r.toml")
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let differ = Differ::new(rules);
        for (a, b) in [(put(&d, CANARY), put(&l, "other")), (put(&d, "other"), put(&l, CANARY)),
                       (put(&d, CANARY), Node::new(Value::Null))] {
            for r in [differ.diff(&a, &b), differ.diff(&b, &a), differ.parity(&a, &b)] {
                let opts = RenderOptions::new("d", "l");
                for out in [render_text(&r, &opts), render_json(&r, &opts), r.patch().to_json(),
                            r.patch().to_json_lines(), format!("{:?}", r)] {
                    prop_assert!(!out.contains(CANARY), "{}", out);
                }
            }
        }
    }
}
