//! Prompt sampling from the ground truth (points inside/outside a structure, jittered
//! boxes) and decoding a batch whose samples carry different prompts.
//!
//! Sampled prompts are the session's [`SlicePrompts`] (one prompt type, one tensor
//! builder, [`SlicePrompts::batch`]), in the session's convention: model-input pixels,
//! the centre of pixel `(x, y)` at `(x + 0.5, y + 0.5)`; a box spans the centres of the
//! structure's extreme pixels.

use rand::seq::SliceRandom;
use rand::Rng;
use tch::{Kind, Tensor};

use super::config::PromptSection;
use super::dataset::present_structures;
use crate::error::Result;
use crate::model::Sam;
use crate::session::{four_neighbours, PointPrompt, SlicePrompts};

/// Bounding box (x0, y0, x1, y1) of class `class` on a `side × side` class map, in
/// pixel-centre coordinates; None if absent.
pub fn structure_box(classes: &[u8], side: usize, class: u8) -> Option<[f32; 4]> {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (index, &c) in classes.iter().enumerate() {
        if c == class {
            let (x, y) = (index % side, index / side);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    (x0 != usize::MAX).then_some({
        [
            x0 as f32 + 0.5,
            y0 as f32 + 0.5,
            x1 as f32 + 0.5,
            y1 as f32 + 0.5,
        ]
    })
}

/// Samples prompts for one structure present in a sample's class map (`side × side`,
/// flattened), or None (no prompt: with probability `1 - probability`, or no structure
/// present). A sampled prompt has a box, points, or both.
pub fn sample_prompt(
    classes: &[u8],
    side: usize,
    settings: &PromptSection,
    rng: &mut impl Rng,
) -> Option<SlicePrompts> {
    if !rng.gen_bool(settings.probability) {
        return None;
    }
    let present = present_structures(classes);
    let &structure = present.choose(rng)?;
    let tight = structure_box(classes, side, structure)?;
    let with_box = rng.gen_bool(settings.box_probability);
    let with_points = !with_box || rng.gen_bool(settings.box_with_points_probability);
    let mut bounding_box = None;
    if with_box {
        let (w, h) = (tight[2] - tight[0] + 1.0, tight[3] - tight[1] + 1.0);
        let mut jitter = |extent: f32| {
            let amplitude = settings.box_jitter as f32 * extent + 2.0;
            rng.gen_range(-amplitude..=amplitude)
        };
        let limit = side as f32;
        let b = [
            (tight[0] + jitter(w)).clamp(0.0, limit),
            (tight[1] + jitter(h)).clamp(0.0, limit),
            (tight[2] + jitter(w)).clamp(0.0, limit),
            (tight[3] + jitter(h)).clamp(0.0, limit),
        ];
        // Sampled in f32 (as the runs so far): f64 holds every f32 exactly.
        bounding_box = Some(
            [
                b[0].min(b[2]),
                b[1].min(b[3]),
                b[0].max(b[2]),
                b[1].max(b[3]),
            ]
            .map(f64::from),
        );
    }
    let mut points = Vec::new();
    if with_points {
        let inside: Vec<usize> = (0..classes.len())
            .filter(|&i| classes[i] == structure)
            .collect();
        // Negatives near the structure are the informative ones: sample outside the
        // mask within the box grown by half its size, else anywhere outside.
        let (w, h) = (tight[2] - tight[0], tight[3] - tight[1]);
        let near = |i: usize| {
            let (x, y) = ((i % side) as f32 + 0.5, (i / side) as f32 + 0.5);
            x >= tight[0] - w / 2.0 - 3.0
                && x <= tight[2] + w / 2.0 + 3.0
                && y >= tight[1] - h / 2.0 - 3.0
                && y <= tight[3] + h / 2.0 + 3.0
        };
        let mut outside: Vec<usize> = (0..classes.len())
            .filter(|&i| classes[i] != structure && near(i))
            .collect();
        if outside.is_empty() {
            outside = (0..classes.len())
                .filter(|&i| classes[i] != structure)
                .collect();
        }
        let positives = rng.gen_range(1..=settings.max_positive.max(1));
        let negatives = if outside.is_empty() {
            0
        } else {
            rng.gen_range(0..=settings.max_negative)
        };
        let point = |i: usize, positive: bool| PointPrompt {
            x: (i % side) as f64 + 0.5,
            y: (i / side) as f64 + 0.5,
            positive,
        };
        for _ in 0..positives {
            points.push(point(*inside.choose(rng)?, true));
        }
        for _ in 0..negatives {
            points.push(point(*outside.choose(rng)?, false));
        }
    }
    Some(SlicePrompts {
        points,
        bounding_box,
    })
}

/// Decodes image embeddings `[B, C, h, w]` with per-sample prompts (empty
/// [`SlicePrompts`]: no prompt): samples with the same kind of prompt are decoded
/// together (points padded with label -1). Returns low-res logits `[B, classes, m, m]`
/// in sample order.
pub fn decode_with_prompts(
    sam: &Sam,
    embeddings: &Tensor,
    prompts: &[SlicePrompts],
) -> Result<Tensor> {
    let device = embeddings.device();
    // Groups: 0 none, 1 points only, 2 box only, 3 box + points.
    let kind_of = |p: &SlicePrompts| {
        usize::from(!p.points.is_empty()) + 2 * usize::from(p.bounding_box.is_some())
    };
    let mut outputs: Vec<(Vec<i64>, Tensor)> = Vec::new();
    for group in 0..4 {
        let members: Vec<usize> = (0..prompts.len())
            .filter(|&i| kind_of(&prompts[i]) == group)
            .collect();
        if members.is_empty() {
            continue;
        }
        let index: Vec<i64> = members.iter().map(|&i| i as i64).collect();
        let selected = embeddings.index_select(0, &Tensor::from_slice(&index).to_device(device));
        let group_prompts: Vec<&SlicePrompts> = members.iter().map(|&i| &prompts[i]).collect();
        let model_prompts = SlicePrompts::batch(&group_prompts, device);
        let output = sam.decode(&selected, &model_prompts)?;
        outputs.push((index, output.low_res_logits));
    }
    if outputs.len() == 1 {
        return Ok(outputs.pop().expect("one group").1);
    }
    let order: Vec<i64> = outputs.iter().flat_map(|(i, _)| i.clone()).collect();
    let logits = Tensor::cat(&outputs.iter().map(|(_, l)| l).collect::<Vec<_>>(), 0);
    // Row r of `logits` belongs to sample order[r]; invert the permutation.
    let inverse = Tensor::from_slice(&order)
        .argsort(0, false)
        .to_device(device);
    Ok(logits.index_select(0, &inverse.to_kind(Kind::Int64)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn prompts_come_from_the_structure() {
        let side = 16;
        let mut classes = vec![0u8; side * side];
        for y in 4..8 {
            for x in 6..10 {
                classes[y * side + x] = 3;
            }
        }
        let settings = PromptSection {
            probability: 1.0,
            box_probability: 0.5,
            ..PromptSection::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (mut boxes, mut pointed) = (0, 0);
        for _ in 0..50 {
            let prompt = sample_prompt(&classes, side, &settings, &mut rng).expect("prompted");
            assert!(!prompt.points.is_empty() || prompt.bounding_box.is_some());
            for &PointPrompt { x, y, positive } in &prompt.points {
                let class = classes[y as usize * side + x as usize];
                assert_eq!(class == 3, positive, "point ({x}, {y}) positive={positive}");
            }
            if let Some(b) = prompt.bounding_box {
                boxes += 1;
                assert!(b[0] <= 6.5 + 2.5 && b[2] >= 9.5 - 2.5, "{b:?}");
            }
            pointed += usize::from(!prompt.points.is_empty());
        }
        assert!(boxes > 10 && pointed > 10);
        assert_eq!(structure_box(&classes, side, 3), Some([6.5, 4.5, 9.5, 7.5]));
        let empty = vec![0u8; side * side];
        assert!(sample_prompt(&empty, side, &settings, &mut rng).is_none());
    }
}

/// The simulated user's next click (as in the interactive-segmentation literature, e.g.
/// RITM and NoC benchmarks): on `predicted` against `reference` (row-major binary maps
/// `height × width`), the pixel of the largest 4-connected error region that lies
/// farthest (city-block distance) from the region's border; `positive` when it is
/// missed tissue, negative when it is false tissue. Returns `(x, y, positive)`, or None
/// when the maps agree.
pub fn largest_error_click(
    predicted: &[bool],
    reference: &[bool],
    width: usize,
    height: usize,
) -> Option<(usize, usize, bool)> {
    let n = width * height;
    if predicted.len() != n || reference.len() != n {
        return None;
    }
    let error: Vec<bool> = (0..n).map(|i| predicted[i] != reference[i]).collect();
    let neighbours = |i: usize| four_neighbours(i, width, height);
    // Largest component of same-kind errors.
    let mut component = vec![usize::MAX; n];
    let mut best: Option<(usize, usize)> = None; // (size, id)
    let mut stack = Vec::new();
    let mut id = 0;
    for start in 0..n {
        if !error[start] || component[start] != usize::MAX {
            continue;
        }
        let kind = reference[start];
        component[start] = id;
        stack.push(start);
        let mut size = 0;
        while let Some(i) = stack.pop() {
            size += 1;
            for j in neighbours(i) {
                if error[j] && reference[j] == kind && component[j] == usize::MAX {
                    component[j] = id;
                    stack.push(j);
                }
            }
        }
        if best.is_none_or(|(s, _)| size > s) {
            best = Some((size, id));
        }
        id += 1;
    }
    let (_, chosen) = best?;
    // Distance to the region's border: breadth-first from its border pixels.
    let mut distance = vec![usize::MAX; n];
    let mut queue = std::collections::VecDeque::new();
    for i in (0..n).filter(|&i| component[i] == chosen) {
        let inner = neighbours(i).filter(|&j| component[j] == chosen).count();
        if inner < 4 {
            distance[i] = 0;
            queue.push_back(i);
        }
    }
    queue.front()?;
    let mut deepest = 0;
    while let Some(i) = queue.pop_front() {
        deepest = deepest.max(distance[i]);
        for j in neighbours(i) {
            if component[j] == chosen && distance[j] == usize::MAX {
                distance[j] = distance[i] + 1;
                queue.push_back(j);
            }
        }
    }
    // Among the deepest pixels, the one nearest the region's centroid.
    let members: Vec<usize> = (0..n).filter(|&i| component[i] == chosen).collect();
    let count = members.len() as f64;
    let cx = members.iter().map(|&i| (i % width) as f64).sum::<f64>() / count;
    let cy = members.iter().map(|&i| (i / width) as f64).sum::<f64>() / count;
    let farthest = members
        .iter()
        .copied()
        .filter(|&i| distance[i] == deepest)
        .min_by(|&a, &b| {
            let d =
                |i: usize| ((i % width) as f64 - cx).powi(2) + ((i / width) as f64 - cy).powi(2);
            d(a).total_cmp(&d(b))
        })?;
    Some((farthest % width, farthest / width, reference[farthest]))
}

#[cfg(test)]
mod click_tests {
    use super::largest_error_click;

    #[test]
    fn the_click_lands_inside_the_largest_error_region() {
        // 9 x 7 map: reference square x 1..=5, y 1..=5; prediction misses it all but
        // a column, and adds a 1-pixel false positive.
        let (w, h) = (9, 7);
        let reference: Vec<bool> = (0..w * h)
            .map(|i| (1..=5).contains(&(i % w)) && (1..=5).contains(&(i / w)))
            .collect();
        let mut predicted: Vec<bool> = (0..w * h)
            .map(|i| i % w == 1 && (1..=5).contains(&(i / w)))
            .collect();
        predicted[8] = true;
        let (x, y, positive) = largest_error_click(&predicted, &reference, w, h).unwrap();
        assert!(positive, "missed tissue gets a positive click");
        assert!(
            (3..=4).contains(&x) && y == 3,
            "({x}, {y}) is not at the centre of the missed 4 x 5 block"
        );
        // A prediction that takes too much gets a negative click outside the reference.
        let over: Vec<bool> = (0..w * h).map(|i| i % w <= 5).collect();
        let (x, y, positive) = largest_error_click(&over, &reference, w, h).unwrap();
        assert!(!positive);
        assert!(!reference[y * w + x] && over[y * w + x]);
        assert_eq!(largest_error_click(&reference, &reference, w, h), None);
    }
}
