//! The runtime: Engine, Linker and the component's `InstancePre` are built once; each
//! operation gets a fresh `Store` with a memory cap and a deadline on the guest's own time.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{CallHook, Config, Engine, EngineWeak, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{self, BackupServicePre};
use crate::snapshot::{LiveDatabase, SnapshotCtx};
use crate::store::{BackupDir, StoreCtx};
use crate::wire::BackupFile;

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

/// What the host lends the guest: the backup directory and the live database.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub backups: Arc<BackupDir>,
    pub database: Arc<LiveDatabase>,
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
    #[error("the database stayed locked for longer than the busy timeout")]
    Busy,
    #[error("{0}")]
    Io(String),
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
            bindings::Error::Io(why) => Error::Io(why),
        }
    }
}

/// The compiled guest and everything needed to run one operation of it.
pub struct Runtime {
    engine: Engine,
    pre: BackupServicePre<Ctx>,
    capabilities: Capabilities,
    limits: Limits,
}

impl Runtime {
    /// Compiles the embedded policy component.
    pub fn new(capabilities: Capabilities, limits: Limits) -> anyhow::Result<Runtime> {
        Runtime::with_component(crate::GUEST_COMPONENT, capabilities, limits)
    }

    /// Compiles any component of the `backup-service` world.
    pub fn with_component(
        component: &[u8],
        capabilities: Capabilities,
        limits: Limits,
    ) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let component = Component::new(&engine, component)?;
        let mut linker = Linker::new(&engine);
        // Rust's wasm32-wasip2 std imports WASI even when unused; the guest gets an empty
        // context (no files, environment, network or arguments): its only authority is ours.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        crate::store::add_to_linker(&mut linker, |ctx: &mut Ctx| &mut ctx.store)?;
        crate::snapshot::add_to_linker(&mut linker, |ctx: &mut Ctx| &mut ctx.snapshot)?;
        let pre = BackupServicePre::new(linker.instantiate_pre(&component)?)?;
        spawn_epoch_ticker(engine.weak());
        Ok(Runtime {
            engine,
            pre,
            capabilities,
            limits,
        })
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    pub fn create(&self, name: Option<&str>) -> Result<BackupFile, Error> {
        self.call(|guest, store| guest.call_create(store, name))
            .map(BackupFile::from)
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
        self.call(|guest, store| guest.call_delete(store, name))
    }

    /// Runs one export call in a fresh store under the limits.
    fn call<R>(
        &self,
        export: impl FnOnce(
            &bindings::exports::litegraph::backup::backup::Guest,
            &mut Store<Ctx>,
        ) -> wasmtime::Result<Result<R, bindings::Error>>,
    ) -> Result<R, Error> {
        let mut store = Store::new(&self.engine, Ctx::new(&self.capabilities, &self.limits));
        store.limiter(|ctx| ctx);
        store.call_hook(|mut ctx, hook| {
            ctx.data_mut().clock.transition(hook);
            Ok(())
        });
        let allowed = self.limits.guest_time;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |ctx| {
            let used = ctx.data().clock.guest_time();
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
            .pre
            .instantiate(&mut store)
            .and_then(|service| export(service.litegraph_backup_backup(), &mut store));
        match outcome {
            Ok(answer) => answer.map_err(Error::from),
            Err(fault) => Err(Error::Guest(format!("{fault:#}"))),
        }
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

/// Wall-clock time spent in the guest, excluding host calls.
struct GuestClock {
    started: Instant,
    in_host: Duration,
    host_call_started: Option<Instant>,
}

impl GuestClock {
    fn transition(&mut self, hook: CallHook) {
        match hook {
            CallHook::CallingHost => self.host_call_started = Some(Instant::now()),
            CallHook::ReturningFromHost => {
                if let Some(started) = self.host_call_started.take() {
                    self.in_host += started.elapsed();
                }
            }
            CallHook::CallingWasm | CallHook::ReturningFromWasm => {}
        }
    }

    fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.in_host)
    }
}

/// One operation's state: the capabilities' contexts, WASI's empty context, the limits.
pub(crate) struct Ctx {
    store: StoreCtx,
    snapshot: SnapshotCtx,
    wasi: WasiCtx,
    table: ResourceTable,
    memory_bytes: usize,
    clock: GuestClock,
}

impl Ctx {
    fn new(capabilities: &Capabilities, limits: &Limits) -> Ctx {
        Ctx {
            store: StoreCtx::new(Arc::clone(&capabilities.backups)),
            snapshot: SnapshotCtx::new(
                Arc::clone(&capabilities.database),
                Arc::clone(&capabilities.backups),
            ),
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            memory_bytes: limits.memory_bytes,
            clock: GuestClock {
                started: Instant::now(),
                in_host: Duration::ZERO,
                host_call_started: None,
            },
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
        if desired > self.memory_bytes {
            wasmtime::bail!(
                "the guest asked for {} MiB of memory, over its limit of {} MiB",
                desired >> 20,
                self.memory_bytes >> 20
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
