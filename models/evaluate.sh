#!/usr/bin/env bash
# Evaluates a model on the held-out validation subjects of the default model's training
# (FreeSurfer sub-09 and sub-10, MNE sample at 3 mm) against their FreeSurfer aseg labels,
# and prints the per-structure mean Dice and HD95 over the subjects.
# Usage (repository root): models/evaluate.sh [MODEL] [BRAINSAM BINARY] [SEGMENT FLAGS...]
# (e.g. `models/evaluate.sh models/brainsam-default.safetensors target/release/brainsam
# --no-shift` to measure without shift averaging). BRAINSAM_EVALUATE_OUT names the output
# folder (default out/evaluate), so that several evaluations can run side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/brainsam-default.safetensors}
brainsam=${2:-target/release/brainsam}
segment_flags=("${@:3}")
data=${BRAINSAM_DATA:-../shared/data}
out=${BRAINSAM_EVALUATE_OUT:-out/evaluate}
mkdir -p "$out"
pairs=(
    "sub-09 $data/freesurfer_training_data/sub-09/T1.nii.gz $data/freesurfer_training_data/sub-09/aseg.nii.gz"
    "sub-10 $data/freesurfer_training_data/sub-10/T1.nii.gz $data/freesurfer_training_data/sub-10/aseg.nii.gz"
    "mne-sample $data/mne_testing_sample/T1_3mm.nii.gz $data/mne_testing_sample/aseg_3mm.nii.gz"
)
for pair in "${pairs[@]}"; do
    read -r name image labels <<<"$pair"
    start=$(date +%s%N)
    "$brainsam" segment --input "$image" --output "$out/$name.nii.gz" --model "$model" \
        --device cpu "${segment_flags[@]}" >/dev/null
    echo "$name: segmented in $(( ($(date +%s%N) - start) / 1000000 )) ms"
    "$brainsam" evaluate --pred "$out/$name.nii.gz" --ref "$labels" --ref-labels freesurfer \
        --json "$out/$name.json" >/dev/null
done
python3 - "$out" <<'PY'
import json, pathlib, statistics, sys
runs = [json.loads(p.read_text()) for p in sorted(pathlib.Path(sys.argv[1]).glob("*.json"))]
print(f"{'structure':<18} {'Dice':>6} {'HD95 mm':>8}   (mean over {len(runs)} subjects)")
dices, hds = [], []
for index, entry in enumerate(runs[0]["structures"]):
    d = [r["structures"][index]["dice"] for r in runs if r["structures"][index]["dice"] is not None]
    h = [r["structures"][index]["hd95_mm"] for r in runs if r["structures"][index]["hd95_mm"] is not None]
    dice, hd = statistics.mean(d), (statistics.mean(h) if h else float("nan"))
    dices.append(dice); hds.append(hd)
    print(f"{entry['structure']:<18} {dice:>6.3f} {hd:>8.2f}")
print(f"{'mean':<18} {statistics.mean(dices):>6.3f} {statistics.mean(hds):>8.2f}")
for r, p in zip(runs, sorted(pathlib.Path(sys.argv[1]).glob("*.json"))):
    print(f"{p.stem}: mean Dice {r['mean']['dice']:.3f}, mean HD95 {r['mean']['hd95_mm']:.2f} mm")
PY
