//! Interactive prompt latency: a point prompt on the middle slice of the region of
//! interest, then the structure re-segmented on that slice again and again with the
//! slice's embedding cached (what a click in an editor costs).

use std::sync::Arc;
use std::time::Instant;

use brainsam::session::{Model, Session, SessionOptions};
use brainsam::volume::Volume;

/// Median milliseconds of point prompt → updated label volume over `iterations` runs.
pub fn median_prompt_latency_ms(model: &Arc<Model>, volume: &Volume, iterations: usize) -> f64 {
    let mut session = Session::new(Arc::clone(model), SessionOptions::default()).unwrap();
    session.set_volume(volume.clone()).unwrap();
    let geometry = session.geometry().unwrap().clone();
    let plane = geometry.slice_voxel_indices()[geometry.n_slices() / 2];
    let mut point = volume.grid().dims().map(|d| d as f64 / 2.0);
    point[geometry.frame().coronal_axis] = plane as f64;
    session.add_point(5, point, true).unwrap();
    session.segment_structure(5, plane).unwrap(); // encodes the slice (cached after)
    let mut latencies: Vec<f64> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            session.segment_structure(5, plane).unwrap();
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    latencies[latencies.len() / 2]
}
