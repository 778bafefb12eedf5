//! `[deployer]`, `[router]` and `[readiness]`: the shell command templates
//! that change targets and switch traffic, and how long readiness may take.

use std::time::Duration;

use rollgate_deploy::{CommandTemplate, Error, Strategy};
use serde::Deserialize;
use toml::Spanned;

use super::file::Ctx;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDeployer {
    kind: Spanned<String>,
    deploy: Spanned<String>,
    current: Spanned<String>,
    ready: Spanned<String>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouter {
    kind: Spanned<String>,
    switch: Spanned<String>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReadiness {
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
}

/// A validated `[deployer]`: its three commands and their timeout.
#[derive(Debug, Clone)]
pub(super) struct DeployerSpec {
    pub(super) deploy: CommandTemplate,
    pub(super) current: CommandTemplate,
    pub(super) ready: CommandTemplate,
    pub(super) timeout: Duration,
}

impl Ctx<'_> {
    /// `kind` of `[deployer]` or `[router]`: only `command` so far.
    fn command_kind(&self, k: &Spanned<String>, section: &str) -> Result<(), Error> {
        if k.get_ref() != "command" {
            return self.err(
                k.span(),
                format!(
                    "unknown {section} kind {:?} (known: \"command\")",
                    k.get_ref()
                ),
            );
        }
        Ok(())
    }

    pub(super) fn deployer(&self, d: &RawDeployer) -> Result<DeployerSpec, Error> {
        self.command_kind(&d.kind, "deployer")?;
        let spec = DeployerSpec {
            deploy: self.template(&d.deploy, rollgate_deploy::DEPLOYER_PLACEHOLDERS)?,
            current: self.template(&d.current, &["service", "target"])?,
            ready: self.template(&d.ready, &["service", "target"])?,
            timeout: self.opt_duration(&d.timeout, Duration::from_secs(60))?,
        };
        if spec.timeout.is_zero() {
            return self.err(
                d.timeout.as_ref().map_or(0..0, |t| t.span()),
                "deployer timeout must be above zero",
            );
        }
        Ok(spec)
    }

    /// `[router]`: needed by blue-green, refused by every other strategy.
    pub(super) fn router(
        &self,
        raw: Option<&Spanned<RawRouter>>,
        strategy: &Strategy,
        strategy_span: std::ops::Range<usize>,
    ) -> Result<Option<(CommandTemplate, Duration)>, Error> {
        let router = match raw {
            None => None,
            Some(r) => {
                let r = r.get_ref();
                self.command_kind(&r.kind, "router")?;
                Some((
                    self.template(&r.switch, &["service", "targets", "color"])?,
                    self.opt_duration(&r.timeout, Duration::from_secs(60))?,
                ))
            }
        };
        let blue_green = matches!(strategy, Strategy::BlueGreen { .. });
        match raw {
            None if blue_green => self.err(
                strategy_span,
                "blue-green needs a [router] section with a switch command",
            ),
            Some(r) if !blue_green => self.err(
                r.span(),
                "[router] is only used by the blue-green strategy; remove it or use kind = \"blue-green\"",
            ),
            _ => Ok(router),
        }
    }

    /// `[readiness]`: how long a target may take to become ready, and how
    /// often it is asked.
    pub(super) fn readiness(
        &self,
        raw: Option<&RawReadiness>,
    ) -> Result<(Duration, Duration), Error> {
        let (timeout, interval) = (Duration::from_secs(300), Duration::from_secs(1));
        match raw {
            Some(r) => Ok((
                self.opt_duration(&r.timeout, timeout)?,
                self.opt_duration(&r.interval, interval)?,
            )),
            None => Ok((timeout, interval)),
        }
    }
}
