//! `[retry]`, `[[notify]]` and `[notify_retry]`: waits between deploy
//! attempts, and where notifications go and how they are retried (also a
//! file on its own: [`NotifyConfig`]).

use std::path::Path;
use std::time::Duration;

use rollgate_deploy::{
    Destination, DispatchConfig, Error, Jitter, NotifyFormat, NotifyKind, RetryPolicy,
};
use serde::Deserialize;
use toml::Spanned;

use super::file::Ctx;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    #[serde(default)]
    attempts: Option<Spanned<i64>>,
    #[serde(default)]
    backoff: Option<Spanned<String>>,
    #[serde(default)]
    max_backoff: Option<Spanned<String>>,
    /// `"full"` (default) or `"none"`.
    #[serde(default)]
    jitter: Option<Spanned<String>>,
    /// The jitter's seed (default 0).
    #[serde(default)]
    seed: Option<Spanned<i64>>,
}

/// `[notify_retry]`: the keys of `[retry]` plus an attempt timeout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotifyRetry {
    #[serde(default)]
    attempts: Option<Spanned<i64>>,
    #[serde(default)]
    backoff: Option<Spanned<String>>,
    #[serde(default)]
    max_backoff: Option<Spanned<String>>,
    #[serde(default)]
    jitter: Option<Spanned<String>>,
    #[serde(default)]
    seed: Option<Spanned<i64>>,
    /// Longest one POST may take.
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

/// A `[[notify]]` destination.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    url: Spanned<String>,
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    events: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    format: Option<Spanned<String>>,
    #[serde(default)]
    secret_env: Option<Spanned<String>>,
    #[serde(default)]
    secret_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifyFile {
    #[serde(default)]
    notify: Vec<Spanned<RawNotify>>,
    #[serde(default)]
    notify_retry: Option<RawNotifyRetry>,
}

/// Notification settings on their own: `[[notify]]` tables and
/// `[notify_retry]` exactly as a plan writes them (`rollgate serve --notify
/// FILE` reads one for every rollout it accepts).
///
/// ```
/// use rollgate::plan::NotifyConfig;
/// let c = NotifyConfig::parse(
///     "[[notify]]\nurl = \"https://hooks.example.com/x\"\nsecret_env = \"HOOK_SECRET\"\n",
///     "notify.toml",
/// )?;
/// assert_eq!(c.destinations.len(), 1);
/// let e = NotifyConfig::parse("[[notify]]\nurl = \"https://h/x\"\nevents = [\"done\"]\nsecret_env = \"S\"\n", "notify.toml")
///     .unwrap_err();
/// assert!(e.to_string().starts_with("notify.toml:3:11: unknown notify event \"done\""), "{e}");
/// # Ok::<(), rollgate::deploy::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NotifyConfig {
    /// Where notifications go.
    pub destinations: Vec<Destination>,
    /// Waits between attempts.
    pub retry: RetryPolicy,
    /// Longest one attempt may take.
    pub timeout: Duration,
}

/// No destinations; [`DispatchConfig`]'s retry policy and attempt timeout
/// (what a file without `[notify_retry]` gives).
impl Default for NotifyConfig {
    fn default() -> Self {
        let d = DispatchConfig::default();
        Self {
            destinations: Vec::new(),
            retry: d.retry,
            timeout: d.timeout,
        }
    }
}

impl NotifyConfig {
    /// Parses a notification config file; errors name `path:line:column`.
    pub fn parse(text: &str, path: &str) -> Result<Self, Error> {
        let cx = Ctx::new(path, text);
        let raw: RawNotifyFile = toml::from_str(text).map_err(|e| cx.toml_error(&e))?;
        cx.notify_config(&raw.notify, raw.notify_retry)
    }

    /// Settings for a [`Dispatcher`](rollgate_deploy::Dispatcher) that
    /// delivers these notifications for the controller `owner`, whose
    /// rollout leases last `lease_ttl` ([`dispatch_config`] has the rule).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rollgate::plan::NotifyConfig;
    /// let c = NotifyConfig::parse("[notify_retry]\ntimeout = \"2s\"\n", "notify.toml")?;
    /// let d = c.dispatch_config("ctl-1", Duration::from_secs(30));
    /// assert_eq!((d.owner.as_str(), d.timeout), ("ctl-1", Duration::from_secs(2)));
    /// assert_eq!(d.claim_ttl, Duration::from_secs(5)); // 2 × 2 s + 1 s
    /// // Never longer than the lease.
    /// let d = c.dispatch_config("ctl-1", Duration::from_secs(3));
    /// assert_eq!(d.claim_ttl, Duration::from_secs(3));
    /// # Ok::<(), rollgate::deploy::Error>(())
    /// ```
    pub fn dispatch_config(&self, owner: &str, lease_ttl: Duration) -> DispatchConfig {
        dispatch_config(owner, &self.retry, self.timeout, lease_ttl)
    }
}

/// The one rule for a controller's notification dispatcher (the CLI's
/// `rollout` commands and `serve`, and embedders through
/// [`Plan::dispatch_config`](super::Plan::dispatch_config) or
/// [`NotifyConfig::dispatch_config`]): `retry` and the attempt `timeout`,
/// `owner` as the claims' owner, and claims that outlive one attempt (twice
/// the timeout and a second) but never the controller's lease, so that a
/// killed controller's notifications are taken over no later than its
/// rollouts are (once its lease has expired). A live dispatcher renews its
/// claims while it works on them, so a short claim costs no duplicate.
///
/// ```
/// use std::time::Duration;
/// use rollgate::deploy::RetryPolicy;
/// use rollgate::plan::dispatch_config;
/// let s = Duration::from_secs;
/// let d = dispatch_config("ctl-1", &RetryPolicy::default(), s(10), s(30));
/// assert_eq!(d.claim_ttl, s(21));
/// let d = dispatch_config("ctl-1", &RetryPolicy::default(), s(10), s(15));
/// assert_eq!(d.claim_ttl, s(15));
/// ```
pub fn dispatch_config(
    owner: &str,
    retry: &RetryPolicy,
    timeout: Duration,
    lease_ttl: Duration,
) -> DispatchConfig {
    let claim_ttl = lease_ttl.min(
        timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(1)),
    );
    DispatchConfig::default()
        .with_owner(owner)
        .with_retry(retry.clone())
        .with_timeout(timeout)
        .with_claim_ttl(claim_ttl)
}

impl Ctx<'_> {
    /// `[retry]` (or the retry keys of `[notify_retry]`) over `retry`.
    pub(super) fn retry(
        &self,
        raw: Option<&RawRetry>,
        mut retry: RetryPolicy,
    ) -> Result<RetryPolicy, Error> {
        let Some(r) = raw else {
            return Ok(retry);
        };
        if let Some(a) = &r.attempts {
            retry.max_attempts = self.count(a, "attempts", 1)? as u32;
        }
        retry.initial_backoff = self.opt_duration(&r.backoff, retry.initial_backoff)?;
        retry.max_backoff = self.opt_duration(&r.max_backoff, retry.max_backoff)?;
        if let Some(j) = &r.jitter {
            retry.jitter = match j.get_ref().as_str() {
                "full" => Jitter::Full,
                "none" => Jitter::None,
                other => {
                    return self.err(
                        j.span(),
                        format!("unknown jitter {other:?} (expected \"full\" or \"none\")"),
                    );
                }
            };
        }
        if let Some(seed) = &r.seed {
            retry.seed = self.count(seed, "seed", 0)? as u64;
        }
        Ok(retry)
    }

    /// `[[notify]]` tables and `[notify_retry]`; a relative `secret_file` is
    /// taken from the directory of the file being read.
    pub(super) fn notify_config(
        &self,
        tables: &[Spanned<RawNotify>],
        retry: Option<RawNotifyRetry>,
    ) -> Result<NotifyConfig, Error> {
        let (retry, timeout) = self.notify_retry(retry)?;
        let base = Path::new(self.path).parent().unwrap_or(Path::new(""));
        let destinations = tables
            .iter()
            .map(|n| self.destination(n, base))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NotifyConfig {
            destinations,
            retry,
            timeout,
        })
    }

    fn notify_retry(&self, raw: Option<RawNotifyRetry>) -> Result<(RetryPolicy, Duration), Error> {
        let dispatch = rollgate_deploy::DispatchConfig::default();
        let Some(r) = raw else {
            return Ok((dispatch.retry, dispatch.timeout));
        };
        let timeout = self.opt_duration(&r.timeout, dispatch.timeout)?;
        if let Some(t) = &r.timeout
            && timeout.is_zero()
        {
            return self.err(t.span(), "timeout must be more than 0s");
        }
        let as_retry = RawRetry {
            attempts: r.attempts,
            backoff: r.backoff,
            max_backoff: r.max_backoff,
            jitter: r.jitter,
            seed: r.seed,
        };
        Ok((self.retry(Some(&as_retry), dispatch.retry)?, timeout))
    }

    /// A `[[notify]]` table; a relative `secret_file` is taken from `base`.
    fn destination(&self, n: &Spanned<RawNotify>, base: &Path) -> Result<Destination, Error> {
        let raw = n.get_ref();
        let mut d = Destination::new(self.notify_url(&raw.url)?);
        if let Some(name) = &raw.name {
            if name.get_ref().trim().is_empty() {
                return self.err(name.span(), "notify name is empty");
            }
            d = d.with_name(name.get_ref().trim());
        }
        if let Some(events) = &raw.events {
            d = d.with_events(self.notify_events(events)?);
        }
        if let Some(f) = &raw.format {
            d = d.with_format(match f.get_ref().as_str() {
                "json" => NotifyFormat::Json,
                "slack" => NotifyFormat::Slack,
                other => {
                    return self.err(
                        f.span(),
                        format!("unknown notify format {other:?} (expected \"json\" or \"slack\")"),
                    );
                }
            });
        }
        self.notify_secret(n, d, base)
    }

    /// An http(s) URL with a host. Never echoed whole: it may carry credentials.
    fn notify_url<'u>(&self, url: &'u Spanned<String>) -> Result<&'u str, Error> {
        let u = url.get_ref().trim();
        let host_ok = u.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https")
                && rest
                    .split(['/', '?', '#'])
                    .next()
                    .is_some_and(|a| !a.rsplit('@').next().unwrap_or("").is_empty())
        });
        if !host_ok || u.chars().any(char::is_whitespace) {
            return self.err(
                url.span(),
                format!(
                    "notify url {} is not an http:// or https:// URL with a host",
                    rollgate_deploy::redact_url(u)
                ),
            );
        }
        Ok(u)
    }

    /// `events`: known kinds, each once, not none.
    fn notify_events(
        &self,
        events: &Spanned<Vec<Spanned<String>>>,
    ) -> Result<Vec<NotifyKind>, Error> {
        if events.get_ref().is_empty() {
            return self.err(
                events.span(),
                format!(
                    "notify events is empty; leave it out to send every event ({})",
                    NotifyKind::names()
                ),
            );
        }
        let mut kinds = Vec::new();
        for e in events.get_ref() {
            let Ok(kind) = e.get_ref().parse::<NotifyKind>() else {
                return self.err(
                    e.span(),
                    format!(
                        "unknown notify event {:?}; valid events: {}",
                        e.get_ref(),
                        NotifyKind::names()
                    ),
                );
            };
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok(kinds)
    }

    /// `secret_env` or `secret_file` (one of them for json destinations).
    fn notify_secret(
        &self,
        n: &Spanned<RawNotify>,
        d: Destination,
        base: &Path,
    ) -> Result<Destination, Error> {
        let raw = n.get_ref();
        match (&raw.secret_env, &raw.secret_file) {
            (Some(_), Some(f)) => self.err(f.span(), "give secret_env or secret_file, not both"),
            (Some(env), None) => {
                let name = env.get_ref();
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return self.err(
                        env.span(),
                        format!("secret_env {name:?} is not an environment variable name (letters, digits, _)"),
                    );
                }
                Ok(d.with_secret_env(name))
            }
            (None, Some(file)) => {
                if file.get_ref().trim().is_empty() {
                    return self.err(file.span(), "secret_file is empty");
                }
                Ok(d.with_secret_file(base.join(file.get_ref())))
            }
            (None, None) if d.format == NotifyFormat::Json => self.err(
                n.span(),
                "a json notify destination needs secret_env or secret_file: receivers verify X-Rollgate-Signature with it",
            ),
            (None, None) => Ok(d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_claim_outlives_one_attempt_but_never_the_lease() {
        let retry = RetryPolicy::default();
        // (attempt timeout, lease) -> claim
        for (timeout, lease, claim) in [
            (S(10), S(30), S(21)),
            (S(10), S(21), S(21)),
            (S(10), S(15), S(15)),
            (S(1), S(30), S(3)),
            (Duration::from_millis(500), S(2), S(2)),
            (Duration::MAX, S(30), S(30)),
        ] {
            let d = dispatch_config("ctl-1", &retry, timeout, lease);
            assert_eq!(d.claim_ttl, claim, "timeout {timeout:?}, lease {lease:?}");
            assert_eq!(d.timeout, timeout);
            assert_eq!(d.owner, "ctl-1");
            assert_eq!(d.retry, retry);
        }
    }

    #[test]
    fn a_notify_file_and_a_plan_give_the_same_dispatcher() {
        let retry = "[notify_retry]\nattempts = 3\nbackoff = \"2s\"\ntimeout = \"20s\"\n";
        let file = NotifyConfig::parse(retry, "notify.toml").unwrap();
        let plan = super::super::Plan::parse(
            &format!(
                "service = \"web\"\n\
                 artifact = {{ version = \"v2\", digest = \"sha256:{}\" }}\n\
                 targets = [\"web-1\"]\n\
                 [deployer]\nkind = \"command\"\ndeploy = \"true\"\ncurrent = \"true\"\nready = \"true\"\n\
                 [strategy]\nkind = \"all-at-once\"\n{retry}",
                "2".repeat(64)
            ),
            "plan.toml",
        )
        .unwrap();
        for lease in [S(30), S(5)] {
            let from_file = file.dispatch_config("ctl-1", lease);
            assert_eq!(plan.dispatch_config("ctl-1", lease), from_file);
            assert_eq!(from_file.claim_ttl, lease.min(S(41)));
            assert_eq!(from_file.retry.max_attempts, 3);
        }
    }

    #[test]
    fn the_default_is_a_file_without_notify_retry() {
        assert_eq!(
            NotifyConfig::default(),
            NotifyConfig::parse("", "notify.toml").unwrap()
        );
    }
}
