//! The 12 subcortical structures and the label schemes that map to them.
//!
//! Class ids: 0 background, then the paper's order: 1 L thalamus, 2 R thalamus,
//! 3 L caudate, 4 R caudate, 5 L putamen, 6 R putamen, 7 L pallidum,
//! 8 R pallidum, 9 L hippocampus, 10 R hippocampus, 11 L amygdala, 12 R amygdala.
//!
//! A [`LabelScheme`] maps the integer codes of an atlas or segmentation file to
//! these classes; codes it does not list become background.
//!
//! # User mapping files
//!
//! A plain text file, one `code,class` pair per line (code: the integer in the
//! label file; class: 1..=12 as above, or 0 to force background). Blank lines
//! and lines starting with `#` are ignored; spaces around fields are allowed.
//!
//! ```text
//! # my atlas → BrainSAM classes
//! 10, 1
//! 49, 2
//! ```

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::volume::{LabelVolume, Volume};

/// Number of classes including background.
pub const NUM_CLASSES: usize = 13;

/// The class of each class in a left-right mirrored image: background stays, every left
/// structure (odd id) trades places with its right twin (the next even id).
pub const MIRRORED_CLASSES: [i64; NUM_CLASSES] = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11];

/// The class a model that cannot tell left from right (sagittal slices) learns for each
/// class: every right structure (even id) becomes its left twin (the id before it).
pub const HEMISPHERE_MERGED_CLASSES: [i64; NUM_CLASSES] = [0, 1, 1, 3, 3, 5, 5, 7, 7, 9, 9, 11, 11];

/// One of the 12 target structures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Structure {
    /// Class id (1..=12).
    pub class: u8,
    /// Short name, e.g. `"L-Thal"`.
    pub short_name: &'static str,
    /// Long name, e.g. `"Left thalamus"`.
    pub long_name: &'static str,
    /// FreeSurfer aseg code (FreeSurferColorLUT).
    pub freesurfer_code: i32,
    /// Display colour (RGB) from FreeSurferColorLUT.txt.
    pub colour: [u8; 3],
}

impl Structure {
    /// The FreeSurferColorLUT name, e.g. `"Left-Thalamus"` (segment names in 3D Slicer).
    pub fn freesurfer_name(&self) -> String {
        self.long_name
            .split(' ')
            .map(|word| {
                let mut letters = word.chars();
                letters.next().map_or_else(String::new, |first| {
                    first.to_uppercase().chain(letters).collect()
                })
            })
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// The 12 structures, indexed by `class - 1`.
pub const STRUCTURES: [Structure; 12] = [
    Structure {
        class: 1,
        short_name: "L-Thal",
        long_name: "Left thalamus",
        freesurfer_code: 10,
        colour: [0, 118, 14],
    },
    Structure {
        class: 2,
        short_name: "R-Thal",
        long_name: "Right thalamus",
        freesurfer_code: 49,
        colour: [0, 118, 14],
    },
    Structure {
        class: 3,
        short_name: "L-Caud",
        long_name: "Left caudate",
        freesurfer_code: 11,
        colour: [122, 186, 220],
    },
    Structure {
        class: 4,
        short_name: "R-Caud",
        long_name: "Right caudate",
        freesurfer_code: 50,
        colour: [122, 186, 220],
    },
    Structure {
        class: 5,
        short_name: "L-Put",
        long_name: "Left putamen",
        freesurfer_code: 12,
        colour: [236, 13, 176],
    },
    Structure {
        class: 6,
        short_name: "R-Put",
        long_name: "Right putamen",
        freesurfer_code: 51,
        colour: [236, 13, 176],
    },
    Structure {
        class: 7,
        short_name: "L-Pal",
        long_name: "Left pallidum",
        freesurfer_code: 13,
        colour: [12, 48, 255],
    },
    Structure {
        class: 8,
        short_name: "R-Pal",
        long_name: "Right pallidum",
        freesurfer_code: 52,
        colour: [13, 48, 255],
    },
    Structure {
        class: 9,
        short_name: "L-Hip",
        long_name: "Left hippocampus",
        freesurfer_code: 17,
        colour: [220, 216, 20],
    },
    Structure {
        class: 10,
        short_name: "R-Hip",
        long_name: "Right hippocampus",
        freesurfer_code: 53,
        colour: [220, 216, 20],
    },
    Structure {
        class: 11,
        short_name: "L-Amy",
        long_name: "Left amygdala",
        freesurfer_code: 18,
        colour: [103, 255, 255],
    },
    Structure {
        class: 12,
        short_name: "R-Amy",
        long_name: "Right amygdala",
        freesurfer_code: 54,
        colour: [103, 255, 255],
    },
];

/// The structure of a class id (1..=12), `None` for background or out of range.
pub fn structure(class: u8) -> Option<&'static Structure> {
    STRUCTURES.get(usize::from(class).checked_sub(1)?)
}

/// Codes of each built-in scheme in class order 1..=12.
const FREESURFER: [i32; 12] = [10, 49, 11, 50, 12, 51, 13, 52, 17, 53, 18, 54];
const AAL: [i32; 12] = [77, 78, 71, 72, 73, 74, 75, 76, 37, 38, 41, 42];
const HARVARD_OXFORD: [i32; 12] = [4, 15, 5, 16, 6, 17, 7, 18, 9, 19, 10, 20];
const NEUROMORPHOMETRICS: [i32; 12] = [60, 59, 37, 36, 58, 57, 56, 55, 48, 47, 32, 31];

/// How the integer codes of a label file map to the 12 classes.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelScheme {
    /// FreeSurfer aseg / aparc+aseg / SynthSeg (FreeSurferColorLUT codes).
    FreeSurfer,
    /// AAL atlas as shipped with MRIcron (index 1..116).
    Aal,
    /// FSL Harvard-Oxford subcortical maxprob (value = index + 1).
    HarvardOxford,
    /// Neuromorphometrics (MICCAI 2012) atlas codes.
    Neuromorphometrics,
    /// Our class ids already (0..=12).
    Classes,
    /// A user mapping `code → class`.
    Custom(HashMap<i32, u8>),
}

impl LabelScheme {
    /// Parses a scheme name: `freesurfer`/`aseg`, `aal`, `harvard-oxford`/`ho`,
    /// `neuromorphometrics`/`nmm`, `classes`/`brainsam` (case-insensitive).
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "freesurfer" | "aseg" | "synthseg" => LabelScheme::FreeSurfer,
            "aal" => LabelScheme::Aal,
            "harvard-oxford" | "harvardoxford" | "ho" => LabelScheme::HarvardOxford,
            "neuromorphometrics" | "nmm" => LabelScheme::Neuromorphometrics,
            "classes" | "brainsam" => LabelScheme::Classes,
            other => {
                return Err(Error::invalid_argument(format!(
                    "unknown label scheme {other:?} (known: freesurfer, aal, harvard-oxford, \
                     neuromorphometrics, classes)"
                )))
            }
        })
    }

    /// A scheme name (see [`LabelScheme::from_name`]) or else the path of a mapping file
    /// (see [`LabelScheme::from_mapping_file`]): how every interface reads a user's
    /// `--ref-labels` / `label_scheme` text. A known name wins over a file of that name.
    pub fn from_name_or_file(text: &str) -> Result<Self> {
        match Self::from_name(text) {
            Ok(scheme) => Ok(scheme),
            Err(_) if Path::new(text).is_file() => Self::from_mapping_file(text),
            Err(error) => Err(error),
        }
    }

    /// Reads a user mapping file (format in the module documentation).
    pub fn from_mapping_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse_mapping(&text).map_err(|reason| Error::invalid_file(path, reason))
    }

    /// Parses the text of a user mapping file.
    pub fn parse_mapping(text: &str) -> std::result::Result<Self, String> {
        let mut map = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let parsed = match fields.as_slice() {
                [code, class] => code.parse::<i32>().ok().zip(class.parse::<u8>().ok()),
                _ => None,
            };
            let (code, class) = parsed.ok_or_else(|| {
                format!(
                    "line {}: {line:?} is not `code,class` with two integers",
                    number + 1
                )
            })?;
            if usize::from(class) >= NUM_CLASSES {
                return Err(format!(
                    "line {}: class {class} is not in 0..=12",
                    number + 1
                ));
            }
            if map.insert(code, class).is_some() {
                return Err(format!("line {}: code {code} is mapped twice", number + 1));
            }
        }
        if map.values().all(|&c| c == 0) {
            return Err("the mapping assigns no code to any of the 12 structures".to_string());
        }
        Ok(LabelScheme::Custom(map))
    }

    /// Class id (0..=12) of a label code.
    pub fn class_of(&self, code: i32) -> u8 {
        let table = match self {
            LabelScheme::FreeSurfer => &FREESURFER,
            LabelScheme::Aal => &AAL,
            LabelScheme::HarvardOxford => &HARVARD_OXFORD,
            LabelScheme::Neuromorphometrics => &NEUROMORPHOMETRICS,
            LabelScheme::Classes => {
                return if (0..13).contains(&code) {
                    code as u8
                } else {
                    0
                }
            }
            LabelScheme::Custom(map) => return map.get(&code).copied().unwrap_or(0),
        };
        table
            .iter()
            .position(|&c| c == code)
            .map_or(0, |index| index as u8 + 1)
    }

    /// Converts a label file read as a [`Volume`] to class ids on the same grid.
    /// Errors if a voxel value is not an integer (a label file must hold codes).
    pub fn to_classes(&self, labels: &Volume) -> Result<LabelVolume> {
        let mut lookup = [0u8; 4096];
        for (code, class) in lookup.iter_mut().enumerate() {
            *class = self.class_of(code as i32);
        }
        let mut classes = Vec::with_capacity(labels.data().len());
        for (index, &value) in labels.data().iter().enumerate() {
            if value.fract() != 0.0 || value.abs() > 1e9 {
                return Err(Error::invalid_argument(format!(
                    "label value {value} at linear voxel {index} is not an integer code: is this a label file?"
                )));
            }
            let code = value as i64;
            classes.push(if (0..4096).contains(&code) {
                lookup[code as usize]
            } else {
                self.class_of(code as i32)
            });
        }
        LabelVolume::new(labels.grid().clone(), classes)
    }
}
