//! The bundled default model keeps the accuracy its model card reports
//! (models/README.md) on the held-out validation subjects, through the full pipeline
//! with the default session options. Needs the real data (BRAINSAM_DATA).

mod common;

use brainsam::labels::LabelScheme;
use brainsam::metrics::evaluate;
use brainsam::session::{Model, ModelOptions, Session, SessionOptions};
use brainsam::volume::Volume;

/// (subject, image, FreeSurfer labels, lowest mean Dice accepted): the card's per-subject
/// values (0.811, 0.756) less a small margin for numeric differences between machines.
const CASES: [(&str, &str, &str, f64); 2] = [
    (
        "sub-09",
        "freesurfer_training_data/sub-09/T1.nii.gz",
        "freesurfer_training_data/sub-09/aseg.nii.gz",
        0.80,
    ),
    (
        "mne-sample",
        "mne_testing_sample/T1_3mm.nii.gz",
        "mne_testing_sample/aseg_3mm.nii.gz",
        0.745,
    ),
];

#[test]
fn bundled_model_meets_its_model_card_on_held_out_subjects() {
    let Some(data) = common::data_dir("bundled_model_meets_its_model_card_on_held_out_subjects")
    else {
        return;
    };
    let model = Model::load(&ModelOptions {
        checkpoint: Some(common::repo_root().join("models/brainsam-default.safetensors")),
        device: brainsam::session::DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .unwrap();
    for (subject, image, labels, lowest_mean) in CASES {
        let mut session = Session::new(model.clone(), SessionOptions::default()).unwrap();
        session
            .set_volume(Volume::read(data.join(image)).unwrap())
            .unwrap();
        let predicted = session.segment_all(&mut |_, _| true).unwrap().clone();
        let reference = LabelScheme::FreeSurfer
            .to_classes(&Volume::read(data.join(labels)).unwrap())
            .unwrap();
        let evaluation = evaluate(&predicted, &reference).unwrap();
        let mean = evaluation.mean_dice.unwrap();
        let worst = evaluation
            .structures
            .iter()
            .map(|s| s.dice.unwrap_or(0.0))
            .fold(1.0, f64::min);
        println!("{subject}: mean Dice {mean:.4}, worst structure {worst:.4}");
        assert!(mean >= lowest_mean, "{subject}: mean Dice {mean:.4}");
        assert!(worst >= 0.65, "{subject}: a structure at Dice {worst:.4}");
    }
}
