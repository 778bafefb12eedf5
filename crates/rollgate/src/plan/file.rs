//! Reading a plan file: the document as serde structures with spans (one
//! per section, in the section's module), validated section by section
//! into a [`Plan`]. Every error names the file, line and column.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rollgate_canary::AnalysisConfig;
use rollgate_deploy::{CommandTemplate, Error, RetryPolicy, TargetAttributes, TargetId};
use serde::Deserialize;
use toml::Spanned;

use super::Plan;
use super::commands::{RawDeployer, RawReadiness, RawRouter};
use super::notify::{RawNotify, RawNotifyRetry, RawRetry};
use super::strategy::RawStrategy;
use super::targets::{RawArtifact, RawPrecheck, RawTarget, attribute_names};

/// The whole document. `[gate]` is read by kind from the parsed tree
/// ([`Ctx::gate`]), so only its presence is recorded here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    service: Spanned<String>,
    artifact: Spanned<RawArtifact>,
    #[serde(default)]
    previous: Option<Spanned<RawArtifact>>,
    #[serde(default)]
    known: Vec<Spanned<RawArtifact>>,
    #[serde(default)]
    precheck: Vec<Spanned<RawPrecheck>>,
    targets: Spanned<Vec<Spanned<RawTarget>>>,
    deployer: Spanned<RawDeployer>,
    strategy: Spanned<RawStrategy>,
    #[serde(default)]
    gate: Option<Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    router: Option<Spanned<RawRouter>>,
    #[serde(default)]
    readiness: Option<RawReadiness>,
    #[serde(default)]
    retry: Option<RawRetry>,
    #[serde(default)]
    notify: Vec<Spanned<RawNotify>>,
    /// Waits between notification attempts: the keys of `[retry]`, and `timeout`.
    #[serde(default)]
    notify_retry: Option<RawNotifyRetry>,
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// What validating one file needs: where it is (for messages), and the
/// targets with their attributes once read (placeholders of later templates).
pub(super) struct Ctx<'a> {
    pub(super) path: &'a str,
    text: &'a str,
    pub(super) attributes: TargetAttributes,
    pub(super) targets: Vec<TargetId>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(path: &'a str, text: &'a str) -> Self {
        Self {
            path,
            text,
            attributes: TargetAttributes::new(),
            targets: Vec::new(),
        }
    }

    /// An error at `span`: `path:line:column: reason`.
    pub(super) fn err<T>(&self, span: Range<usize>, reason: impl Into<String>) -> Result<T, Error> {
        let (l, c) = line_col(self.text, span.start);
        Err(Error::PlanFile {
            path: format!("{}:{l}:{c}", self.path),
            reason: reason.into(),
        })
    }

    pub(super) fn toml_error(&self, e: &toml::de::Error) -> Error {
        let (l, c) = line_col(self.text, e.span().unwrap_or(0..0).start);
        Error::PlanFile {
            path: format!("{}:{l}:{c}", self.path),
            reason: e.message().trim().to_string(),
        }
    }

    /// `r`, or its error placed at `span`.
    pub(super) fn wrap<T>(&self, span: Range<usize>, r: Result<T, Error>) -> Result<T, Error> {
        r.or_else(|e| {
            let reason = match e {
                Error::Invalid { reason, .. } => reason,
                other => other.to_string(),
            };
            self.err(span, reason)
        })
    }

    pub(super) fn duration(&self, s: &Spanned<String>) -> Result<Duration, Error> {
        humantime::parse_duration(s.get_ref().trim()).or_else(|e| {
            self.err(
                s.span(),
                format!(
                    "bad duration {:?}: {e} (write e.g. \"30s\", \"5m\")",
                    s.get_ref()
                ),
            )
        })
    }

    /// A duration above zero (the canary gate's windows and intervals).
    pub(super) fn positive_duration(&self, s: &Spanned<String>) -> Result<Duration, Error> {
        let d = self.duration(s)?;
        if d.is_zero() {
            return self.err(s.span(), "the duration must be above zero");
        }
        Ok(d)
    }

    pub(super) fn opt_duration(
        &self,
        s: &Option<Spanned<String>>,
        default: Duration,
    ) -> Result<Duration, Error> {
        s.as_ref().map_or(Ok(default), |s| self.duration(s))
    }

    pub(super) fn count(&self, v: &Spanned<i64>, what: &str, min: i64) -> Result<usize, Error> {
        let n = *v.get_ref();
        if n < min {
            return self.err(v.span(), format!("{what} must be at least {min}, not {n}"));
        }
        Ok(n as usize)
    }

    /// A command template using only `allowed` placeholders and the
    /// attributes every target has.
    pub(super) fn template(
        &self,
        s: &Spanned<String>,
        allowed: &[&str],
    ) -> Result<CommandTemplate, Error> {
        let t = self.wrap(s.span(), CommandTemplate::new(s.get_ref().clone()))?;
        let names = attribute_names(&self.attributes);
        let mut all = allowed.to_vec();
        all.extend(names.iter().copied());
        self.wrap(s.span(), t.check_placeholders(&all))?;
        for p in t.placeholders().into_iter().filter(|p| names.contains(p)) {
            if let Some(target) = self
                .targets
                .iter()
                .find(|t| !self.attributes.get(*t).is_some_and(|a| a.contains_key(p)))
            {
                return self.err(
                    s.span(),
                    format!("{{{p}}}: target {target} has no attribute {p:?}"),
                );
            }
        }
        Ok(t)
    }
}

/// Validates plan `text`, section by section, in the order a person reads
/// it. `path` names it in messages; a canary gate's analysis file is found
/// in `dir`, unless `given` (path and analysis read by the caller).
pub(super) fn parse(
    text: &str,
    path: &str,
    dir: &Path,
    given: Option<(PathBuf, AnalysisConfig)>,
) -> Result<Plan, Error> {
    let mut cx = Ctx::new(path, text);
    // Parsed once: the plan is read from this tree, and `[gate]` again by kind.
    let doc = toml::de::DeTable::parse(text).map_err(|e| cx.toml_error(&e))?;
    let raw = RawPlan::deserialize(toml::de::Deserializer::from(doc.clone()))
        .map_err(|e| cx.toml_error(&e))?;
    let service = cx.service(&raw.service)?;
    let artifact = cx.artifact(&raw.artifact)?;
    let previous = cx.previous(raw.previous.as_ref(), &artifact)?;
    let prechecks = cx.prechecks(&raw.precheck)?;
    let declared: Vec<_> = std::iter::once(&artifact).chain(previous.iter()).collect();
    let known = cx.known(&raw.known, &declared)?;
    let targets = cx.read_targets(&raw.targets)?;
    let deployer = cx.deployer(raw.deployer.get_ref())?;
    let (strategy, defaults) = cx.strategy(&raw.strategy, raw.gate.is_some())?;
    let gate = cx.gate(&doc)?;
    let router = cx.router(raw.router.as_ref(), &strategy, raw.strategy.span())?;
    let (ready_timeout, ready_interval) = cx.readiness(raw.readiness.as_ref())?;
    let retry = cx.retry(raw.retry.as_ref(), RetryPolicy::default())?;
    let notify = cx.notify_config(&raw.notify, raw.notify_retry)?;
    let canary = match gate.as_ref().and_then(|g| g.canary.as_ref()) {
        Some(g) => Some(cx.canary(g, defaults.bake, dir, given)?),
        None => None,
    };
    Ok(Plan {
        path: path.to_string(),
        service,
        artifact,
        previous,
        known,
        prechecks,
        targets,
        attributes: cx.attributes,
        gate_kind: gate.as_ref().map(|g| g.kind.clone()),
        strategy,
        defaults,
        gate_policy: gate.as_ref().map(|g| g.policy.clone()).unwrap_or_default(),
        canary,
        notify: notify.destinations,
        notify_retry: notify.retry,
        notify_timeout: notify.timeout,
        text: text.to_string(),
        deployer,
        command_gate: gate.as_ref().and_then(|g| g.command.clone()),
        gate_timeout: gate
            .as_ref()
            .map_or(Duration::from_secs(300), |g| g.timeout),
        router,
        ready_timeout,
        ready_interval,
        retry,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rollgate_deploy::{GateUse, Jitter, RetryPolicy, TargetId};

    use super::super::Plan;
    use super::line_col;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn plan(strategy: &str) -> String {
        format!(
            r#"service = "web"
artifact = {{ version = "v2", digest = "{DIGEST}" }}
targets = ["web-1", "web-2", "web-3", "web-4", "web-5", "web-6", "web-7", "web-8", "web-9", "web-10"]

[deployer]
kind = "command"
deploy = "echo {{version}} > /srv/{{target}}/current"
current = "cat /srv/{{target}}/current"
ready = "test -s /srv/{{target}}/current"
timeout = "30s"

[strategy]
{strategy}

[gate]
kind = "command"
command = "./check.sh {{service}} {{version}} {{percent}}"
"#
        )
    }

    fn err(text: &str) -> String {
        Plan::parse(text, "plan.toml").unwrap_err().to_string()
    }

    #[test]
    fn the_minimal_plan_from_the_issue_parses() {
        let p = Plan::parse(
            &plan("kind = \"canary\"\nsteps = [10, 50, 100]\nbake = \"5s\""),
            "plan.toml",
        )
        .unwrap();
        let req = p.request("alice", None);
        let sizes: Vec<usize> = req.plan.phases.iter().map(|p| p.targets.len()).collect();
        assert_eq!(sizes, [1, 4, 5]);
        assert!(
            req.plan
                .phases
                .iter()
                .all(|p| p.gate == GateUse::Required && p.bake == Duration::from_secs(5))
        );
        assert!(p.gate(None).unwrap().is_some());
    }

    #[test]
    fn retry_jitter_and_seed_are_read_from_the_plan() {
        let canary = "kind = \"canary\"\nsteps = [10, 100]";
        let with = |retry: &str| format!("{}\n[retry]\n{retry}\n", plan(canary));
        let web: Vec<TargetId> = (1..=10)
            .map(|i| format!("web-{i}").parse().unwrap())
            .collect();

        // Default: full jitter, seed 0, as RetryPolicy::default().
        let p = Plan::parse(&plan(canary), "plan.toml").unwrap();
        assert_eq!(p.executor_config("me").retry, RetryPolicy::default());

        // Full jitter with a seed: waits below the backoff, spread over the
        // targets, and the same for the same seed.
        let p = Plan::parse(&with("jitter = \"full\"\nseed = 20261206"), "plan.toml").unwrap();
        let retry = p.executor_config("me").retry;
        assert_eq!(retry, RetryPolicy::default().with_seed(20261206));
        let waits: Vec<Duration> = web.iter().map(|t| retry.delay(1, t)).collect();
        assert!(waits.iter().all(|w| *w <= retry.backoff(1)));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() >= 9, "{waits:?}");
        let other = Plan::parse(&with("seed = 1"), "plan.toml").unwrap();
        let other = other.executor_config("me").retry;
        assert_ne!(
            waits,
            web.iter().map(|t| other.delay(1, t)).collect::<Vec<_>>()
        );

        // No jitter: exactly the exponential backoff.
        let p = Plan::parse(&with("jitter = \"none\"\nbackoff = \"2s\""), "plan.toml").unwrap();
        let retry = p.executor_config("me").retry;
        assert_eq!(retry.jitter, Jitter::None);
        assert!(
            web.iter()
                .all(|t| retry.delay(2, t) == Duration::from_secs(4))
        );
    }

    #[test]
    fn bad_retry_jitter_or_seed_is_named_with_position() {
        let canary = "kind = \"canary\"\nsteps = [10, 100]";
        let base = plan(canary);
        let line = base.lines().count() + 4;
        let e = err(&format!(
            "{base}\n[retry]\nattempts = 2\njitter = \"equal\"\n"
        ));
        assert!(
            e.contains(&format!(
                "plan.toml:{line}:10: unknown jitter \"equal\" (expected \"full\" or \"none\")"
            )),
            "{e}"
        );
        let e = err(&format!("{base}\n[retry]\nattempts = 2\nseed = -1\n"));
        assert!(
            e.contains(&format!(
                "plan.toml:{line}:8: seed must be at least 0, not -1"
            )),
            "{e}"
        );
        let e = err(&format!("{base}\n[retry]\nattempts = 2\njitter = 1\n"));
        assert!(e.contains(&format!("plan.toml:{line}:10:")), "{e}");
    }

    #[test]
    fn notify_destinations_are_read_from_the_plan() {
        let base = plan("kind = \"all-at-once\"");
        let text = format!(
            "{base}\n[[notify]]\nurl = \"https://hooks.example.com/rollgate\"\nevents = [\"rolled_back\", \"held\"]\nsecret_env = \"HOOK_SECRET\"\n\n\
             [[notify]]\nname = \"chat\"\nurl = \"https://hooks.slack.com/services/T0/B0/XYZ\"\nformat = \"slack\"\n\n\
             [[notify]]\nurl = \"http://127.0.0.1:9000/h\"\nsecret_file = \"secrets/hook\"\n\n\
             [notify_retry]\nattempts = 4\nbackoff = \"2s\"\nseed = 9\ntimeout = \"3s\"\n"
        );
        let p = Plan::parse(&text, "/etc/rollgate/plan.toml").unwrap();
        let n = &p.request("me", None).notify;
        assert_eq!(n.len(), 3);
        assert_eq!(
            n[0].events,
            [
                rollgate_deploy::NotifyKind::RolledBack,
                rollgate_deploy::NotifyKind::Held
            ]
        );
        assert_eq!(
            n[0].secret,
            Some(rollgate_deploy::SecretRef::Env("HOOK_SECRET".into()))
        );
        assert_eq!(n[0].format, rollgate_deploy::NotifyFormat::Json);
        assert_eq!(n[1].name, "chat");
        assert_eq!(n[1].format, rollgate_deploy::NotifyFormat::Slack);
        assert!(n[1].events.is_empty() && n[1].secret.is_none());
        assert_eq!(n[2].name, "http://127.0.0.1:9000/h");
        assert_eq!(
            n[2].secret,
            Some(rollgate_deploy::SecretRef::File(
                "/etc/rollgate/secrets/hook".into()
            )),
            "a relative secret file is found next to the plan"
        );
        assert_eq!(p.notify_retry.max_attempts, 4);
        assert_eq!(p.notify_retry.initial_backoff, Duration::from_secs(2));
        assert_eq!(p.notify_retry.seed, 9);
        assert_eq!(p.notify_timeout, Duration::from_secs(3));
    }

    #[test]
    fn bad_notify_tables_are_named_with_position() {
        let base = plan("kind = \"all-at-once\"");
        // The line of each case's first key.
        let line = base.lines().count() + 3;
        let with = |t: &str| err(&format!("{base}\n[[notify]]\n{t}\n"));
        let e = with(
            "url = \"http://h/x\"\nsecret_env = \"S\"\nevents = [\"started\", \"rolledback\"]",
        );
        assert!(
            e.contains(&format!(
                "plan.toml:{}:22: unknown notify event \"rolledback\"; valid events: started, phase_promoted, held, rolled_back, rollback_failed, finished",
                line + 2
            )),
            "{e}"
        );
        let e = with("url = \"http://h/x\"");
        assert!(
            e.contains(&format!(
                "plan.toml:{}:1: a json notify destination needs secret_env or secret_file",
                line - 1
            )),
            "{e}"
        );
        let e = with("url = \"http://h/x\"\nsecret_env = \"S\"\nsecret_file = \"f\"");
        assert!(
            e.contains(&format!(
                "plan.toml:{}:15: give secret_env or secret_file, not both",
                line + 2
            )),
            "{e}"
        );
        let e = with("url = \"ftp://user:planted-pw@h/x\"\nsecret_env = \"S\"");
        assert!(
            e.contains(&format!("plan.toml:{line}:7: notify url ftp://***@h/x is not an http:// or https:// URL with a host")),
            "{e}"
        );
        assert!(!e.contains("planted-pw"), "{e}");
        let e = with("url = \"http://h/x\"\nformat = \"teams\"");
        assert!(
            e.contains(&format!(
                "plan.toml:{}:10: unknown notify format \"teams\" (expected \"json\" or \"slack\")",
                line + 1
            )),
            "{e}"
        );
        let e = with("url = \"http://h/x\"\nsecret_env = \"NOT-A-NAME\"");
        assert!(e.contains("is not an environment variable name"), "{e}");
        let e = with("url = \"http://h/x\"\nsecret_env = \"S\"\nevents = []");
        assert!(e.contains("notify events is empty"), "{e}");
        let e = with("url = \"http://h/x\"\nsecret = \"inline\"");
        assert!(
            e.contains(&format!("plan.toml:{}:1:", line + 1))
                && e.contains("unknown field `secret`"),
            "{e}"
        );
    }

    #[test]
    fn malformed_toml_names_line_and_column() {
        let e = err("service = \"web\"\nartifact = { version = \"v2\" digest = \"x\" }\n");
        assert!(e.starts_with("plan.toml:2:"), "{e}");
    }

    #[test]
    fn unknown_strategy_is_named_with_position() {
        let e = err(&plan("kind = \"yolo\""));
        assert!(
            e.contains("plan.toml:13:8: unknown strategy \"yolo\""),
            "{e}"
        );
    }

    #[test]
    fn percentages_outside_range_are_rejected_with_position() {
        let e = err(&plan("kind = \"canary\"\nsteps = [10, 150]"));
        assert!(
            e.contains("plan.toml:14:14: percentage 150 is outside 0-100"),
            "{e}"
        );
        let e = err(&plan("kind = \"canary\"\nsteps = [-5]"));
        assert!(e.contains("outside 0-100"), "{e}");
        // Steps that go down are pointed at on their own line, not the header.
        let e = err(&plan("kind = \"canary\"\nsteps = [50, 10, 100]"));
        assert!(e.contains("plan.toml:14:9: steps must increase"), "{e}");
    }

    #[test]
    fn a_router_outside_blue_green_is_rejected_where_it_is() {
        let text = format!(
            "{}\n[router]\nkind = \"command\"\nswitch = \"true\"\n",
            plan("kind = \"canary\"\nsteps = [10, 100]")
        );
        let e = err(&text);
        assert!(
            e.contains("[router] is only used by the blue-green strategy"),
            "{e}"
        );
        assert!(e.starts_with("plan.toml:"), "{e}");
    }

    #[test]
    fn empty_and_duplicate_targets_are_rejected() {
        let text = plan("kind = \"all-at-once\"");
        let e = err(&text.replace(r#"["web-1", "web-2", "web-3", "web-4", "web-5", "web-6", "web-7", "web-8", "web-9", "web-10"]"#, "[]"));
        assert!(
            e.contains("plan.toml:3:11: the target list is empty"),
            "{e}"
        );
        let e = err(&text.replace(r#""web-2", "web-3""#, r#""web-2", "web-2""#));
        assert!(e.contains("target web-2 is listed twice"), "{e}");
    }

    #[test]
    fn unknown_fields_and_placeholders_are_rejected() {
        let e = err(&plan(
            "kind = \"canary\"\nstep = [10]\nsteps = [10]\nbaek = \"5s\"",
        ));
        assert!(e.contains("baek"), "{e}");
        let e = err(&plan("kind = \"all-at-once\"").replace("{percent}", "{percnt}"));
        assert!(e.contains("unknown placeholder {percnt}"), "{e}");
    }

    #[test]
    fn bad_durations_and_digests_are_explained() {
        let e = err(&plan("kind = \"all-at-once\"\nbake = \"5 parsecs\""));
        assert!(e.contains("bad duration \"5 parsecs\""), "{e}");
        let e = err(&plan("kind = \"all-at-once\"").replace(DIGEST, "sha256:abc"));
        assert!(
            e.contains("plan.toml:2:39: digest \"sha256:abc\" must be"),
            "{e}"
        );
    }

    #[test]
    fn every_strategy_kind_parses() {
        for s in [
            "kind = \"all-at-once\"",
            "kind = \"rolling\"\nmax_unavailable = 3",
            "kind = \"rolling\"\nmin_healthy = 8",
            "kind = \"linear\"\nstep = 20",
            "kind = \"exponential\"\nstart = 10\nfactor = 2",
            "kind = \"rings\"\nrings = [{ name = \"a\", targets = [\"web-1\"] }, { name = \"b\", targets = [\"web-2\", \"web-3\", \"web-4\", \"web-5\", \"web-6\", \"web-7\", \"web-8\", \"web-9\", \"web-10\"] }]",
        ] {
            Plan::parse(&plan(s), "plan.toml").unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        let bg = plan(
            "kind = \"blue-green\"\ngreen = [\"web-1\", \"web-2\", \"web-3\", \"web-4\", \"web-5\"]",
        );
        let e = err(&bg);
        assert!(e.contains("needs a [router]"), "{e}");
        let bg = format!(
            "{bg}\n[router]\nkind = \"command\"\nswitch = \"ln -sfn {{color}} /srv/live\"\n"
        );
        Plan::parse(&bg, "plan.toml").unwrap();
    }

    const TABLES: &str = r#"service = "dns"
artifact = { version = "v2", digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111" }
targets = [{ name = "dns-1", addr = "127.0.0.1:18081" }, { name = "dns-2", addr = "127.0.0.1:18082", zone = "b" }]

[deployer]
kind = "command"
deploy = "./start.sh {target} {addr} {version}"
current = "cat {target}.version"
ready = "./probe.sh {addr}"

[strategy]
kind = "canary"
steps = [50, 100]
"#;

    #[test]
    fn targets_as_tables_carry_attributes_into_the_templates() {
        let p = Plan::parse(TABLES, "plan.toml").unwrap();
        assert_eq!(p.targets.len(), 2);
        let t1: TargetId = "dns-1".parse().unwrap();
        assert_eq!(p.attributes[&t1]["addr"], "127.0.0.1:18081");
        assert!(!p.attributes[&t1].contains_key("zone"));
        p.deployer(None, []).unwrap();
        // Plain names and tables mix; a plain name has no attributes.
        let mixed = TABLES.replace(
            r#"{ name = "dns-1", addr = "127.0.0.1:18081" }"#,
            r#""dns-1""#,
        );
        let e = err(&mixed);
        assert_eq!(
            e,
            "plan.toml:7:10: {addr}: target dns-1 has no attribute \"addr\""
        );
        let plain = mixed.replace("{addr}", "{target}");
        Plan::parse(&plain, "plan.toml").unwrap();
    }

    #[test]
    fn an_attribute_missing_on_one_target_is_named_where_the_template_uses_it() {
        let e = err(&TABLES.replace("{target} {addr} {version}", "{target} {zone}"));
        assert_eq!(
            e,
            "plan.toml:7:10: {zone}: target dns-1 has no attribute \"zone\""
        );
        let e = err(&TABLES.replace("./probe.sh {addr}", "./probe.sh {adr}"));
        assert!(e.starts_with("plan.toml:9:9: "), "{e}");
        assert!(e.contains("unknown placeholder {adr}"), "{e}");
    }

    #[test]
    fn bad_attributes_are_refused_with_position() {
        let e = err(&TABLES.replace(r#"zone = "b""#, r#"zone = 3"#));
        assert!(e.starts_with("plan.toml:3:"), "{e}");
        assert!(e.contains("attributes are strings"), "{e}");
        let e = err(&TABLES.replace(r#"zone = "b""#, r#"version = "b""#));
        assert!(e.contains("would shadow the placeholder {version}"), "{e}");
        let e = err(&TABLES.replace(r#"zone = "b""#, r#"zone = "b; rm -rf /""#));
        assert!(e.contains("spliced into shell commands"), "{e}");
        let e = err(&TABLES.replace(r#"{ name = "dns-1", "#, "{ "));
        assert!(e.contains("missing field `name`"), "{e}");
    }

    #[test]
    fn the_gate_kinds_read_the_shared_limits_and_refuse_other_keys() {
        let text =
            format!("{TABLES}\n[gate]\nkind = \"canary\"\nmax_errors = 4\nanalysis = \"a.toml\"\n");
        // Both kinds are known where the plan is read.
        let e = err(&text.replace("kind = \"canary\"\nmax", "kind = \"canry\"\nmax"));
        assert_eq!(
            e,
            "plan.toml:16:8: unknown gate kind \"canry\" (known: \"command\", \"canary\")"
        );
        // A command gate still refuses fields it does not know, where they are.
        let cmd = format!(
            "{TABLES}\n[gate]\nkind = \"command\"\ncommand = \"true {{addr}}\"\nanalysis = \"a.toml\"\n"
        );
        let e = err(&cmd);
        assert_eq!(
            e,
            "plan.toml:18:1: unknown field `analysis`, expected one of `kind`, `timeout`, \
             `max_errors`, `max_continues`, `retry_after`, `command`"
        );
        // The canary kind's too, naming what it reads.
        let e = err(&text.replace("analysis", "analysys"));
        assert_eq!(
            e,
            "plan.toml:18:1: unknown field `analysys`, expected one of `kind`, `timeout`, \
             `max_errors`, `max_continues`, `retry_after`, `analysis`, `lookback`, `source`, \
             `scrape`, `prometheus`, `metrics`"
        );
        // The shared keys are read from the one table, with their positions.
        let e = err(&text.replace("max_errors = 4", "max_errors = 0"));
        assert!(
            e.starts_with("plan.toml:17:14: max_errors must be at least 1"),
            "{e}"
        );
        // A canary gate's analysis file is found next to the plan.
        let e = err(&text);
        assert!(
            e.starts_with("plan.toml:18:12: analysis file a.toml cannot be read"),
            "{e}"
        );
        // Given the analysis, the canary gate is built here with the shared limits.
        let analysis = rollgate_canary::AnalysisConfig::from_toml_str(
            "[[metrics]]\nname = \"errors\"\nkind = \"count\"\nbad = \"increase\"\n",
        )
        .unwrap();
        let text = format!(
            "{text}lookback = \"5s\"\n[gate.metrics.errors]\nevents = {{ counter = \"e\" }}\ntrials = {{ counter = \"t\" }}\n"
        );
        let p = Plan::parse_with_analysis(&text, "plan.toml", "a.toml".as_ref(), analysis).unwrap();
        assert_eq!(p.gate_kind.as_deref(), Some("canary"));
        assert_eq!(p.gate_policy.max_errors, 4);
        assert_eq!(p.canary.as_ref().unwrap().lookback, Duration::from_secs(5));
        assert!(
            p.request("a", None)
                .plan
                .phases
                .iter()
                .all(|ph| ph.gate == GateUse::Required)
        );
    }

    #[test]
    fn known_artifacts_are_read_and_clashes_are_named() {
        let v0 = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let text = format!(
            "{}\n[[known]]\nversion = \"v0\"\ndigest = \"{v0}\"\n",
            plan("kind = \"all-at-once\"")
        );
        let p = Plan::parse(&text, "plan.toml").unwrap();
        assert_eq!(p.known.len(), 1);
        assert_eq!(p.request("a", None).known[0].version, "v0");
        let clash = format!(
            "{}\n[[known]]\nversion = \"v2\"\ndigest = \"{v0}\"\n",
            plan("kind = \"all-at-once\"")
        );
        let e = err(&clash);
        assert!(e.starts_with("plan.toml:"), "{e}");
        assert!(e.contains("clashes with v2"), "{e}");
    }

    /// Every message the plan file gives that no other test pins, with its
    /// exact position: written before the parser was split into sections,
    /// to prove the split kept them.
    #[test]
    fn every_plan_message_keeps_its_text_and_position() {
        let all = plan("kind = \"all-at-once\"");
        let canary = plan("kind = \"canary\"\nsteps = [10, 100]");
        let v1 = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        let bg = |s: &str| {
            format!(
                "{}\n[router]\nkind = \"command\"\nswitch = \"true {{color}}\"\n",
                plan(&format!("kind = \"blue-green\"\n{s}"))
            )
        };
        let cases: Vec<(String, &str)> = vec![
            (
                all.replace("service = \"web\"", "service = \"my web\""),
                "plan.toml:1:11: service must be a non-empty name without spaces",
            ),
            (
                all.replace(
                    "\ntargets",
                    &format!("\nprevious = {{ version = \"v1\", digest = \"{DIGEST}\" }}\ntargets"),
                ),
                "plan.toml:3:12: previous is the same artifact as artifact",
            ),
            (
                all.replace("version = \"v2\"", "version = \"v 2\""),
                "plan.toml:2:24: artifact version \"v 2\" contains ' '",
            ),
            (
                all.replace(
                    "\ntargets",
                    &format!("\nknown = [{{ version = \"v2\", digest = \"{v1}\" }}]\ntargets"),
                ),
                "plan.toml:3:10: known artifact v2 (222222222222) clashes with v2 (111111111111): a version names one digest",
            ),
            (
                all.replace("\"web-2\", \"web-3\"", "\"web-2\", \"web-2\""),
                "plan.toml:3:30: target web-2 is listed twice",
            ),
            (
                all.replace("\"web-2\", \"web-3\"", "\"web-2\", \"web 3\""),
                "plan.toml:3:30: target name \"web 3\" contains ' '; use letters, digits and -_.:/@",
            ),
            (
                all.replace("kind = \"command\"\ndeploy", "kind = \"ssh\"\ndeploy"),
                "plan.toml:6:8: unknown deployer kind \"ssh\" (known: \"command\")",
            ),
            (
                all.replace("timeout = \"30s\"", "timeout = \"0s\""),
                "plan.toml:10:11: deployer timeout must be above zero",
            ),
            (
                all.replace("./check.sh", "./check.sh {previous_color}"),
                "plan.toml:17:11: \"./check.sh {previous_color} {service} {version} {percent}\": unknown placeholder {previous_color} (known: {rollout} {service} {version} {digest} {percent} {phase} {previous_version} {previous_digest})",
            ),
            (
                plan("kind = \"canary\""),
                "plan.toml:13:8: strategy \"canary\" needs `steps`",
            ),
            (
                plan("kind = \"linear\""),
                "plan.toml:13:8: strategy \"linear\" needs `step`",
            ),
            (
                plan("kind = \"linear\"\nstep = 0"),
                "plan.toml:12:1: linear step must be above 0%",
            ),
            (
                plan("kind = \"exponential\"\nstart = 10\nfactor = 1"),
                "plan.toml:12:1: exponential factor 1 must be above 1",
            ),
            (
                plan("kind = \"blue-green\""),
                "plan.toml:13:8: strategy \"blue-green\" needs `green`",
            ),
            (
                plan("kind = \"rings\""),
                "plan.toml:13:8: strategy \"rings\" needs `rings`",
            ),
            (
                plan("kind = \"rolling\"\nmin_healthy = 10"),
                "plan.toml:14:15: min_healthy 10 leaves no target to update (of 10)",
            ),
            (
                plan("kind = \"rolling\"\nmax_unavailable = 2\nmin_healthy = 1"),
                "plan.toml:14:19: give max_unavailable or min_healthy, not both",
            ),
            (
                plan("kind = \"rolling\"\nmax_unavailable = 0"),
                "plan.toml:14:19: max_unavailable must be at least 1, not 0",
            ),
            (
                plan("kind = \"all-at-once\"\nmax_failed = -1"),
                "plan.toml:14:14: max_failed must be at least 0, not -1",
            ),
            (
                plan("kind = \"all-at-once\"\nconcurrency = 0"),
                "plan.toml:14:15: concurrency must be at least 1, not 0",
            ),
            (
                bg("green = [\"web-11\"]"),
                "plan.toml:14:9: blue-green blue + green must be exactly the plan's targets",
            ),
            (
                bg("green = [\"web-1\"]\nblue = [\"web-2\"]"),
                "plan.toml:14:9: blue-green blue + green must be exactly the plan's targets",
            ),
            (
                plan("kind = \"rings\"\nrings = [{ name = \"a\", targets = [\"web-1\"] }]"),
                "plan.toml:14:9: the rings must hold exactly the plan's targets",
            ),
            (
                bg("green = [\"web-1\"]")
                    .replace("kind = \"command\"\nswitch", "kind = \"http\"\nswitch"),
                "plan.toml:21:8: unknown router kind \"http\" (known: \"command\")",
            ),
            (
                bg("green = [\"web-1\"]").replace("{color}", "{target}"),
                "plan.toml:22:10: \"true {target}\": unknown placeholder {target} (known: {service} {targets} {color})",
            ),
            (
                format!("{canary}max_continues = 0\n"),
                "plan.toml:19:17: max_continues must be at least 1, not 0",
            ),
            (
                format!("{canary}timeout = \"soon\"\n"),
                "plan.toml:19:11: bad duration \"soon\": expected number at 0 (write e.g. \"30s\", \"5m\")",
            ),
            (
                format!("{canary}retry_after = \"-1s\"\n"),
                "plan.toml:19:15: bad duration \"-1s\": expected number at 0 (write e.g. \"30s\", \"5m\")",
            ),
            (
                canary.replace("kind = \"command\"\ncommand", "kind = \"script\"\ncommand"),
                "plan.toml:17:8: unknown gate kind \"script\" (known: \"command\", \"canary\")",
            ),
            (
                canary.replace("command = ", "commnd = "),
                "plan.toml:18:1: unknown field `commnd`, expected one of `kind`, `timeout`, `max_errors`, `max_continues`, `retry_after`, `command`",
            ),
            (
                format!("{canary}\n[readiness]\ntimeout = \"1 fortnight\"\n"),
                "plan.toml:21:11: bad duration \"1 fortnight\": unknown time unit \"fortnight\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations) (write e.g. \"30s\", \"5m\")",
            ),
            (
                format!("{canary}\n[readiness]\ninterval = \"x\"\n"),
                "plan.toml:21:12: bad duration \"x\": expected number at 0 (write e.g. \"30s\", \"5m\")",
            ),
            (
                format!("{canary}\n[retry]\nattempts = 0\n"),
                "plan.toml:21:12: attempts must be at least 1, not 0",
            ),
            (
                format!("{canary}\n[retry]\nbackoff = \"1\"\n"),
                "plan.toml:21:11: bad duration \"1\": time unit needed, for example 1sec or 1ms (write e.g. \"30s\", \"5m\")",
            ),
            (
                format!("{canary}\n[retry]\nmax_backoff = \"y\"\n"),
                "plan.toml:21:15: bad duration \"y\": expected number at 0 (write e.g. \"30s\", \"5m\")",
            ),
            (
                format!("{canary}\n[[precheck]]\ncommand = \"./ok.sh {{target}}\"\n"),
                "plan.toml:21:11: \"./ok.sh {target}\": unknown placeholder {target} (known: {service} {version} {digest} {artifact})",
            ),
            (
                format!("{canary}\n[[precheck]]\ncommand = \"./ok.sh\"\ntimeout = \"z\"\n"),
                "plan.toml:22:11: bad duration \"z\": expected number at 0 (write e.g. \"30s\", \"5m\")",
            ),
            (
                format!(
                    "{canary}\n[[notify]]\nurl = \"http://h/x\"\nsecret_env = \"S\"\nname = \" \"\n"
                ),
                "plan.toml:23:8: notify name is empty",
            ),
            (
                format!("{canary}\n[[notify]]\nurl = \"http://h/x\"\nsecret_file = \" \"\n"),
                "plan.toml:22:15: secret_file is empty",
            ),
            (
                format!("{canary}\n[[notify]]\nurl = \"https://\"\nsecret_env = \"S\"\n"),
                "plan.toml:21:7: notify url https:// is not an http:// or https:// URL with a host",
            ),
            (
                format!("{canary}\n[notify_retry]\ntimeout = \"0s\"\n"),
                "plan.toml:21:11: timeout must be more than 0s",
            ),
            (
                format!("{canary}\n[notify_retry]\nattempts = 0\n"),
                "plan.toml:21:12: attempts must be at least 1, not 0",
            ),
            (
                format!("{canary}\n[notify_retry]\njitter = \"half\"\n"),
                "plan.toml:21:10: unknown jitter \"half\" (expected \"full\" or \"none\")",
            ),
            (
                TABLES.replace("zone = \"b\"", "\"z-one\" = \"b\""),
                "plan.toml:3:58: target attribute \"z-one\": names are letters, digits and _",
            ),
            (
                TABLES.replace("zone = \"b\"", "zone = \"\""),
                "plan.toml:3:58: target attribute zone = \"\": values are 1 to 256 ASCII letters, digits or . _ - : / @ + = , % (they are spliced into shell commands)",
            ),
            (
                TABLES.replace("{ name = \"dns-1\", ", "{ name = \"dns 1\", "),
                "plan.toml:3:12: target name \"dns 1\" contains ' '; use letters, digits and -_.:/@",
            ),
            (
                TABLES.replace("[deployer]", "[deployer]\nssh = true"),
                "plan.toml:6:1: unknown field `ssh`, expected one of `kind`, `deploy`, `current`, `ready`, `timeout`",
            ),
            (
                format!("{TABLES}\n[gate]\nkind = \"command\"\ncommand = \"./g.sh {{zone}}\"\n"),
                "plan.toml:17:11: {zone}: target dns-1 has no attribute \"zone\"",
            ),
            (
                "targets = [\"a\"]\n".to_string(),
                "plan.toml:1:1: missing field `service`",
            ),
            (String::new(), "plan.toml:1:1: missing field `service`"),
        ];
        for (text, want) in &cases {
            let e = err(text);
            assert_eq!(&e, want);
        }
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé\nx", 0), (1, 1));
        assert_eq!(line_col("ab\ncdé\nx", 3), (2, 1));
        assert_eq!(line_col("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_col("ab\ncdé\nx", 7), (2, 4));
    }
}
