//! The 12 subcortical structures and the label schemes that map to them.
