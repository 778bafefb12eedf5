//! `[strategy]`: which targets each phase takes, and the per-phase settings
//! (bake, failures allowed, concurrency).

use std::ops::Range;
use std::time::Duration;

use rollgate_deploy::{Error, GateUse, Percent, PhaseDefaults, Ring, Strategy, TargetId};
use serde::Deserialize;
use toml::Spanned;

use super::file::Ctx;

const STRATEGIES: &str =
    "all-at-once | rolling | canary | linear | exponential | blue-green | rings";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStrategy {
    kind: Spanned<String>,
    #[serde(default)]
    steps: Option<Spanned<Vec<Spanned<f64>>>>,
    #[serde(default)]
    step: Option<Spanned<f64>>,
    #[serde(default)]
    start: Option<Spanned<f64>>,
    #[serde(default)]
    factor: Option<Spanned<f64>>,
    #[serde(default)]
    max_unavailable: Option<Spanned<i64>>,
    #[serde(default)]
    min_healthy: Option<Spanned<i64>>,
    #[serde(default)]
    blue: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    green: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    rings: Option<Spanned<Vec<RawRing>>>,
    #[serde(default)]
    bake: Option<Spanned<String>>,
    #[serde(default)]
    max_failed: Option<Spanned<i64>>,
    #[serde(default)]
    concurrency: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRing {
    name: Spanned<String>,
    targets: Vec<Spanned<String>>,
}

impl Ctx<'_> {
    /// The strategy and phase settings; `gated`: the plan has a `[gate]`.
    /// The strategy is compiled once here, so a plan that parses compiles.
    pub(super) fn strategy(
        &self,
        raw: &Spanned<RawStrategy>,
        gated: bool,
    ) -> Result<(Strategy, PhaseDefaults), Error> {
        let s = raw.get_ref();
        let strategy = match s.kind.get_ref().as_str() {
            "all-at-once" => Strategy::AllAtOnce,
            "canary" => Strategy::Canary {
                steps: self.percents(self.need(s, s.steps.as_ref(), "steps")?)?,
            },
            "linear" => Strategy::Linear {
                step: self.percent(self.need(s, s.step.as_ref(), "step")?)?,
            },
            "exponential" => Strategy::Exponential {
                start: match &s.start {
                    Some(p) => self.percent(p)?,
                    None => Percent::new(1.0)?,
                },
                factor: s.factor.as_ref().map_or(2.0, |f| *f.get_ref()),
            },
            "rolling" => Strategy::Rolling {
                max_unavailable: self.max_unavailable(s)?,
            },
            "blue-green" => self.blue_green(s)?,
            "rings" => self.rings(s)?,
            other => {
                return self.err(
                    s.kind.span(),
                    format!("unknown strategy {other:?} (known: {STRATEGIES})"),
                );
            }
        };
        let defaults = self.phase_defaults(s, gated)?;
        // A canary's steps are what compiling can reject: point at them.
        let compile_span = s
            .steps
            .as_ref()
            .map_or_else(|| raw.span(), |steps| steps.span());
        self.wrap(
            compile_span,
            strategy.compile(&self.targets, &defaults).map(|_| ()),
        )?;
        Ok((strategy, defaults))
    }

    /// A field the strategy kind needs, or an error at `kind`.
    fn need<'v, T>(
        &self,
        s: &RawStrategy,
        field: Option<&'v T>,
        name: &str,
    ) -> Result<&'v T, Error> {
        match field {
            Some(f) => Ok(f),
            None => self.err(
                s.kind.span(),
                format!("strategy {:?} needs `{name}`", s.kind.get_ref()),
            ),
        }
    }

    fn percent(&self, v: &Spanned<f64>) -> Result<Percent, Error> {
        self.wrap(v.span(), Percent::new(*v.get_ref()))
    }

    fn percents(&self, steps: &Spanned<Vec<Spanned<f64>>>) -> Result<Vec<Percent>, Error> {
        steps.get_ref().iter().map(|p| self.percent(p)).collect()
    }

    /// `rolling`: `max_unavailable`, or all but `min_healthy` targets (default 1).
    fn max_unavailable(&self, s: &RawStrategy) -> Result<usize, Error> {
        let targets = self.targets.len();
        match (&s.max_unavailable, &s.min_healthy) {
            (Some(m), None) => self.count(m, "max_unavailable", 1),
            (None, Some(h)) => {
                let healthy = self.count(h, "min_healthy", 0)?;
                if healthy >= targets {
                    return self.err(
                        h.span(),
                        format!("min_healthy {healthy} leaves no target to update (of {targets})"),
                    );
                }
                Ok(targets - healthy)
            }
            (Some(m), Some(_)) => {
                self.err(m.span(), "give max_unavailable or min_healthy, not both")
            }
            (None, None) => Ok(1),
        }
    }

    /// `blue-green`: `green` (needed) and `blue` (default: the other targets).
    fn blue_green(&self, s: &RawStrategy) -> Result<Strategy, Error> {
        let green = self.need(s, s.green.as_ref(), "green")?;
        let span = green.span();
        let green = self.target_names(green.get_ref())?;
        let blue = match &s.blue {
            Some(b) => self.target_names(b.get_ref())?,
            None => self
                .targets
                .iter()
                .filter(|t| !green.contains(t))
                .cloned()
                .collect(),
        };
        self.compiles(span, Strategy::BlueGreen { blue, green })
    }

    /// `rings`: named groups of targets, in order.
    fn rings(&self, s: &RawStrategy) -> Result<Strategy, Error> {
        let raw = self.need(s, s.rings.as_ref(), "rings")?;
        let rings = raw
            .get_ref()
            .iter()
            .map(|ring| {
                Ok(Ring {
                    name: ring.name.get_ref().clone(),
                    targets: self.target_names(&ring.targets)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.compiles(raw.span(), Strategy::Rings { rings })
    }

    /// `st`, once it compiles over the plan's targets; else an error at `span`.
    fn compiles(&self, span: Range<usize>, st: Strategy) -> Result<Strategy, Error> {
        let targets: &[TargetId] = &self.targets;
        self.wrap(
            span,
            st.compile(targets, &PhaseDefaults::default()).map(|_| ()),
        )?;
        Ok(st)
    }

    /// `bake`, `max_failed`, `concurrency`; phases require the gate when the plan has one.
    fn phase_defaults(&self, s: &RawStrategy, gated: bool) -> Result<PhaseDefaults, Error> {
        let mut defaults = PhaseDefaults::default()
            .with_bake(self.opt_duration(&s.bake, Duration::ZERO)?)
            .with_gate_use(if gated {
                GateUse::Required
            } else {
                GateUse::IfAttached
            });
        if let Some(m) = &s.max_failed {
            defaults = defaults.with_max_failed(self.count(m, "max_failed", 0)?);
        }
        if let Some(c) = &s.concurrency {
            defaults = defaults.with_concurrency(self.count(c, "concurrency", 1)?);
        }
        Ok(defaults)
    }
}
