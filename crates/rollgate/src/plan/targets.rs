//! The plan's identity sections: `service`, `artifact`, `previous`,
//! `[[known]]`, `[[precheck]]` and `targets` (plain names or tables with
//! string attributes).

use std::collections::BTreeMap;
use std::time::Duration;

use rollgate_deploy::{Artifact, CommandTemplate, Digest, Error, TargetAttributes, TargetId};
use serde::Deserialize;
use toml::Spanned;

use super::file::Ctx;

/// A target: a plain name, or a table with `name` and string attributes.
#[derive(Debug)]
pub(super) struct RawTarget {
    name: String,
    attributes: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TargetVisitor)
    }
}

struct TargetVisitor;

impl<'de> serde::de::Visitor<'de> for TargetVisitor {
    type Value = RawTarget;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a target name or a table { name = \"...\", attribute = \"...\" }")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTarget, E> {
        Ok(RawTarget {
            name: v.to_string(),
            attributes: BTreeMap::new(),
        })
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawTarget, A::Error> {
        use serde::de::Error as _;
        let mut name = None;
        let mut attributes = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: String = map.next_value().map_err(|e| {
                A::Error::custom(format!(
                    "target attribute {key:?}: {e} (attributes are strings)"
                ))
            })?;
            if key == "name" {
                name = Some(value);
            } else {
                attribute_ok(&key, &value).map_err(A::Error::custom)?;
                attributes.insert(key, value);
            }
        }
        let name = name.ok_or_else(|| A::Error::missing_field("name"))?;
        Ok(RawTarget { name, attributes })
    }
}

/// Why attribute `key = value` cannot be used in command templates, if it cannot.
fn attribute_ok(key: &str, value: &str) -> Result<(), String> {
    if RESERVED.contains(&key) {
        Err(format!(
            "target attribute {key:?} would shadow the placeholder {{{key}}}; rename it"
        ))
    } else if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Err(format!(
            "target attribute {key:?}: names are letters, digits and _"
        ))
    } else if !rollgate_deploy::attribute_value_ok(value) {
        Err(format!(
            "target attribute {key} = {value:?}: values are 1 to 256 ASCII letters, digits or . _ - : / @ + = , % (they are spliced into shell commands)"
        ))
    } else {
        Ok(())
    }
}

/// Placeholder names of the command templates: no attribute may take one.
const RESERVED: &[&str] = &[
    "service",
    "target",
    "targets",
    "version",
    "digest",
    "artifact",
    "rollout",
    "percent",
    "phase",
    "previous_version",
    "previous_digest",
    "color",
];

/// The attribute names of `attrs`, sorted, each once.
pub(super) fn attribute_names(attrs: &TargetAttributes) -> Vec<&str> {
    let mut names: Vec<&str> = attrs
        .values()
        .flat_map(|a| a.keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrecheck {
    #[serde(default)]
    name: Option<String>,
    command: Spanned<String>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

/// A policy gate run before anything changes (`[[precheck]]`): exit 0
/// lets the rollout start; any other exit refuses it, with its standard
/// output as the reason.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Precheck {
    /// Its name (`precheck N` when the plan gives none).
    pub name: String,
    /// The command, with `{service}`, `{version}`, `{digest}`, `{artifact}`.
    pub command: CommandTemplate,
    /// How long it may run.
    pub timeout: Duration,
}

/// Placeholders a precheck command may use.
pub const PRECHECK_PLACEHOLDERS: &[&str] = &["service", "version", "digest", "artifact"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArtifact {
    version: Spanned<String>,
    digest: Spanned<String>,
    #[serde(default)]
    sbom: Option<String>,
}

impl Ctx<'_> {
    /// `service`: one word.
    pub(super) fn service(&self, s: &Spanned<String>) -> Result<String, Error> {
        let service = s.get_ref().trim().to_string();
        if service.is_empty() || service.contains(char::is_whitespace) {
            return self.err(s.span(), "service must be a non-empty name without spaces");
        }
        Ok(service)
    }

    pub(super) fn artifact(&self, a: &Spanned<RawArtifact>) -> Result<Artifact, Error> {
        let raw = a.get_ref();
        let digest: Digest = self.wrap(raw.digest.span(), raw.digest.get_ref().parse())?;
        let art = Artifact {
            version: raw.version.get_ref().clone(),
            digest,
            sbom: raw.sbom.clone(),
        };
        self.wrap(raw.version.span(), art.validate())?;
        Ok(art)
    }

    /// `previous`, which must differ from `artifact`.
    pub(super) fn previous(
        &self,
        raw: Option<&Spanned<RawArtifact>>,
        artifact: &Artifact,
    ) -> Result<Option<Artifact>, Error> {
        let Some(raw) = raw else { return Ok(None) };
        let previous = self.artifact(raw)?;
        if previous.digest == artifact.digest {
            return self.err(raw.span(), "previous is the same artifact as artifact");
        }
        Ok(Some(previous))
    }

    /// `[[known]]`: each version names one digest across the plan; repeats are dropped.
    pub(super) fn known(
        &self,
        raw: &[Spanned<RawArtifact>],
        declared: &[&Artifact],
    ) -> Result<Vec<Artifact>, Error> {
        let mut known: Vec<Artifact> = Vec::new();
        for k in raw {
            let a = self.artifact(k)?;
            let clash = declared
                .iter()
                .copied()
                .chain(known.iter())
                .find(|o| o.version == a.version || o.digest == a.digest);
            if let Some(o) = clash
                && o != &a
            {
                return self.err(
                    k.span(),
                    format!("known artifact {a} clashes with {o}: a version names one digest"),
                );
            }
            if clash.is_none() {
                known.push(a);
            }
        }
        Ok(known)
    }

    /// `[[precheck]]`, read before the targets: their attributes are not placeholders here.
    pub(super) fn prechecks(&self, raw: &[Spanned<RawPrecheck>]) -> Result<Vec<Precheck>, Error> {
        raw.iter()
            .enumerate()
            .map(|(i, p)| {
                let p = p.get_ref();
                let timeout = self.opt_duration(&p.timeout, Duration::from_secs(300))?;
                Ok(Precheck {
                    name: p
                        .name
                        .clone()
                        .filter(|n| !n.trim().is_empty())
                        .unwrap_or_else(|| format!("precheck {}", i + 1)),
                    command: self.template(&p.command, PRECHECK_PLACEHOLDERS)?,
                    timeout,
                })
            })
            .collect()
    }

    /// `targets`: valid names, each once, not none; their attributes become
    /// placeholders of every later template.
    pub(super) fn read_targets(
        &mut self,
        raw: &Spanned<Vec<Spanned<RawTarget>>>,
    ) -> Result<Vec<TargetId>, Error> {
        let list = raw.get_ref();
        let targets = list
            .iter()
            .map(|t| self.wrap(t.span(), t.get_ref().name.parse()))
            .collect::<Result<Vec<TargetId>, Error>>()?;
        for (t, raw_t) in targets.iter().zip(list) {
            if !raw_t.get_ref().attributes.is_empty() {
                self.attributes
                    .insert(t.clone(), raw_t.get_ref().attributes.clone());
            }
        }
        self.targets = targets.clone();
        if targets.is_empty() {
            return self.err(raw.span(), "the target list is empty");
        }
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].contains(t) {
                return self.err(list[i].span(), format!("target {t} is listed twice"));
            }
        }
        Ok(targets)
    }

    /// Target names written in a strategy (blue-green colours, rings).
    pub(super) fn target_names(&self, list: &[Spanned<String>]) -> Result<Vec<TargetId>, Error> {
        list.iter()
            .map(|t| self.wrap(t.span(), t.get_ref().parse()))
            .collect()
    }
}
