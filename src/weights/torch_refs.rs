//! What the pickled torch objects become: a storage named by a persistent id and a
//! strided tensor view of it. The pickle machine carries them as values; the torch zip
//! reader creates and reads them (so neither of those two modules imports the other's
//! internals both ways).

use std::rc::Rc;

use tch::Kind;

/// A storage named by a persistent id.
#[derive(Debug)]
pub struct StorageRef {
    /// The record name under `data/`.
    pub(super) key: String,
    /// Element type of the storage (`Uint8` for untyped storages).
    pub(super) kind: Kind,
    /// Number of elements.
    pub(super) numel: u64,
}

/// A tensor as a strided view into a storage.
#[derive(Debug)]
pub struct TensorRef {
    pub(super) storage: Rc<StorageRef>,
    /// Element type of the tensor (differs from the storage's for untyped storages).
    pub(super) kind: Kind,
    pub(super) offset: i64,
    pub(super) size: Vec<i64>,
    pub(super) stride: Vec<i64>,
}
