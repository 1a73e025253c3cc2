//! 3D clean-up of a label volume: keep the largest connected component of each
//! structure and fill the holes inside it.
//!
//! Each of the 12 structures is one connected, hole-free body, so islands
//! (typically the contralateral structure mislabelled on a few slices, or noise
//! in the white matter) and holes are errors of the slice-wise model. Both steps
//! work on the structure's bounding box (grown by one voxel), so their cost is
//! proportional to the structures' size, not to the whole volume.

use std::collections::VecDeque;

/// Which clean-up steps to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupOptions {
    /// Keep only the largest 6-connected component of each structure; the other
    /// components become background.
    pub largest_component: bool,
    /// Label background cavities fully enclosed by a structure (6-connectivity of the
    /// background, so diagonal gaps do not leak) with that structure.
    pub fill_holes: bool,
}

impl Default for CleanupOptions {
    fn default() -> Self {
        CleanupOptions {
            largest_component: true,
            fill_holes: true,
        }
    }
}

impl CleanupOptions {
    /// No clean-up at all.
    pub fn none() -> Self {
        CleanupOptions {
            largest_component: false,
            fill_holes: false,
        }
    }
}

/// Voxel counts changed by [`clean_labels`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Voxels removed as small components.
    pub removed_voxels: usize,
    /// Background voxels filled as holes.
    pub filled_voxels: usize,
}

/// Cleans `labels` in place (flat, `dims[0]` fastest) for every class `1..=max_class`.
pub fn clean_labels(
    labels: &mut [u8],
    dims: [usize; 3],
    max_class: u8,
    options: CleanupOptions,
) -> CleanupReport {
    assert_eq!(
        labels.len(),
        dims[0] * dims[1] * dims[2],
        "labels match dims"
    );
    let mut report = CleanupReport::default();
    let all_bounds = bounding_boxes(labels, dims, max_class);
    for (class, bounds) in (1..=max_class).zip(all_bounds.into_iter().skip(1)) {
        let Some(bounds) = bounds else { continue };
        let mut region = Region::new(bounds, dims);
        if options.largest_component {
            report.removed_voxels += region.keep_largest_component(labels, class);
        }
        if options.fill_holes {
            report.filled_voxels += region.fill_holes(labels, class);
        }
    }
    report
}

/// Inclusive voxel bounds `[min, max]` per axis of every class `0..=max_class` (one pass),
/// None for absent classes.
fn bounding_boxes(labels: &[u8], dims: [usize; 3], max_class: u8) -> Vec<Option<[[usize; 2]; 3]>> {
    let mut bounds: Vec<Option<[[usize; 2]; 3]>> = vec![None; max_class as usize + 1];
    let mut index = 0;
    for z in 0..dims[2] {
        for y in 0..dims[1] {
            for x in 0..dims[0] {
                let label = labels[index] as usize;
                index += 1;
                if label == 0 || label > max_class as usize {
                    continue;
                }
                let voxel = [x, y, z];
                let entry = bounds[label].get_or_insert([[x, x], [y, y], [z, z]]);
                for axis in 0..3 {
                    entry[axis][0] = entry[axis][0].min(voxel[axis]);
                    entry[axis][1] = entry[axis][1].max(voxel[axis]);
                }
            }
        }
    }
    bounds
}

/// A box of the volume (the class's bounding box grown by one voxel, clipped).
#[derive(Debug, Clone, Copy)]
struct BoxGeometry {
    start: [usize; 3],
    size: [usize; 3],
    dims: [usize; 3],
}

impl BoxGeometry {
    fn len(&self) -> usize {
        self.size[0] * self.size[1] * self.size[2]
    }

    /// Index in the volume of box voxel `local`.
    fn global(&self, local: usize) -> usize {
        let x = local % self.size[0] + self.start[0];
        let y = (local / self.size[0]) % self.size[1] + self.start[1];
        let z = local / (self.size[0] * self.size[1]) + self.start[2];
        x + self.dims[0] * (y + self.dims[1] * z)
    }

    /// The 6-neighbours of box voxel `local` inside the box.
    fn neighbours(&self, local: usize) -> impl Iterator<Item = usize> {
        let [sx, sy, sz] = self.size;
        let (x, y, z) = (local % sx, (local / sx) % sy, local / (sx * sy));
        let plane = sx * sy;
        [
            (x > 0).then(|| local - 1),
            (x + 1 < sx).then(|| local + 1),
            (y > 0).then(|| local - sx),
            (y + 1 < sy).then(|| local + sx),
            (z > 0).then(|| local - plane),
            (z + 1 < sz).then(|| local + plane),
        ]
        .into_iter()
        .flatten()
    }

    fn on_border(&self, local: usize) -> bool {
        let [sx, sy, sz] = self.size;
        let (x, y, z) = (local % sx, (local / sx) % sy, local / (sx * sy));
        x == 0 || y == 0 || z == 0 || x + 1 == sx || y + 1 == sy || z + 1 == sz
    }
}

/// Flood fills over one class's box; `visited[local]` marks voxels already assigned
/// to a component.
struct Region {
    geometry: BoxGeometry,
    visited: Vec<bool>,
    queue: VecDeque<usize>,
}

impl Region {
    fn new(bounds: [[usize; 2]; 3], dims: [usize; 3]) -> Self {
        let mut start = [0; 3];
        let mut size = [0; 3];
        for axis in 0..3 {
            start[axis] = bounds[axis][0].saturating_sub(1);
            let end = (bounds[axis][1] + 1).min(dims[axis] - 1);
            size[axis] = end - start[axis] + 1;
        }
        let geometry = BoxGeometry { start, size, dims };
        Region {
            geometry,
            visited: vec![false; geometry.len()],
            queue: VecDeque::new(),
        }
    }

    /// Flood-fills from `seed` over box voxels where `inside` holds; appends them to
    /// `component` and returns whether the component touches the box border.
    fn flood(
        &mut self,
        seed: usize,
        inside: impl Fn(usize) -> bool,
        component: &mut Vec<usize>,
    ) -> bool {
        let geometry = self.geometry;
        self.visited[seed] = true;
        self.queue.push_back(seed);
        let mut touches_border = false;
        while let Some(local) = self.queue.pop_front() {
            component.push(local);
            touches_border |= geometry.on_border(local);
            for n in geometry.neighbours(local) {
                if !self.visited[n] && inside(n) {
                    self.visited[n] = true;
                    self.queue.push_back(n);
                }
            }
        }
        touches_border
    }

    fn keep_largest_component(&mut self, labels: &mut [u8], class: u8) -> usize {
        let geometry = self.geometry;
        self.visited.fill(false);
        let mut components: Vec<Vec<usize>> = Vec::new();
        for local in 0..geometry.len() {
            if !self.visited[local] && labels[geometry.global(local)] == class {
                let mut component = Vec::new();
                self.flood(
                    local,
                    |n| labels[geometry.global(n)] == class,
                    &mut component,
                );
                components.push(component);
            }
        }
        let largest = (0..components.len()).max_by_key(|&c| components[c].len());
        let mut removed = 0;
        for (index, component) in components.iter().enumerate() {
            if Some(index) != largest {
                for &local in component {
                    labels[geometry.global(local)] = 0;
                }
                removed += component.len();
            }
        }
        removed
    }

    fn fill_holes(&mut self, labels: &mut [u8], class: u8) -> usize {
        let geometry = self.geometry;
        self.visited.fill(false);
        let mut filled = 0;
        let mut component = Vec::new();
        for local in 0..geometry.len() {
            if self.visited[local] || labels[geometry.global(local)] == class {
                continue;
            }
            component.clear();
            let touches_border = self.flood(
                local,
                |n| labels[geometry.global(n)] != class,
                &mut component,
            );
            if !touches_border {
                // An enclosed cavity: it belongs to the structure.
                for &l in &component {
                    labels[geometry.global(l)] = class;
                }
                filled += component.len();
            }
        }
        filled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube(labels: &mut [u8], dims: [usize; 3], from: [usize; 3], to: [usize; 3], class: u8) {
        for z in from[2]..to[2] {
            for y in from[1]..to[1] {
                for x in from[0]..to[0] {
                    labels[x + dims[0] * (y + dims[1] * z)] = class;
                }
            }
        }
    }

    #[test]
    fn removes_islands_and_fills_enclosed_holes_only() {
        let dims = [20, 16, 12];
        let mut labels = vec![0u8; 20 * 16 * 12];
        cube(&mut labels, dims, [2, 2, 2], [10, 10, 10], 3); // main body, 512 voxels
        cube(&mut labels, dims, [4, 4, 4], [6, 6, 6], 0); // enclosed hole, 8 voxels
        cube(&mut labels, dims, [15, 12, 2], [17, 14, 4], 3); // island, 8 voxels
        cube(&mut labels, dims, [2, 2, 9], [4, 4, 10], 0); // notch open to outside, 4 voxels
        cube(&mut labels, dims, [12, 2, 2], [14, 4, 4], 5); // another class, untouched
        let before_other: usize = labels.iter().filter(|&&l| l == 5).count();
        let report = clean_labels(&mut labels, dims, 12, CleanupOptions::default());
        assert_eq!(report.removed_voxels, 8);
        assert_eq!(report.filled_voxels, 8);
        assert_eq!(labels.iter().filter(|&&l| l == 3).count(), 512 - 4);
        assert_eq!(labels.iter().filter(|&&l| l == 5).count(), before_other);
        assert_eq!(
            labels[16 + dims[0] * (13 + dims[1] * 3)],
            0,
            "island removed"
        );
        assert_eq!(labels[4 + dims[0] * (4 + dims[1] * 4)], 3, "hole filled");
        assert_eq!(
            labels[2 + dims[0] * (2 + dims[1] * 9)],
            0,
            "open notch kept"
        );
    }

    #[test]
    fn options_switch_steps_off_and_structures_at_the_volume_edge_work() {
        let dims = [6, 6, 6];
        let mut labels = vec![0u8; 216];
        cube(&mut labels, dims, [0, 0, 0], [3, 3, 3], 1); // touches the volume corner
        cube(&mut labels, dims, [5, 5, 5], [6, 6, 6], 1);
        let original = labels.clone();
        let report = clean_labels(&mut labels, dims, 12, CleanupOptions::none());
        assert_eq!(report, CleanupReport::default());
        assert_eq!(labels, original);
        let report = clean_labels(&mut labels, dims, 12, CleanupOptions::default());
        assert_eq!(report.removed_voxels, 1);
        assert_eq!(labels.iter().filter(|&&l| l == 1).count(), 27);
    }
}
