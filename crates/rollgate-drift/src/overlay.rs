//! Overlays: a base tree plus environment files merged by strategic-merge
//! rules (as Kustomize does): maps merge, scalars replace, lists merge by key
//! when their elements have one and are replaced otherwise, and `$patch`
//! directives delete or replace explicitly.

use crate::diff::partners;
use crate::error::Error;
use crate::rules::Rules;
use crate::tree::{Map, Node, Value, escape_token};

const DIRECTIVE: &str = "$patch";

/// Merges `overlay` into `base` in place.
///
/// - objects merge key by key; a key whose overlay value is
///   `{"$patch": "delete"}` is removed; an overlay object holding
///   `"$patch": "replace"` replaces the base object instead of merging;
/// - lists whose elements all carry a key (the rule's `key`, else `name`,
///   `id`, `key`, `kind`+`/metadata/name`) merge element by element: matching
///   keys merge, new keys append, and an element holding `"$patch": "delete"`
///   removes the base element with its key; an element
///   `{"$patch": "replace"}` makes the list replace the base list; other
///   lists replace;
/// - scalars and values of different types replace.
///
/// `source_name` names the overlay in errors.
///
/// ```
/// use rollgate_drift::{Format, Limits, Rules, load, apply_overlay};
/// let mut base = load("replicas: 1\ncontainers:\n- {name: web, image: web:1}\n- {name: debug, image: dbg}\nlabels: {team: a, tier: web}\n",
///     Format::Yaml, "base.yaml", &Limits::default())?;
/// let prod = load("replicas: 5\ncontainers:\n- {name: web, image: web:2}\n- {name: debug, $patch: delete}\nlabels: {tier: {$patch: delete}}\n",
///     Format::Yaml, "prod.yaml", &Limits::default())?;
/// apply_overlay(&mut base, &prod, &Rules::new(), "prod.yaml")?;
/// assert_eq!(base.to_json(),
///     r#"{"containers":[{"image":"web:2","name":"web"}],"labels":{"team":"a"},"replicas":5}"#);
/// # Ok::<(), rollgate_drift::Error>(())
/// ```
pub fn apply_overlay(
    base: &mut Node,
    overlay: &Node,
    rules: &Rules,
    source_name: &str,
) -> Result<(), Error> {
    let mut m = Merger {
        rules,
        source_name,
        path: Vec::new(),
    };
    if directive(overlay)? == Some(Directive::Delete) {
        return Err(m.error(overlay, "cannot delete the whole document"));
    }
    m.merge(base, overlay)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Delete,
    Replace,
}

fn directive(node: &Node) -> Result<Option<Directive>, Error> {
    let Value::Object(map) = &node.value else {
        return Ok(None);
    };
    match map.get(DIRECTIVE).map(|n| &n.value) {
        None => Ok(None),
        Some(Value::String(s)) if s == "delete" => Ok(Some(Directive::Delete)),
        Some(Value::String(s)) if s == "replace" => Ok(Some(Directive::Replace)),
        Some(_) => Err(Error::Overlay {
            source_name: String::new(),
            path: String::new(),
            line: node.pos.line,
            column: node.pos.column,
            message: "$patch must be \"delete\" or \"replace\"".to_owned(),
        }),
    }
}

/// A copy without `$patch` keys (they are instructions, not content).
fn strip(node: &Node) -> Node {
    match &node.value {
        Value::Object(map) => {
            let mut out = Map::new();
            for e in map {
                if e.key != DIRECTIVE {
                    out.insert(e.key.clone(), strip(&e.node));
                }
            }
            Node::at(Value::Object(out), node.pos)
        }
        Value::Array(items) => Node::at(
            Value::Array(
                items
                    .iter()
                    .filter(|i| directive(i).ok().flatten().is_none())
                    .map(strip)
                    .collect(),
            ),
            node.pos,
        ),
        _ => node.clone(),
    }
}

struct Merger<'a> {
    rules: &'a Rules,
    source_name: &'a str,
    path: Vec<String>,
}

impl Merger<'_> {
    fn error(&self, at: &Node, message: &str) -> Error {
        Error::Overlay {
            source_name: self.source_name.to_owned(),
            path: self
                .path
                .iter()
                .map(|t| format!("/{}", escape_token(t)))
                .collect(),
            line: at.pos.line,
            column: at.pos.column,
            message: message.to_owned(),
        }
    }

    fn directive(&self, node: &Node) -> Result<Option<Directive>, Error> {
        directive(node).map_err(|_| self.error(node, "$patch must be \"delete\" or \"replace\""))
    }

    fn merge(&mut self, base: &mut Node, over: &Node) -> Result<(), Error> {
        match (&mut base.value, &over.value) {
            (Value::Object(bm), Value::Object(om)) => {
                if self.directive(over)? == Some(Directive::Replace) {
                    *base = strip(over);
                    return Ok(());
                }
                for e in om {
                    if e.key == DIRECTIVE {
                        continue;
                    }
                    self.path.push(e.key.to_string());
                    match self.directive(&e.node)? {
                        Some(Directive::Delete) => {
                            bm.remove(&e.key);
                        }
                        _ => match bm.get_mut(&e.key) {
                            Some(child) => self.merge(child, &e.node)?,
                            None => {
                                bm.insert(e.key.clone(), strip(&e.node));
                            }
                        },
                    }
                    self.path.pop();
                }
                Ok(())
            }
            (Value::Array(bl), Value::Array(ol)) => {
                let mut replace = false;
                let mut content = Vec::new();
                for item in ol {
                    match self.directive(item)? {
                        Some(Directive::Replace) if matches!(&item.value, Value::Object(m) if m.len() == 1) =>
                        {
                            replace = true;
                        }
                        _ => content.push(item.clone()),
                    }
                }
                if replace {
                    *base = Node::at(Value::Array(content.iter().map(strip).collect()), over.pos);
                    return Ok(());
                }
                let rule_key = self.rules.resolve(&self.path).key;
                // Deletion markers carry only the key, so detect keys on the
                // content and the base together.
                // Resolve each overlay element to its base index before
                // mutating the base (the keys borrow it).
                let Some(matches) = partners(rule_key.as_ref(), &content, bl) else {
                    *base = strip(over);
                    return Ok(());
                };
                let mut appended = Vec::new();
                let mut delete = Vec::new();
                for (item, found) in content.iter().zip(matches) {
                    match found {
                        Some(i) => {
                            if self.directive(item)? == Some(Directive::Delete) {
                                delete.push(i);
                            } else {
                                self.path.push(i.to_string());
                                self.merge(&mut bl[i], item)?;
                                self.path.pop();
                            }
                        }
                        None => {
                            if self.directive(item)? != Some(Directive::Delete) {
                                appended.push(strip(item));
                            }
                        }
                    }
                }
                delete.sort_unstable();
                for i in delete.into_iter().rev() {
                    bl.remove(i);
                }
                bl.extend(appended);
                Ok(())
            }
            _ => {
                *base = strip(over);
                Ok(())
            }
        }
    }
}
