//! Strict loading of named tensors into a `tch::nn::VarStore`.

use std::collections::HashMap;
use std::fmt;

use tch::nn::VarStore;
use tch::Tensor;

use crate::error::{Error, Result};

/// At most this many names are listed per category in an error message.
const MAX_LISTED: usize = 20;

/// Which differences between a checkpoint and the model are acceptable.
///
/// A pattern matches a tensor name when it equals the name, when it is a module
/// prefix of it (`mask_decoder.mask_tokens` matches `mask_decoder.mask_tokens.weight`),
/// or when it contains `*` wildcards that match any run of characters
/// (`image_encoder.blocks.*.attn.lora_*`).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Model variables that may be absent from the checkpoint (they keep their
    /// current values), e.g. LoRA matrices or re-initialised decoder heads.
    pub allow_missing: Vec<String>,
    /// Checkpoint tensors that may have no model variable (they are ignored).
    pub allow_unexpected: Vec<String>,
}

impl LoadOptions {
    /// Options that accept no difference at all.
    pub fn strict() -> Self {
        Self::default()
    }

    /// Adds patterns of model variables that may be missing from the checkpoint.
    pub fn allowing_missing<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allow_missing
            .extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Adds patterns of checkpoint tensors that may be unknown to the model.
    pub fn allowing_unexpected<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allow_unexpected
            .extend(patterns.into_iter().map(Into::into));
        self
    }
}

/// What a successful [`load_into_var_store`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Variables that received a checkpoint value, sorted.
    pub loaded: Vec<String>,
    /// Variables absent from the checkpoint that the options allowed, sorted.
    pub missing: Vec<String>,
    /// Checkpoint tensors without a variable that the options allowed, sorted.
    pub unexpected: Vec<String>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loaded {} tensors; {} allowed missing; {} ignored unexpected",
            self.loaded.len(),
            self.missing.len(),
            self.unexpected.len()
        )
    }
}

/// Whether `pattern` selects `name` (see [`LoadOptions`]).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name == pattern
            || (name.starts_with(pattern) && name[pattern.len()..].starts_with('.'));
    }
    let (pattern, name) = (pattern.as_bytes(), name.as_bytes());
    // Iterative glob with backtracking to the last '*'.
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            backtrack = Some((p, n));
            p += 1;
        } else if p < pattern.len() && pattern[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            n = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn any_match(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|pattern| name_matches(pattern, name))
}

fn listed(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(MAX_LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_LISTED {
        text.push_str(&format!(", ... and {} more", names.len() - MAX_LISTED));
    }
    text
}

/// Copies checkpoint tensors into the variables of `var_store` that have the same
/// names, converting dtype and device as needed (under `no_grad`).
///
/// Everything is checked before anything is copied, so on error the var store is
/// unchanged. The error lists all missing and unexpected names and all shape
/// mismatches (with both shapes) at once.
pub fn load_into_var_store(
    var_store: &VarStore,
    tensors: &[(String, Tensor)],
    options: &LoadOptions,
) -> Result<LoadReport> {
    let mut variables = var_store.variables();
    let mut duplicates = Vec::new();
    let mut by_name: HashMap<&str, &Tensor> = HashMap::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        if by_name.insert(name.as_str(), tensor).is_some() {
            duplicates.push(name.clone());
        }
    }
    let mut report = LoadReport::default();
    let mut missing = Vec::new();
    let mut unexpected = Vec::new();
    let mut mismatched = Vec::new();
    let mut plan = Vec::new();

    let mut variable_names: Vec<&String> = variables.keys().collect();
    variable_names.sort();
    for name in variable_names {
        match by_name.get(name.as_str()) {
            Some(source) => {
                let target_shape = variables[name].size();
                let source_shape = source.size();
                if target_shape == source_shape {
                    plan.push((name.clone(), *source));
                } else {
                    mismatched.push(format!(
                        "{name}: checkpoint {source_shape:?} vs model {target_shape:?}"
                    ));
                }
            }
            None if any_match(&options.allow_missing, name) => report.missing.push(name.clone()),
            None => missing.push(name.clone()),
        }
    }
    let mut extra: Vec<String> = by_name
        .keys()
        .filter(|name| !variables.contains_key(**name))
        .map(|name| name.to_string())
        .collect();
    extra.sort();
    for name in extra {
        if any_match(&options.allow_unexpected, &name) {
            report.unexpected.push(name);
        } else {
            unexpected.push(name);
        }
    }

    if !(missing.is_empty()
        && unexpected.is_empty()
        && mismatched.is_empty()
        && duplicates.is_empty())
    {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!(
                "{} missing from the checkpoint: {}",
                missing.len(),
                listed(&missing)
            ));
        }
        if !unexpected.is_empty() {
            parts.push(format!(
                "{} unexpected in the checkpoint: {}",
                unexpected.len(),
                listed(&unexpected)
            ));
        }
        if !mismatched.is_empty() {
            parts.push(format!(
                "{} shape mismatches: {}",
                mismatched.len(),
                listed(&mismatched)
            ));
        }
        if !duplicates.is_empty() {
            parts.push(format!(
                "{} names appear twice in the checkpoint: {}",
                duplicates.len(),
                listed(&duplicates)
            ));
        }
        return Err(Error::WeightMismatch(parts.join("; ")));
    }

    tch::no_grad(|| -> Result<()> {
        for (name, source) in &plan {
            let target = variables
                .get_mut(name)
                .expect("planned names are variables");
            target.f_copy_(source).map_err(|e| {
                Error::WeightMismatch(format!("cannot copy checkpoint tensor {name}: {e}"))
            })?;
        }
        Ok(())
    })?;
    report.loaded = plan.into_iter().map(|(name, _)| name).collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn patterns_match_names_modules_and_wildcards() {
        assert!(name_matches("a.b", "a.b"));
        assert!(name_matches(
            "mask_decoder.mask_tokens",
            "mask_decoder.mask_tokens.weight"
        ));
        assert!(!name_matches(
            "mask_decoder.mask",
            "mask_decoder.mask_tokens.weight"
        ));
        assert!(name_matches(
            "image_encoder.blocks.*.attn.lora_*",
            "image_encoder.blocks.11.attn.lora_q_a.weight"
        ));
        assert!(!name_matches(
            "image_encoder.blocks.*.attn.lora_*",
            "image_encoder.blocks.1.attn.qkv.weight"
        ));
        assert!(name_matches("*", "anything"));
        assert!(name_matches("*.bias", "a.b.bias"));
        assert!(!name_matches("*.bias", "a.b.bias.x"));
        assert!(name_matches("a*b*c", "aXXbYYbc"));
    }
}
