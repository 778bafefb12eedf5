//! From a plan to an [`Executor`] ready to run: one call for embedders and
//! the CLI ([`Plan::executor`], [`Plan::executor_builder`]).

use std::path::PathBuf;
use std::sync::Arc;

use rollgate_deploy::{Artifact, DispatchConfig, Error, Executor, ExecutorConfig, StateStore};

use super::Plan;

/// Builds the [`Executor`] a [`Plan`] describes ([`Plan::executor_builder`]):
/// its command deployer, its gate (command or canary), its router
/// (blue-green), and the readiness, retry and gate settings of
/// [`Plan::executor_config`].
#[must_use = "call build() to get the executor"]
pub struct ExecutorBuilder<'a> {
    plan: &'a Plan,
    store: Arc<dyn StateStore>,
    owner: String,
    cwd: Option<PathBuf>,
    known: Vec<Artifact>,
    gate: bool,
    configure: Option<Box<dyn FnOnce(ExecutorConfig) -> ExecutorConfig + 'a>>,
}

impl std::fmt::Debug for ExecutorBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorBuilder")
            .field("plan", &self.plan.path)
            .field("owner", &self.owner)
            .field("cwd", &self.cwd)
            .field("known", &self.known)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl<'a> ExecutorBuilder<'a> {
    /// The controller's name in leases and audit records (default: the
    /// executor's default owner).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// The directory the plan's commands run in (default: this process's).
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// More artifacts the deployer may find on targets and name by version
    /// (for example those of earlier rollouts of the service), besides the
    /// plan's `artifact`, `previous` and `[[known]]`.
    pub fn known(mut self, artifacts: impl IntoIterator<Item = Artifact>) -> Self {
        self.known.extend(artifacts);
        self
    }

    /// Attaches no gate even when the plan has one: for requests whose
    /// phases all skip it (a rollback), where a canary gate would scrape
    /// for nothing.
    pub fn without_gate(mut self) -> Self {
        self.gate = false;
        self
    }

    /// Adjusts the executor settings read from the plan (a lease length,
    /// a deploy timeout...).
    pub fn configure(mut self, f: impl FnOnce(ExecutorConfig) -> ExecutorConfig + 'a) -> Self {
        self.configure = Some(Box::new(f));
        self
    }

    /// The executor. A canary gate starts scraping now: call it inside a
    /// tokio runtime.
    pub fn build(self) -> Result<Executor, Error> {
        let plan = self.plan;
        let deployer = plan.deployer(self.cwd.clone(), self.known)?;
        let mut config = plan.executor_config(&self.owner);
        if let Some(f) = self.configure {
            config = f(config);
        }
        let mut exec = Executor::new(self.store, Arc::new(deployer)).with_config(config);
        if self.gate
            && let Some(gate) = plan.gate(self.cwd.clone())?
        {
            exec = exec.with_gate(gate);
        }
        if let Some(router) = plan.router(self.cwd)? {
            exec = exec.with_router(Arc::new(router));
        }
        Ok(exec)
    }
}

impl Plan {
    /// The executor this plan describes, over `store`, with `owner` as the
    /// controller's name: deployer, gate (command or canary), router,
    /// readiness, retry and gate limits wired, commands run in this
    /// process's directory. For more control, [`executor_builder`](Self::executor_builder).
    ///
    /// The request to hand it is [`request`](Self::request); it carries the
    /// plan's `[[notify]]` destinations, which the executor records with
    /// each event in the store's outbox for a
    /// [`Dispatcher`](rollgate_deploy::Dispatcher) configured by
    /// [`dispatch_config`](Self::dispatch_config) to deliver.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rollgate::deploy::{MemoryStore, Outcome, StateStore};
    /// use rollgate::plan::Plan;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// for target in ["web-1", "web-2"] {
    ///     std::fs::write(dir.path().join(format!("{target}.version")), "v1\n")?;
    /// }
    /// let path = dir.path().join("plan.toml");
    /// std::fs::write(&path, r#"
    /// service = "web"
    /// artifact = { version = "v2", digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222" }
    /// previous = { version = "v1", digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111" }
    /// targets = ["web-1", "web-2"]
    ///
    /// [deployer]
    /// kind = "command"
    /// deploy = "echo {version} > {target}.version"
    /// current = "cat {target}.version"
    /// ready = "test -s {target}.version"
    ///
    /// [strategy]
    /// kind = "canary"
    /// steps = [50, 100]
    ///
    /// [gate]
    /// kind = "command"
    /// command = "test {percent} -le 100"
    /// "#)?;
    ///
    /// let plan = Plan::load(&path)?;
    /// let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    /// let exec = plan.executor_builder(store).owner("docs").cwd(dir.path()).build()?;
    /// let report = exec.submit(plan.request("alice", None)).await?;
    /// assert_eq!(report.outcome, Some(Outcome::Succeeded));
    /// assert_eq!(std::fs::read_to_string(dir.path().join("web-2.version"))?, "v2\n");
    /// # Ok(())
    /// # }
    /// ```
    pub fn executor(&self, store: Arc<dyn StateStore>, owner: &str) -> Result<Executor, Error> {
        self.executor_builder(store).owner(owner).build()
    }

    /// A builder for the executor this plan describes, over `store`
    /// ([`executor`](Self::executor) with the defaults).
    pub fn executor_builder(&self, store: Arc<dyn StateStore>) -> ExecutorBuilder<'_> {
        ExecutorBuilder {
            plan: self,
            store,
            owner: ExecutorConfig::default().owner,
            cwd: None,
            known: Vec::new(),
            gate: true,
            configure: None,
        }
    }

    /// Settings for a [`Dispatcher`](rollgate_deploy::Dispatcher) delivering
    /// this plan's notifications for the controller `owner`, whose rollout
    /// leases last `lease_ttl` (its
    /// [`ExecutorConfig::lease_ttl`](rollgate_deploy::ExecutorConfig::lease_ttl)):
    /// `[notify_retry]`'s waits and attempt timeout, and claims that outlive
    /// one attempt but never the lease. The same rule as the CLI's
    /// ([`dispatch_config`](super::dispatch_config)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rollgate::plan::Plan;
    /// let text = r#"service = "web"
    /// artifact = { version = "v2", digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222" }
    /// targets = ["web-1"]
    /// [deployer]
    /// kind = "command"
    /// deploy = "true"
    /// current = "true"
    /// ready = "true"
    /// [strategy]
    /// kind = "all-at-once"
    /// [notify_retry]
    /// timeout = "20s"
    /// "#;
    /// let plan = Plan::parse(text, "plan.toml")?;
    /// let d = plan.dispatch_config("ctl-1", Duration::from_secs(30));
    /// assert_eq!(d.timeout, Duration::from_secs(20));
    /// // 2 × 20 s + 1 s would outlive the lease: the lease caps it.
    /// assert_eq!(d.claim_ttl, Duration::from_secs(30));
    /// # Ok::<(), rollgate::deploy::Error>(())
    /// ```
    pub fn dispatch_config(&self, owner: &str, lease_ttl: std::time::Duration) -> DispatchConfig {
        super::dispatch_config(owner, &self.notify_retry, self.notify_timeout, lease_ttl)
    }
}

#[cfg(test)]
mod tests {
    use rollgate_deploy::{MemoryStore, Outcome};

    use super::*;

    const PLAN: &str = r#"service = "web"
artifact = { version = "v2", digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222" }
previous = { version = "v1", digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111" }
targets = ["web-1", "web-2", "web-3", "web-4"]

[deployer]
kind = "command"
deploy = "echo {version} > {target}.version"
current = "cat {target}.version"
ready = "test -s {target}.version"

[strategy]
kind = "canary"
steps = [25, 100]

[gate]
kind = "command"
command = "test {percent} -lt 25"
"#;

    /// Runs `plan` on four targets running v1, in a fresh directory; the
    /// outcome and what each target runs after.
    async fn run(
        plan: &str,
        build: impl FnOnce(ExecutorBuilder<'_>) -> ExecutorBuilder<'_>,
    ) -> (Option<Outcome>, Vec<String>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let targets = ["web-1", "web-2", "web-3", "web-4"];
        for t in targets {
            std::fs::write(dir.path().join(format!("{t}.version")), "v1\n").expect("write");
        }
        let plan = Plan::parse(plan, "plan.toml").expect("plan");
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let exec = build(plan.executor_builder(store).cwd(dir.path()))
            .build()
            .expect("executor");
        let report = exec.submit(plan.request("test", None)).await.expect("runs");
        let runs = targets
            .iter()
            .map(|t| {
                std::fs::read_to_string(dir.path().join(format!("{t}.version"))).expect("read")
            })
            .map(|v| v.trim().to_string())
            .collect();
        (report.outcome, runs)
    }

    #[tokio::test]
    async fn the_plans_gate_and_deployer_are_wired_and_its_verdict_rolls_back() {
        // The gate fails at 25 %: the canary is rolled back to v1.
        let (outcome, runs) = run(PLAN, |b| b.owner("test")).await;
        assert_eq!(outcome, Some(Outcome::RolledBack));
        assert_eq!(runs, ["v1", "v1", "v1", "v1"]);
        // A gate that passes: v2 everywhere.
        let (outcome, runs) = run(&PLAN.replace("-lt 25", "-le 100"), |b| b).await;
        assert_eq!(outcome, Some(Outcome::Succeeded));
        assert_eq!(runs, ["v2", "v2", "v2", "v2"]);
    }

    #[tokio::test]
    async fn settings_can_be_adjusted_and_the_executor_uses_them() {
        // Readiness that never comes, and a short readiness timeout set
        // through `configure` (the plan's default is 5 minutes): the canary
        // fails, and so does the rollback (v1 is not ready either).
        let never_ready = PLAN.replace("test -s {target}.version", "false");
        let (outcome, _) = run(&never_ready, |b| {
            b.configure(|c| {
                c.with_readiness(
                    std::time::Duration::from_millis(200),
                    std::time::Duration::from_millis(50),
                )
            })
        })
        .await;
        assert_eq!(outcome, Some(Outcome::RollbackFailed));
    }
}
