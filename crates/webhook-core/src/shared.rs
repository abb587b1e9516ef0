use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use crate::BuildError;

type Entries = HashMap<(std::any::TypeId, String), Arc<dyn Any + Send + Sync>>;

/// Clients shared by all destinations of one pipeline: one per connections.json entry, not
/// one per webhook (and never one per request).
///
/// A destination asks for its client by a key (usually the connection name); the first
/// asker builds it, later ones get the same `Arc`.
#[derive(Clone, Default)]
pub struct SharedClients {
    entries: Arc<tokio::sync::Mutex<Entries>>,
}

impl std::fmt::Debug for SharedClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedClients")
    }
}

impl SharedClients {
    /// The client of type `T` stored under `key`, built by `init` if there is none yet.
    pub async fn get_or_try_init<T, F, Fut>(&self, key: &str, init: F) -> Result<Arc<T>, BuildError>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, BuildError>>,
    {
        let mut entries = self.entries.lock().await;
        let id = (std::any::TypeId::of::<T>(), key.to_owned());
        if let Some(existing) = entries.get(&id)
            && let Ok(client) = Arc::clone(existing).downcast::<T>()
        {
            return Ok(client);
        }
        let client = Arc::new(init().await?);
        entries.insert(id, Arc::clone(&client) as Arc<dyn Any + Send + Sync>);
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_client_per_key_and_type() {
        let shared = SharedClients::default();
        let a = shared
            .get_or_try_init("c", || async { Ok(1u32) })
            .await
            .unwrap();
        let b = shared
            .get_or_try_init("c", || async { Ok(2u32) })
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let other = shared
            .get_or_try_init("d", || async { Ok(3u32) })
            .await
            .unwrap();
        assert_eq!(*other, 3);
        let typed = shared
            .get_or_try_init("c", || async { Ok("x") })
            .await
            .unwrap();
        assert_eq!(*typed, "x");
        let failed = shared
            .get_or_try_init::<u64, _, _>("e", || async { Err(BuildError::other("down")) })
            .await;
        assert!(failed.is_err());
        let retried = shared
            .get_or_try_init("e", || async { Ok(5u64) })
            .await
            .unwrap();
        assert_eq!(*retried, 5);
    }
}
