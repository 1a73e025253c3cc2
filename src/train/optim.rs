//! AdamW over named tensors with exportable state, gradient clipping and the
//! learning-rate schedule.
//!
//! Our own AdamW (rather than tch's `COptimizer`) because resuming a run exactly needs
//! the moment buffers and the step count, which libtorch's C optimiser does not export.

use std::time::Instant;

use tch::{Kind, Tensor};

use super::config::{LrDecay, OptimSection};
use crate::error::{Error, Result};

/// AdamW (decoupled weight decay, Loshchilov & Hutter) as `torch.optim.AdamW`.
#[derive(Debug)]
pub struct AdamW {
    parameters: Vec<(String, Tensor)>,
    first_moments: Vec<Tensor>,
    second_moments: Vec<Tensor>,
    step: i64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

/// Name prefixes of the optimiser state in checkpoints.
const FIRST_PREFIX: &str = "adamw.exp_avg.";
const SECOND_PREFIX: &str = "adamw.exp_avg_sq.";

impl AdamW {
    /// An optimiser over `parameters` (shallow clones of the trainable variables).
    pub fn new(parameters: Vec<(String, Tensor)>, settings: &OptimSection) -> Self {
        let zeros = |p: &Tensor| tch::no_grad(|| p.zeros_like().to_kind(Kind::Float));
        AdamW {
            first_moments: parameters.iter().map(|(_, p)| zeros(p)).collect(),
            second_moments: parameters.iter().map(|(_, p)| zeros(p)).collect(),
            parameters,
            step: 0,
            beta1: settings.beta1,
            beta2: settings.beta2,
            eps: settings.eps,
            weight_decay: settings.weight_decay,
        }
    }

    /// Optimiser steps taken.
    pub fn step_count(&self) -> i64 {
        self.step
    }

    /// Clears the gradients.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.parameters {
            p.zero_grad();
        }
    }

    /// Scales the gradients so that their global L2 norm is at most `max_norm`;
    /// returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self
                .parameters
                .iter()
                .map(|(_, p)| p.grad())
                .filter(|g| g.defined())
                .collect();
            if grads.is_empty() {
                return 0.0;
            }
            let squares: Vec<Tensor> = grads
                .iter()
                .map(|g| g.to_kind(Kind::Float).square().sum(Kind::Float))
                .collect();
            let norm = Tensor::stack(&squares, 0).sum(Kind::Float).sqrt();
            let total = norm.double_value(&[]);
            if total > max_norm {
                let factor = max_norm / (total + 1e-6);
                for mut g in grads {
                    let _ = g.g_mul_scalar_(factor);
                }
            }
            total
        })
    }

    /// One AdamW step at learning rate `lr` over every parameter (a missing gradient
    /// counts as zero: moments decay and weight decay applies).
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let t = self.step as f64;
        let bias1 = 1.0 - self.beta1.powf(t);
        let bias2 = 1.0 - self.beta2.powf(t);
        tch::no_grad(|| {
            for (index, (_, parameter)) in self.parameters.iter_mut().enumerate() {
                // A parameter unused so far has no gradient tensor yet; treating it as a
                // zero gradient (as after any later zero_grad) keeps a resumed run, whose
                // parameters start without gradients, identical to an uninterrupted one.
                let grad = parameter.grad();
                let grad = if grad.defined() {
                    grad.to_kind(Kind::Float)
                } else {
                    parameter.zeros_like().to_kind(Kind::Float)
                };
                let m = &mut self.first_moments[index];
                let v = &mut self.second_moments[index];
                let _ = m.g_mul_scalar_(self.beta1);
                let _ = m.g_add_(&(&grad * (1.0 - self.beta1)));
                let _ = v.g_mul_scalar_(self.beta2);
                let _ = v.g_add_(&(grad.square() * (1.0 - self.beta2)));
                if self.weight_decay > 0.0 {
                    let _ = parameter.g_mul_scalar_(1.0 - lr * self.weight_decay);
                }
                let denominator = (&*v / bias2).sqrt() + self.eps;
                let update = (&*m / denominator) * (lr / bias1);
                let _ = parameter.g_sub_(&update.to_kind(parameter.kind()));
            }
        });
    }

    /// The moment buffers, named after their parameters, for checkpoints.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.parameters.len());
        for (index, (name, _)) in self.parameters.iter().enumerate() {
            out.push((
                format!("{FIRST_PREFIX}{name}"),
                self.first_moments[index].shallow_clone(),
            ));
            out.push((
                format!("{SECOND_PREFIX}{name}"),
                self.second_moments[index].shallow_clone(),
            ));
        }
        out
    }

    /// Restores the moment buffers and the step count written by
    /// [`AdamW::state_tensors`]; every parameter must have both buffers.
    pub fn load_state(&mut self, tensors: &[(String, Tensor)], step: i64) -> Result<()> {
        let find = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t);
        for (index, (name, parameter)) in self.parameters.iter().enumerate() {
            for (prefix, buffers) in [
                (FIRST_PREFIX, &mut self.first_moments),
                (SECOND_PREFIX, &mut self.second_moments),
            ] {
                let key = format!("{prefix}{name}");
                let saved = find(&key).ok_or_else(|| {
                    Error::WeightMismatch(format!("optimiser state {key} is missing"))
                })?;
                if saved.size() != parameter.size() {
                    return Err(Error::WeightMismatch(format!(
                        "optimiser state {key} has shape {:?}, the parameter {:?}",
                        saved.size(),
                        parameter.size()
                    )));
                }
                tch::no_grad(|| buffers[index].f_copy_(saved))?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// The learning rate at iteration `iteration` (0-based) of `total`: linear warm-up
/// `base * (it + 1) / warmup`, then the configured decay (SAMed's formulas).
pub fn learning_rate(settings: &OptimSection, iteration: u64, total: u64) -> f64 {
    let base = settings.lr;
    if iteration < settings.warmup {
        return base * (iteration + 1) as f64 / settings.warmup as f64;
    }
    let shifted = (iteration - settings.warmup) as f64;
    match settings.decay {
        LrDecay::Polynomial { power } => {
            let fraction = (1.0 - shifted / total.max(1) as f64).max(0.0);
            base * fraction.powf(power)
        }
        LrDecay::Exponential { gamma } => base * gamma.powf(shifted),
        LrDecay::Constant => base,
    }
}

/// Iterations timed after the first ones (which carry one-off start-up costs: CUDA
/// kernels, allocator growth) before a run's length is fitted to its time budget.
const BUDGET_SKIPPED_ITERATIONS: u64 = 3;
/// Iterations timed to estimate the time per iteration.
const BUDGET_TIMED_ITERATIONS: u64 = 20;

/// Fits a run's iteration count to a time budget (`run.minutes`): it times iterations
/// `BUDGET_SKIPPED_ITERATIONS..+BUDGET_TIMED_ITERATIONS` after the start, then lowers the
/// total to what the rest of the budget holds at that pace (once, so the learning-rate
/// schedule, which reads the total, decays to zero at the new end; with the usual
/// warm-up the schedule has not used the total before that), and ends the run at the
/// budget if it runs slower than estimated.
#[derive(Debug)]
pub struct IterationBudget {
    seconds: f64,
    started: Instant,
    start_iteration: u64,
    timing_from: Option<Instant>,
    fitted: bool,
}

impl IterationBudget {
    /// A budget of `minutes` for a run that starts (or resumes) at `start_iteration`;
    /// None without a budget.
    pub fn new(minutes: Option<f64>, start_iteration: u64) -> Option<Self> {
        minutes.map(|m| IterationBudget {
            seconds: m * 60.0,
            started: Instant::now(),
            start_iteration,
            timing_from: None,
            fitted: false,
        })
    }

    /// The run's total after `done` iterations (of `total`): `total` itself, or fewer
    /// once the pace is known, or `done` when the budget is spent.
    pub fn total(&mut self, done: u64, total: u64) -> u64 {
        let elapsed = self.started.elapsed().as_secs_f64();
        if elapsed >= self.seconds {
            return done.min(total);
        }
        let run = done - self.start_iteration;
        if run == BUDGET_SKIPPED_ITERATIONS {
            self.timing_from = Some(Instant::now());
        }
        if self.fitted || run < BUDGET_SKIPPED_ITERATIONS + BUDGET_TIMED_ITERATIONS {
            return total;
        }
        let Some(from) = self.timing_from else {
            return total;
        };
        self.fitted = true;
        let per_iteration = from.elapsed().as_secs_f64() / BUDGET_TIMED_ITERATIONS as f64;
        let fits = ((self.seconds - elapsed) / per_iteration.max(1e-9)).floor() as u64;
        let fitted = total.min(done + fits);
        if fitted < total {
            log::info!(
                "time budget {:.1} min: {:.3} s per iteration, so {} iterations instead of {}",
                self.seconds / 60.0,
                per_iteration,
                fitted,
                total
            );
        }
        fitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_fits_the_total_to_the_pace_and_ends_the_run_at_the_budget() {
        assert!(IterationBudget::new(None, 0).is_none());
        let started = Instant::now();
        let mut budget = IterationBudget::new(Some(0.02), 10).expect("a budget");
        let (mut done, mut total) = (10, 1_000_000);
        let mut totals = Vec::new();
        while done < total {
            std::thread::sleep(std::time::Duration::from_millis(5));
            done += 1;
            total = budget.total(done, total);
            totals.push(total);
        }
        // The total stays as configured until the pace is timed, then drops once.
        let timed = (BUDGET_SKIPPED_ITERATIONS + BUDGET_TIMED_ITERATIONS) as usize;
        assert!(totals[..timed - 1].iter().all(|&t| t == 1_000_000));
        assert!(total < 1_000_000 && done == total);
        assert!(done > 10 + timed as u64, "ran only {done}");
        // 1.2 s of budget; sleeping iterations may overrun by one iteration only.
        assert!(started.elapsed().as_secs_f64() < 2.0);
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let settings = OptimSection {
            lr: 0.005,
            warmup: 250,
            ..OptimSection::default()
        };
        assert!((learning_rate(&settings, 0, 1000) - 0.005 / 250.0).abs() < 1e-12);
        assert!((learning_rate(&settings, 249, 1000) - 0.005).abs() < 1e-12);
        let later = learning_rate(&settings, 750, 1000);
        assert!((later - 0.005 * 0.5f64.powf(0.9)).abs() < 1e-12);
        let exponential = OptimSection {
            decay: LrDecay::Exponential { gamma: 0.99 },
            ..settings
        };
        assert!((learning_rate(&exponential, 260, 1000) - 0.005 * 0.99f64.powi(10)).abs() < 1e-12);
    }

    #[test]
    fn adamw_matches_the_reference_update() {
        // torch.optim.AdamW(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1),
        // p = [1, -2], loss = sum(p^2), two steps.
        let p = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let settings = OptimSection {
            weight_decay: 0.1,
            ..OptimSection::default()
        };
        let mut optimiser = AdamW::new(vec![("p".into(), p.shallow_clone())], &settings);
        for _ in 0..2 {
            optimiser.zero_grad();
            p.square().sum(Kind::Float).backward();
            optimiser.step(0.1);
        }
        let values: Vec<f32> = Vec::try_from(&p).unwrap();
        // Values from PyTorch 2.11 for the same two steps.
        assert!((values[0] - 0.781_571_9).abs() < 1e-5, "{values:?}");
        assert!((values[1] - -1.761_408_9).abs() < 1e-5, "{values:?}");
        assert_eq!(optimiser.step_count(), 2);
    }
}
