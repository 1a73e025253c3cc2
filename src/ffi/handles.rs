//! Registries of live C handles.
//!
//! A handle given to C is the address of an `Arc`'d object, recorded in the registry of
//! its type. Every call looks the address up before touching it, so a handle that was
//! freed (or never created by BrainSAM) is reported as
//! `BRAINSAM_STATUS_INVALID_HANDLE` instead of being dereferenced, and a double free is
//! ignored. A call works on its own reference (an `Arc` clone): freeing a handle while
//! another thread is inside a call on it only drops the caller's reference; the object
//! goes away when that call returns.
//!
//! Limit: once freed, an address may be reused by a new object of the same type, and a
//! stale handle then reaches that object (memory-safe, but the wrong object). Callers
//! should not keep handles after freeing them.

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use super::FfiError;

/// The live handles of one type `T`.
pub(crate) struct HandleRegistry<T> {
    live: Mutex<BTreeSet<usize>>,
    /// The C type name, for messages ("brainsam_session").
    type_name: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T> HandleRegistry<T> {
    /// An empty registry for handles of C type `type_name`.
    pub(crate) const fn new(type_name: &'static str) -> Self {
        HandleRegistry {
            live: Mutex::new(BTreeSet::new()),
            type_name,
            _type: PhantomData,
        }
    }

    fn live(&self) -> MutexGuard<'_, BTreeSet<usize>> {
        // The set is always consistent (single inserts/removes), even after a panic.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Turns `value` into a handle for C.
    pub(crate) fn register(&self, value: Arc<T>) -> *mut T {
        let pointer = Arc::into_raw(value).cast_mut();
        self.live().insert(pointer as usize);
        pointer
    }

    /// A reference to the object behind `handle` (argument `name`), or an error naming
    /// the argument when it is null or not a live handle of this type.
    pub(crate) fn get(&self, handle: *const T, name: &'static str) -> Result<Arc<T>, FfiError> {
        if handle.is_null() {
            return Err(FfiError::NullPointer(name));
        }
        let live = self.live();
        if !live.contains(&(handle as usize)) {
            return Err(FfiError::InvalidHandle(format!(
                "`{name}` ({handle:p}) is not a live {} handle: it was freed already or \
                 did not come from BrainSAM",
                self.type_name
            )));
        }
        // SAFETY: the address is in the registry, so it came from `Arc::into_raw` in
        // `register` and the registry still owns that reference (it is only released in
        // `release`, under the same lock we hold).
        unsafe {
            Arc::increment_strong_count(handle);
            Ok(Arc::from_raw(handle))
        }
    }

    /// Drops the registry's reference to `handle`. Returns false (and does nothing) when
    /// the handle is null or not live, e.g. on a double free.
    pub(crate) fn release(&self, handle: *mut T) -> bool {
        if handle.is_null() {
            return false;
        }
        let removed = self.live().remove(&(handle as usize));
        if removed {
            // SAFETY: the address was live, so it holds the registry's reference from
            // `register`, which we now take back (outside the lock: dropping a session
            // frees tensors and may take a while).
            drop(unsafe { Arc::from_raw(handle.cast_const()) });
        } else {
            log::warn!(
                "ignoring free of {handle:p}: not a live {} handle (double free?)",
                self.type_name
            );
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_foreign_handles_are_refused_and_double_free_ignored() {
        static REGISTRY: HandleRegistry<String> = HandleRegistry::new("brainsam_test");
        let handle = REGISTRY.register(Arc::new("hello".to_string()));
        let value = REGISTRY.get(handle, "thing").unwrap();
        assert_eq!(*value, "hello");
        assert!(REGISTRY.release(handle));
        // Our clone keeps the object alive after the handle is freed.
        assert_eq!(*value, "hello");
        assert!(!REGISTRY.release(handle), "double free is ignored");
        let stale = REGISTRY.get(handle, "thing").unwrap_err();
        assert!(matches!(stale, FfiError::InvalidHandle(ref m) if m.contains("`thing`")));
        let foreign = 0x1000 as *const String;
        assert!(matches!(
            REGISTRY.get(foreign, "thing"),
            Err(FfiError::InvalidHandle(_))
        ));
        assert!(matches!(
            REGISTRY.get(std::ptr::null(), "thing"),
            Err(FfiError::NullPointer("thing"))
        ));
    }
}
