//! Input quality control: flags results that are implausible for a T1 brain, so that
//! garbage in (a phantom, a non-brain image, a wrongly scaled header) does not come out
//! as confident-looking numbers.
//!
//! A structure is flagged when its volume lies outside the plausible range or the
//! model's mean confidence in it is low. The volume ranges come from the shared data's
//! 29 label maps (the 9 FreeSurfer `aseg` subjects and the 20 SynthSeg training label
//! maps): the smallest volume seen (left or right) halved and the largest doubled, which
//! leaves room for atrophy, children and segmentation differences.

use super::StructureStats;

/// The structure's volume is below its plausible range (absent included).
pub const QC_VOLUME_LOW: u32 = 1;
/// The structure's volume is above its plausible range.
pub const QC_VOLUME_HIGH: u32 = 2;
/// The model's mean confidence in the structure is below [`MIN_CONFIDENCE`].
pub const QC_LOW_CONFIDENCE: u32 = 4;

/// Mean confidence below which a structure is flagged. The bundled model scores 0.87 to
/// 0.92 on every structure of the shared data's sub-01 T1; the 86³ phantom of issue 21
/// scored 0.08.
pub const MIN_CONFIDENCE: f64 = 0.4;

/// Plausible volume range in mm³ of structures 1..=12 (index = class - 1), from the
/// shared data's label maps: observed minimum / 2 to observed maximum x 2, per pair.
pub const PLAUSIBLE_VOLUME_MM3: [(f64, f64); 12] = [
    (2750.0, 21050.0), // thalamus: observed 5503..10526
    (2750.0, 21050.0),
    (1200.0, 9550.0), // caudate: observed 2412..4776
    (1200.0, 9550.0),
    (1630.0, 14650.0), // putamen: observed 3277..7327
    (1630.0, 14650.0),
    (410.0, 5640.0), // pallidum: observed 826..2821
    (410.0, 5640.0),
    (715.0, 10530.0), // hippocampus: observed 1438..5267
    (715.0, 10530.0),
    (265.0, 4700.0), // amygdala: observed 533..2351
    (265.0, 4700.0),
];

/// The QC flags (`QC_*` bits, 0 when plausible) of structure `class` (1..=12).
pub fn structure_flags(class: u8, stats: &StructureStats) -> u32 {
    let Some(&(low, high)) = PLAUSIBLE_VOLUME_MM3.get(usize::from(class).wrapping_sub(1)) else {
        return 0;
    };
    let mut flags = 0;
    if stats.volume_mm3 < low {
        flags |= QC_VOLUME_LOW;
    }
    if stats.volume_mm3 > high {
        flags |= QC_VOLUME_HIGH;
    }
    if stats.voxels > 0 && stats.confidence < MIN_CONFIDENCE {
        flags |= QC_LOW_CONFIDENCE;
    }
    flags
}

/// A short text for flags: "ok", or what is wrong ("volume high, low confidence").
pub fn describe_flags(flags: u32) -> String {
    let mut parts = Vec::new();
    if flags & QC_VOLUME_LOW != 0 {
        parts.push("volume low");
    }
    if flags & QC_VOLUME_HIGH != 0 {
        parts.push("volume high");
    }
    if flags & QC_LOW_CONFIDENCE != 0 {
        parts.push("low confidence");
    }
    if parts.is_empty() {
        "ok".into()
    } else {
        parts.join(", ")
    }
}

/// The QC of a whole segmentation.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityReport {
    /// Flags of each structure 1..=12 (index = class - 1).
    pub flags: [u32; 12],
}

impl QualityReport {
    /// The report for the statistics of structures 1..=12.
    pub fn from_stats(stats: &[(u8, StructureStats)]) -> Self {
        let mut flags = [0; 12];
        for (class, stat) in stats {
            if let Some(slot) = flags.get_mut(usize::from(*class).wrapping_sub(1)) {
                *slot = structure_flags(*class, stat);
            }
        }
        QualityReport { flags }
    }

    /// Whether every structure is plausible.
    pub fn passed(&self) -> bool {
        self.flags.iter().all(|&f| f == 0)
    }

    /// The union of all structures' flags.
    pub fn any_flags(&self) -> u32 {
        self.flags.iter().fold(0, |all, &f| all | f)
    }

    /// A one-line warning naming the flagged structures, or None when all passed.
    pub fn warning(&self) -> Option<String> {
        let flagged: Vec<String> = self
            .flags
            .iter()
            .enumerate()
            .filter(|(_, &f)| f != 0)
            .map(|(index, &f)| format!("{} ({})", index + 1, describe_flags(f)))
            .collect();
        (!flagged.is_empty()).then(|| {
            format!(
                "input QC: {} of 12 structures are implausible for a T1 brain: {}; is the input \
                 a T1-weighted brain MRI with a correct header?",
                flagged.len(),
                flagged.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(volume_mm3: f64, confidence: f64) -> StructureStats {
        StructureStats {
            voxels: (volume_mm3 / 1.0) as usize,
            volume_mm3,
            confidence,
        }
    }

    #[test]
    fn the_phantom_of_issue_21_is_flagged_and_a_typical_brain_is_not() {
        // 38,853 mm³ of right amygdala at confidence 0.08.
        assert_eq!(
            structure_flags(12, &stats(38853.0, 0.08)),
            QC_VOLUME_HIGH | QC_LOW_CONFIDENCE
        );
        assert_eq!(structure_flags(1, &stats(0.0, 0.0)), QC_VOLUME_LOW);
        let typical = [
            7500.0, 7300.0, 3500.0, 3600.0, 5000.0, 5100.0, 1700.0, 1700.0, 4000.0, 4100.0, 1500.0,
            1600.0,
        ];
        let all: Vec<(u8, StructureStats)> = typical
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u8 + 1, stats(v, 0.85)))
            .collect();
        let report = QualityReport::from_stats(&all);
        assert!(report.passed() && report.warning().is_none());
        let mut bad = all.clone();
        bad[11].1 = stats(38853.0, 0.08);
        let report = QualityReport::from_stats(&bad);
        assert!(!report.passed());
        let warning = report.warning().unwrap();
        assert!(
            warning.contains("12 (volume high, low confidence)"),
            "{warning}"
        );
        assert_eq!(describe_flags(0), "ok");
    }
}
