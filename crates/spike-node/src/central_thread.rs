//! The central link's own thread: one small runtime, started once per
//! process, where the node's lanes to central stock run and where its Redis
//! connection reads replies. A node's connection tasks can number in the
//! thousands; on the same runtime, every central reply would wait its turn
//! behind all of them (BENCHMARKS.md, "The stampede"). On its own thread,
//! the operating system wakes it as soon as a reply arrives.

use std::sync::OnceLock;

use tokio::runtime::Handle;

/// Where a node runs its central link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CentralThread {
    /// On the central link's own thread (the default).
    #[default]
    Own,
    /// On the runtime that serves the connections (the old way, kept to
    /// measure against).
    Shared,
}

impl CentralThread {
    /// The runtime the central link runs on: the process's central thread
    /// (started on first use), or the caller's runtime for
    /// [`CentralThread::Shared`] or when no thread could be started.
    pub fn runtime(self) -> Handle {
        match self {
            Self::Own => central_runtime().unwrap_or_else(Handle::current),
            Self::Shared => Handle::current(),
        }
    }
}

/// The process's central thread's runtime, started on first use; `None`
/// if it could not be started.
fn central_runtime() -> Option<Handle> {
    static RUNTIME: OnceLock<Option<Handle>> = OnceLock::new();
    RUNTIME.get_or_init(start).clone()
}

fn start() -> Option<Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| tracing::warn!(%error, "no runtime for the central link; sharing one"))
        .ok()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("spike-central".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .map_err(|error| tracing::warn!(%error, "no thread for the central link; sharing one"))
        .ok()?;
    Some(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_own_thread_is_one_thread_apart_from_the_caller() {
        let caller = std::thread::current().id();
        let on_own = CentralThread::Own
            .runtime()
            .spawn(async { std::thread::current().name().map(String::from) })
            .await
            .unwrap();
        assert_eq!(on_own.as_deref(), Some("spike-central"));
        let again = CentralThread::Own
            .runtime()
            .spawn(async { std::thread::current().id() })
            .await
            .unwrap();
        assert_ne!(again, caller);
        let shared = CentralThread::Shared
            .runtime()
            .spawn(async { std::thread::current().id() })
            .await
            .unwrap();
        assert_eq!(shared, caller, "a current-thread test runtime");
    }
}
