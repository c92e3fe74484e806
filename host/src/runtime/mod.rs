//! The runtime: Engine, Linker and the component's `InstancePre` are built once; each
//! operation gets a fresh `Store` with a memory cap and a deadline on the guest's own time.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    CallHook, Config, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig,
    ResourceLimiter, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{self, BackupServicePre};
use crate::budget::Budget;
use crate::monitor::{Monitor, Operation, OperationRecord, Outcome, Progress};
use crate::remote::{RemoteCtx, Targets};
use crate::snapshot::{LiveDatabase, SnapshotCtx};
use crate::store::{BackupDir, StoreCtx};
use crate::wire::{
    BackupDetails, BackupFile, Drill, PruneDecision, PushOutcome, RemoteBackup, RemoteVerification,
    Restoration, Retention, Verification,
};

mod compile_cache;

pub use compile_cache::CompileCache;

/// Guest instances that can exist at once; more callers wait for a turn.
const POOLED_INSTANCES: u32 = 64;

/// How often the engine's epoch advances: the granularity of the guest's deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits every guest call runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most linear memory the guest may have, in bytes.
    pub memory_bytes: usize,
    /// The most time the guest may spend computing in one operation. Time spent in host
    /// capabilities (a snapshot of a large database takes seconds) does not count.
    pub guest_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            guest_time: Duration::from_secs(5),
        }
    }
}

/// What the host lends the guest: the backup directory, the live database and the remote
/// targets (none unless [`Capabilities::with_remotes`]); and where its operations are
/// reported ([`Monitor`]).
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub backups: Arc<BackupDir>,
    pub database: Arc<LiveDatabase>,
    pub remotes: Arc<Targets>,
    pub monitor: Monitor,
}

impl Capabilities {
    /// Lends the policy `backups` and `database`. When the backup directory is the
    /// database's own directory, the database's files there are put out of the policy's
    /// reach ([`BackupDir::protect_live_database`]).
    pub fn new(database: LiveDatabase, mut backups: BackupDir) -> Capabilities {
        if backups.protect_live_database(database.path()) {
            tracing::warn!(
                "the backup directory {} holds the live database {}: its files are never listed, deleted or restored as backups",
                backups.path().display(),
                database.path().display()
            );
        }
        let backups = Arc::new(backups);
        Capabilities {
            monitor: Monitor::new(Arc::clone(&backups)),
            backups,
            database: Arc::new(database),
            remotes: Arc::new(Targets::none()),
        }
    }

    /// Shows the progress of long passes on `progress` (a terminal's bars).
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Capabilities {
        self.monitor = self.monitor.with_progress(progress);
        self
    }

    /// Lends the policy these remote targets as well.
    pub fn with_remotes(mut self, remotes: Targets) -> Capabilities {
        self.remotes = Arc::new(remotes);
        self
    }
}

/// Why an operation failed: the guest's answer, or a fault of the guest itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid backup name: {0}")]
    InvalidName(String),
    #[error("no such backup")]
    NotFound,
    #[error("a backup of that name exists already")]
    Exist,
    #[error("refused by the host: {0}")]
    NotPermitted(String),
    #[error("{0}")]
    NoDatabase(String),
    #[error(
        "the database stayed locked (by a writer, or by another create or restore) for longer than the busy timeout"
    )]
    Busy,
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// The policy component trapped, ran out of memory or time: the host's fault to report,
    /// never the caller's.
    #[error("the policy component failed: {0}")]
    Guest(String),
}

impl From<bindings::Error> for Error {
    fn from(e: bindings::Error) -> Self {
        match e {
            bindings::Error::InvalidName(why) => Error::InvalidName(why),
            bindings::Error::NotFound => Error::NotFound,
            bindings::Error::Exist => Error::Exist,
            bindings::Error::NotPermitted(why) => Error::NotPermitted(why),
            bindings::Error::NoDatabase(why) => Error::NoDatabase(why),
            bindings::Error::Busy => Error::Busy,
            bindings::Error::Corrupt(why) => Error::Corrupt(why),
            bindings::Error::Io(why) => Error::Io(why),
            bindings::Error::InvalidArgument(why) => Error::InvalidArgument(why),
        }
    }
}

/// The compiled policy component, ready to instantiate: compiled once (0.15-0.23 s, or
/// loaded from a [`CompileCache`]), shared by every runtime and operation (cheap to clone).
#[derive(Clone)]
pub struct Policy {
    engine: Engine,
    pre: BackupServicePre<Ctx>,
    limits: Limits,
    permits: Arc<Permits>,
}

/// A counting semaphore: at most [`POOLED_INSTANCES`] guest instances at once.
struct Permits {
    free: Mutex<u32>,
    released: Condvar,
}

/// One instance's place in the pool, given back when dropped.
struct Permit<'a>(&'a Permits);

impl Permits {
    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .released
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.released.notify_one();
    }
}

impl Policy {
    /// The policy component embedded in this binary, compiled in this process (no
    /// [`CompileCache`]: see [`Policy::compile`]).
    pub fn embedded(limits: Limits) -> anyhow::Result<Policy> {
        Policy::from_component(crate::GUEST_COMPONENT, limits)
    }

    /// Any component of the `backup-service` world.
    pub fn from_component(component: &[u8], limits: Limits) -> anyhow::Result<Policy> {
        Policy::compile(component, limits, &CompileCache::Off)
    }

    /// [`Policy::from_component`], the compiled code loaded from `cache` when it holds it,
    /// and kept there when not. A cache that cannot be used costs a compile, not an error.
    pub fn compile(
        component: &[u8],
        limits: Limits,
        cache: &CompileCache,
    ) -> anyhow::Result<Policy> {
        let opened = cache.open();
        match (Policy::build(component, limits, opened.as_ref()), opened) {
            // The manifest catches an entry damaged on disk; what loads and then fails to
            // build (a foreign entry recorded as ours) is caught here.
            (Err(e), Some(opened)) if opened.loaded() => {
                tracing::warn!(
                    "the compiled policy in {} could not be used ({e:#}): compiled again",
                    opened.cache().directory().display()
                );
                opened.clear();
                Policy::build(component, limits, cache.open().as_ref())
            }
            (built, _) => built,
        }
    }

    fn build(
        component: &[u8],
        limits: Limits,
        cache: Option<&compile_cache::Opened>,
    ) -> anyhow::Result<Policy> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.cache(cache.map(compile_cache::Opened::cache));
        // Instances come from a pool allocated once (a fresh mmap per instance costs more
        // than the rest of a request); `permits` keeps callers within it.
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(POOLED_INSTANCES)
            .total_core_instances(POOLED_INSTANCES * 8)
            .total_memories(POOLED_INSTANCES)
            .total_tables(POOLED_INSTANCES * 4)
            .max_memory_size(
                limits
                    .memory_bytes
                    .saturating_add(crate::budget::MAX_LISTING_MEMORY),
            );
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let component = Component::new(&engine, component)?;
        if let Some(cache) = cache {
            cache.finish();
        }
        let mut linker = Linker::new(&engine);
        // Rust's wasm32-wasip2 std imports WASI even when unused; the guest gets an empty
        // context (no files, environment, network or arguments): its only authority is ours.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        crate::store::add_to_linker(&mut linker, |ctx: &mut Ctx| &mut ctx.store)?;
        crate::snapshot::add_to_linker(&mut linker, |ctx: &mut Ctx| &mut ctx.snapshot)?;
        crate::remote::add_to_linker(&mut linker, |ctx: &mut Ctx| &mut ctx.remote)?;
        let pre = BackupServicePre::new(linker.instantiate_pre(&component)?)?;
        spawn_epoch_ticker(engine.weak());
        Ok(Policy {
            engine,
            pre,
            limits,
            permits: Arc::new(Permits {
                free: Mutex::new(POOLED_INSTANCES),
                released: Condvar::new(),
            }),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// The policy with the capabilities it is lent: what every edge calls.
#[derive(Clone)]
pub struct Runtime {
    policy: Policy,
    capabilities: Capabilities,
}

impl Runtime {
    /// Compiles the embedded policy and lends it `capabilities`.
    pub fn new(capabilities: Capabilities, limits: Limits) -> anyhow::Result<Runtime> {
        Ok(Runtime::from_policy(
            &Policy::embedded(limits)?,
            capabilities,
        ))
    }

    pub fn from_policy(policy: &Policy, capabilities: Capabilities) -> Runtime {
        Runtime {
            policy: policy.clone(),
            capabilities,
        }
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    pub fn create(&self, name: Option<&str>) -> Result<BackupFile, Error> {
        let about = About::backup(name);
        self.observed(Operation::Create, about, |observed| {
            let backup = self
                .call(|guest, store| guest.call_create(store, name))
                .map(BackupFile::from)?;
            observed.backup = Some(backup.filename.clone());
            observed.bytes = backup.length;
            Ok(backup)
        })
    }

    pub fn list(&self) -> Result<Vec<BackupFile>, Error> {
        self.call(|guest, store| guest.call_list(store))
            .map(|backups| backups.into_iter().map(BackupFile::from).collect())
    }

    pub fn read(&self, name: &str) -> Result<BackupFile, Error> {
        self.call(|guest, store| guest.call_read(store, name))
            .map(BackupFile::from)
    }

    pub fn exists(&self, name: &str) -> Result<bool, Error> {
        self.call(|guest, store| guest.call_exists(store, name))
    }

    pub fn delete(&self, name: &str) -> Result<(), Error> {
        self.observed(Operation::Delete, About::backup(Some(name)), |_| {
            self.call(|guest, store| guest.call_delete(store, name))
        })
    }

    pub fn verify(&self, name: &str, full: bool) -> Result<Verification, Error> {
        self.observed(Operation::Verify, About::backup(Some(name)), |observed| {
            let verdict = self
                .call(|guest, store| guest.call_verify(store, name, full))
                .map(Verification::from)?;
            observed.bytes = verdict.backup.length;
            observed.problems(&verdict.problems);
            Ok(verdict)
        })
    }

    pub fn restore(&self, name: &str) -> Result<Restoration, Error> {
        self.observed(Operation::Restore, About::backup(Some(name)), |observed| {
            let restoration = self
                .call(|guest, store| guest.call_restore(store, name))
                .map(Restoration::from)?;
            observed.bytes = restoration.restored.length;
            Ok(restoration)
        })
    }

    /// Tests a restore of `name` (default: the newest backup) in a scratch database; the
    /// live database is never touched. A drill that fails is an answer (its problems), not
    /// an error; its outcome is recorded with the backup.
    pub fn drill(&self, name: Option<&str>) -> Result<Drill, Error> {
        self.observed(Operation::Drill, About::backup(name), |observed| {
            let drill = self
                .call(|guest, store| guest.call_drill(store, name))
                .map(Drill::from)?;
            observed.backup = Some(drill.backup.filename.clone());
            observed.bytes = drill.backup.length;
            observed.problems(&drill.problems);
            Ok(drill)
        })
    }

    /// A backup's metadata with its origin and its last verify and drill.
    pub fn details(&self, name: &str) -> Result<BackupDetails, Error> {
        self.call(|guest, store| guest.call_details(store, name))
            .map(BackupDetails::from)
    }

    /// Applies retention rules (see [`Retention`]); with `dry_run`, only decides. Rules
    /// with no rule at all are refused ([`Error::InvalidArgument`]) by the policy.
    pub fn prune(&self, rules: &Retention, dry_run: bool) -> Result<Vec<PruneDecision>, Error> {
        let rules = bindings::Retention::from(rules);
        let prune = || {
            self.call(|guest, store| guest.call_prune(store, rules, dry_run))
                .map(|decisions| decisions.into_iter().map(PruneDecision::from).collect())
        };
        if dry_run {
            return prune();
        }
        self.observed(Operation::Prune, About::default(), |observed| {
            let decisions = prune()?;
            observed.removals(&decisions);
            Ok(decisions)
        })
    }

    /// Copies backup `name` to `target`, or to every remote target.
    pub fn push(&self, name: &str, target: Option<&str>) -> Result<Vec<PushOutcome>, Error> {
        let about = About::backup(Some(name)).on(target);
        self.observed(Operation::Push, about, |observed| {
            let outcomes: Vec<PushOutcome> = self
                .call(|guest, store| guest.call_push(store, name, target))
                .map(|outcomes| outcomes.into_iter().map(PushOutcome::from).collect())?;
            observed.bytes = outcomes
                .iter()
                .filter(|outcome| outcome.uploaded)
                .map(|outcome| outcome.remote.stored_length)
                .sum();
            Ok(outcomes)
        })
    }

    /// The local backups `target` holds no copy of, oldest first: what pushes would bring
    /// it up to date with (the policy's answer).
    pub fn unpushed(&self, target: &str) -> Result<Vec<String>, Error> {
        self.call(|guest, store| guest.call_unpushed(store, target))
    }

    /// The backups `target` holds, oldest first.
    pub fn remote_list(&self, target: &str) -> Result<Vec<RemoteBackup>, Error> {
        self.call(|guest, store| guest.call_remote_list(store, target))
            .map(|backups| backups.into_iter().map(RemoteBackup::from).collect())
    }

    /// Copies backup `name` from `target` into the backup directory, checked.
    pub fn pull(&self, target: &str, name: &str) -> Result<BackupFile, Error> {
        let about = About::backup(Some(name)).on(Some(target));
        self.observed(Operation::Pull, about, |observed| {
            let backup = self
                .call(|guest, store| guest.call_pull(store, target, name))
                .map(BackupFile::from)?;
            observed.bytes = backup.length;
            Ok(backup)
        })
    }

    /// `pull`'s checks, keeping nothing.
    pub fn remote_verify(&self, target: &str, name: &str) -> Result<RemoteVerification, Error> {
        let about = About::backup(Some(name)).on(Some(target));
        self.observed(Operation::RemoteVerify, about, |observed| {
            let verdict = self
                .call(|guest, store| guest.call_remote_verify(store, target, name))
                .map(RemoteVerification::from)?;
            observed.bytes = verdict.remote.stored_length;
            observed.problems(&verdict.problems);
            Ok(verdict)
        })
    }

    /// Retention rules applied to what `target` holds. Unless `dry_run`, the multipart
    /// uploads to `target` that a dead process left (see the upload journal in
    /// [`crate::remote`]) are aborted first, so that their parts stop taking up space.
    pub fn remote_prune(
        &self,
        target: &str,
        rules: &Retention,
        dry_run: bool,
    ) -> Result<Vec<PruneDecision>, Error> {
        self.remote_prune_counting(target, rules, dry_run)
            .map(|(decisions, _)| decisions)
    }

    /// [`Runtime::remote_prune`], with how many interrupted uploads it aborted.
    pub fn remote_prune_counting(
        &self,
        target: &str,
        rules: &Retention,
        dry_run: bool,
    ) -> Result<(Vec<PruneDecision>, usize), Error> {
        let rules = bindings::Retention::from(rules);
        let prune = || {
            self.call(|guest, store| guest.call_remote_prune(store, target, rules, dry_run))
                .map(|decisions| decisions.into_iter().map(PruneDecision::from).collect())
        };
        if dry_run {
            return prune().map(|decisions| (decisions, 0));
        }
        let capabilities = &self.capabilities;
        let aborted = match capabilities
            .remotes
            .sweep_abandoned_uploads(&capabilities.backups, target)
        {
            Ok(count) => count,
            Err(e) => {
                tracing::warn!("cannot read the upload journal: {e}");
                0
            }
        };
        let about = About::default().on(Some(target));
        self.observed(Operation::RemotePrune, about, |observed| {
            let decisions: Vec<PruneDecision> = prune()?;
            observed.removals(&decisions);
            Ok((decisions, aborted))
        })
    }

    /// Runs `operation`, timed, and reports it once to the monitor when it ends: its
    /// outcome from its answer (an error the caller caused is a refusal, any other a
    /// failure; `operation` notes a negative verdict and the bytes in `observed`).
    fn observed<R>(
        &self,
        operation: Operation,
        about: About,
        run: impl FnOnce(&mut Observed) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let started = SystemTime::now();
        let clock = Instant::now();
        let mut observed = Observed {
            backup: about.backup,
            bytes: 0,
            failure: None,
        };
        let answer = run(&mut observed);
        let outcome = match (&answer, observed.failure) {
            (Ok(_), None) => Outcome::Success,
            (Ok(_), Some(why)) => Outcome::Failure(why),
            (Err(e), _) if e.is_callers() => Outcome::Refused(e.to_string()),
            (Err(e), _) => Outcome::Failure(e.to_string()),
        };
        self.capabilities.monitor.record(&OperationRecord {
            operation,
            backup: observed.backup,
            target: about.target,
            started,
            duration: clock.elapsed(),
            bytes: observed.bytes,
            outcome,
        });
        answer
    }

    /// Runs one export call in a fresh store under the limits.
    fn call<R>(
        &self,
        export: impl FnOnce(
            &bindings::exports::litegraph::backup::backup::Guest,
            &mut Store<Ctx>,
        ) -> wasmtime::Result<Result<R, bindings::Error>>,
    ) -> Result<R, Error> {
        let _permit = self.policy.permits.acquire();
        let limits = self.policy.limits;
        let mut store = Store::new(&self.policy.engine, Ctx::new(&self.capabilities, &limits));
        store.limiter(|ctx| ctx);
        store.call_hook(|mut ctx, hook| {
            ctx.data_mut().clock.transition(hook);
            Ok(())
        });
        let allowed = limits.guest_time;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |ctx| {
            if let Some(why) = ctx.data().budget.exceeded() {
                wasmtime::bail!("{why}");
            }
            let used = ctx.data().clock.guest_time();
            let allowed = allowed + ctx.data().budget.extra_guest_time();
            if used > allowed {
                wasmtime::bail!(
                    "the guest computed for {} ms, over its limit of {} ms",
                    used.as_millis(),
                    allowed.as_millis()
                );
            }
            Ok(UpdateDeadline::Continue(1))
        });
        let outcome = self
            .policy
            .pre
            .instantiate(&mut store)
            .and_then(|service| export(service.litegraph_backup_backup(), &mut store));
        match outcome {
            Ok(answer) => answer.map_err(Error::from),
            Err(fault) => {
                // The guest's fault, not the caller's: logged whole (with the wasm backtrace)
                // for the operator, summed up in one line for the error.
                tracing::warn!("the policy component failed: {fault:?}");
                let summary = match fault.downcast_ref::<Trap>() {
                    Some(trap) => trap.to_string(),
                    None => fault.root_cause().to_string(),
                };
                Err(Error::Guest(summary))
            }
        }
    }
}

/// What an operation is about, for its record.
#[derive(Default)]
struct About {
    backup: Option<String>,
    target: Option<String>,
}

impl About {
    fn backup(name: Option<&str>) -> About {
        About {
            backup: name.map(str::to_owned),
            target: None,
        }
    }

    fn on(mut self, target: Option<&str>) -> About {
        self.target = target.map(str::to_owned);
        self
    }
}

/// What an operation learns about itself while it runs, for its record.
struct Observed {
    backup: Option<String>,
    bytes: u64,
    /// A negative verdict: the operation answered, but what it found is a failure.
    failure: Option<String>,
}

impl Observed {
    /// A verdict's problems: none is a success.
    fn problems(&mut self, problems: &[String]) {
        if !problems.is_empty() {
            self.failure = Some(problems.join("; "));
        }
    }

    /// A prune's removals: the bytes removed, and the removals that failed.
    fn removals(&mut self, decisions: &[PruneDecision]) {
        let removed = decisions
            .iter()
            .filter(|d| !d.keep && d.removal_failed.is_none());
        self.bytes = removed.map(|d| d.backup.length).sum();
        let failed: Vec<String> = decisions
            .iter()
            .filter_map(|d| {
                let why = d.removal_failed.as_ref()?;
                Some(format!("{} could not be removed: {why}", d.backup.filename))
            })
            .collect();
        if !failed.is_empty() {
            self.failure = Some(failed.join("; "));
        }
    }
}

impl Error {
    /// Whether the caller caused this error (a bad name, no such backup, a name taken, an
    /// argument that cannot be acted on): a refusal, not a failure of the service.
    pub fn is_callers(&self) -> bool {
        matches!(
            self,
            Error::InvalidName(_) | Error::NotFound | Error::Exist | Error::InvalidArgument(_)
        )
    }
}

/// Advances the engine's epoch until the engine is gone.
fn spawn_epoch_ticker(engine: EngineWeak) {
    thread::Builder::new()
        .name("guest-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn the epoch thread");
}

/// Wall-clock time spent running guest code, from the store's call hooks. Calls nest
/// (a host function lowers its result by calling the guest's allocator, which may hit a
/// libcall), so the clock keeps a stack of who is running and charges each interval to the
/// guest only while guest code is on top.
struct GuestClock {
    guest: Duration,
    since: Instant,
    running_guest: Vec<bool>,
}

impl GuestClock {
    fn new() -> GuestClock {
        GuestClock {
            guest: Duration::ZERO,
            since: Instant::now(),
            running_guest: Vec::new(),
        }
    }

    fn transition(&mut self, hook: CallHook) {
        let now = Instant::now();
        if self.running_guest.last() == Some(&true) {
            self.guest += now - self.since;
        }
        self.since = now;
        match hook {
            CallHook::CallingWasm => self.running_guest.push(true),
            CallHook::CallingHost => self.running_guest.push(false),
            CallHook::ReturningFromWasm | CallHook::ReturningFromHost => {
                self.running_guest.pop();
            }
        }
    }

    fn guest_time(&self) -> Duration {
        match self.running_guest.last() {
            Some(true) => self.guest + self.since.elapsed(),
            _ => self.guest,
        }
    }
}

/// One operation's state: the capabilities' contexts, WASI's empty context, the limits.
pub(crate) struct Ctx {
    budget: Budget,
    store: StoreCtx,
    snapshot: SnapshotCtx,
    remote: RemoteCtx,
    wasi: WasiCtx,
    table: ResourceTable,
    memory_bytes: usize,
    clock: GuestClock,
}

impl Ctx {
    fn new(capabilities: &Capabilities, limits: &Limits) -> Ctx {
        let budget = Budget::default();
        Ctx {
            store: StoreCtx::new(
                Arc::clone(&capabilities.backups),
                budget.clone(),
                capabilities.monitor.clone(),
            ),
            snapshot: SnapshotCtx::new(
                Arc::clone(&capabilities.database),
                Arc::clone(&capabilities.backups),
                budget.clone(),
                capabilities.monitor.clone(),
            ),
            remote: RemoteCtx::new(
                Arc::clone(&capabilities.remotes),
                Arc::clone(&capabilities.backups),
                budget.clone(),
                capabilities.monitor.clone(),
            ),
            budget,
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            memory_bytes: limits.memory_bytes,
            clock: GuestClock::new(),
        }
    }
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for Ctx {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A large directory's listing needs room in proportion to it (the budget's share).
        let allowed = self
            .memory_bytes
            .saturating_add(self.budget.extra_guest_memory());
        if desired > allowed {
            wasmtime::bail!(
                "the guest asked for {} MiB of memory, over its limit of {} MiB",
                desired >> 20,
                allowed >> 20
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
