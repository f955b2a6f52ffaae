#!/usr/bin/env bash
# The exact commands that made the shipped models (src/xrais/models/weights/), on a 2-core CPU
# machine, from the repository root with the venv of `make setup`.
#   scripts/train_shipped_models.sh resolution|resolution_v6|resolution_resnet|multilattice|multilattice_resnet|all
# Every step resumes: run it again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" XRAIS_CACHE="$PWD/cache"
NPROC=${NPROC:-2}
# Sizes that fit the 2-hour-per-model budget of a 2-core CPU (raise them on bigger machines).
N_RESOLUTION=${N_RESOLUTION:-10000}
N_TEST_RESOLUTION=${N_TEST_RESOLUTION:-1000}
N_MULTILATTICE=${N_MULTILATTICE:-5000}
N_TEST=${N_TEST:-300}

model_card_facts() { python scripts/model_card_facts.py "$1"; }

resolution() {
  # made with resolution recipe v5 (xrais at commit 533fb47; v6 added rotation frames and ice, whose
  # models are not shipped yet: docs/models.md, "Resolution recipe v6")
  xrais.simulate recipe=resolution n_images=$N_RESOLUTION seed=0 nproc=$NPROC output.directory=data/resolution \
    output.compression=lz4 output.log=data/simulate_resolution.log
  xrais.simulate recipe=resolution n_images=$N_TEST_RESOLUTION seed=1 nproc=$NPROC output.directory=data/resolution_test \
    output.compression=lz4 output.log=data/simulate_resolution_test.log
  xrais.simulate recipe=resolution n_images=$N_TEST seed=2 nproc=$NPROC detector="Rayonix MX340-HS" \
    output.directory=data/resolution_test_rayonix output.compression=lz4 output.log=data/simulate_resolution_test_rayonix.log
  xrais.train data/resolution model.family=profile output.directory=runs/resolution output.export=resolution \
    output.log=runs/train_resolution.log
  xrais.evaluate data/resolution_test model=resolution output.json=runs/resolution_test.json \
    output.card="held-out test set (PILATUS 6M, EIGER 16M, EIGER2 XE 16M, EIGER 4M, PILATUS 2M; seed 1)"
  xrais.evaluate data/resolution_test_rayonix model=resolution output.json=runs/resolution_test_rayonix.json \
    output.card="unseen detector (Rayonix MX340-HS, never in training; seed 2)"
  model_card_facts resolution
}

# The small detectors of the recipe-v6 candidates, each in its own folder (p1m, p300k, e1m) under $1:
# seeds $2, $2 + 1, $2 + 2; images $3 (PILATUS 1M), $4 (PILATUS 300K), $5 (EIGER 1M).
small_detectors() {
  local folder=$1 seed=$2 entry
  shift 2
  for entry in "PILATUS 1M:p1m" "PILATUS 300K:p300k" "EIGER 1M:e1m"; do
    xrais.simulate recipe=resolution n_images=$1 seed=$seed nproc=$NPROC detector="${entry%%:*}" \
      output.directory=$folder/${entry##*:} output.compression=lz4 output.log=data/simulate_small.log
    seed=$((seed + 1))
    shift
  done
}

# Candidates on resolution recipe v6 (rotation frames, ice; the small detectors apart), not shipped: two
# one-network models (v6, v6b) and five networks pooled on v6's data (v6e), scored beside the shipped
# model (docs/models.md, "Resolution recipe v6").
resolution_v6() {
  xrais.simulate recipe=resolution n_images=6000 seed=0 nproc=$NPROC output.directory=data/resolution_v6 \
    output.compression=lz4 output.log=data/simulate_resolution_v6.log
  xrais.simulate recipe=resolution n_images=3000 seed=9 nproc=$NPROC output.directory=data/resolution_v6_more \
    output.compression=lz4 output.log=data/simulate_resolution_v6_more.log
  small_detectors data/resolution_v6_small 3 500 500 300
  xrais.simulate recipe=resolution n_images=600 seed=1 nproc=$NPROC output.directory=data/resolution_v6_test \
    output.compression=lz4 output.log=data/simulate_resolution_v6_test.log
  small_detectors data/resolution_v6_small_test 6 150 150 150
  xrais.simulate recipe=resolution n_images=200 seed=21 nproc=$NPROC detector="PILATUS 100K" \
    output.directory=data/resolution_v6_small_test/p100k output.compression=lz4 output.log=data/simulate_small.log
  xrais.simulate recipe=resolution n_images=300 seed=2 nproc=$NPROC detector="Rayonix MX340-HS" \
    output.directory=data/resolution_v6_rayonix output.compression=lz4 output.log=data/simulate_small.log
  xrais.train data/resolution_v6 data/resolution_v6_small/p1m data/resolution_v6_small/p300k data/resolution_v6_small/e1m \
    model.family=profile output.directory=runs/resolution_v6 output.export=runs/resolution_v6/export/resolution \
    output.log=runs/train_resolution_v6.log
  xrais.train data/resolution_v6 data/resolution_v6_more data/resolution_v6_small/p1m data/resolution_v6_small/p300k \
    data/resolution_v6_small/e1m model.family=profile output.directory=runs/resolution_v6b \
    output.export=runs/resolution_v6b/export/resolution output.log=runs/train_resolution_v6b.log
  xrais.train data/resolution_v6 data/resolution_v6_small/p1m data/resolution_v6_small/p300k data/resolution_v6_small/e1m \
    model.family=profile model.members=5 output.directory=runs/resolution_v6e \
    output.export=runs/resolution_v6e/export/resolution output.log=runs/train_resolution_v6e.log
  python scripts/nanobragg_features.py ../shared/data/nanobragg_validation/res data/study/nanobragg_res
  python scripts/nanobragg_features.py ../shared/data/nanobragg_rotation/res data/study/nanobragg_rot
  python scripts/resolution_profile_study.py --score resolution --score runs/resolution_v6/export/resolution.json \
    --score runs/resolution_v6b/export/resolution.json --score runs/resolution_v6e/export/resolution.json \
    --test v6_test=data/resolution_v6_test \
    --test small_p1m=data/resolution_v6_small_test/p1m --test small_p300k=data/resolution_v6_small_test/p300k \
    --test small_e1m=data/resolution_v6_small_test/e1m --test small_p100k=data/resolution_v6_small_test/p100k \
    --test rayonix=data/resolution_v6_rayonix \
    --features nanobragg=data/study/nanobragg_res_pooled.npz --features nanobragg_rotation=data/study/nanobragg_rot_pooled.npz \
    --out docs/resolution_v6_candidates
  python scripts/resolution_ice_twins.py resolution runs/resolution_v6/export/resolution.json \
    runs/resolution_v6b/export/resolution.json runs/resolution_v6e/export/resolution.json
}

# The paper's network, shipped as resolution_resnet for comparison: made by these commands with
# resolution recipe v4 (xrais at commit 0ece07f; recipe v5 has widened the crystal size since).
resolution_resnet() {
  xrais.train data/resolution kind=resolution epochs=${EPOCHS_RESOLUTION:-20} select=accuracy \
    output.directory=runs/resolution_resnet output.export=resolution_resnet output.log=runs/train_resolution_resnet.log
}

# The lattice-evidence network, shipped as multilattice: spots of simulated quadrants (stills and
# rotation frames of recipe v5) indexed (their centroids scattered), their evidence features, the
# network trained on them, and
# the study (learning curve; held-out, nanoBragg stills and rotation frames, measured frames and
# semi-real pairs; tables per scale, detector and mosaic spread; the card).
multilattice() {
  mkdir -p data/ml_spots data/ml_evidence
  python scripts/multilattice_spots.py data/ml_spots/train_s2_v5.npz --seed 2 --n 1600 --nproc $NPROC
  python scripts/multilattice_spots.py data/ml_spots/train_s3_v5.npz --seed 3 --n 1600 --nproc $NPROC
  python scripts/multilattice_spots.py data/ml_spots/test_s1_v5.npz --seed 1 --n 300 --nproc $NPROC
  # spot centroids scattered as measured spots' are (xrais.training.evidence.CENTROID_SCATTER_PX)
  for part in train_s2 train_s3 test_s1; do
    python scripts/multilattice_evidence.py data/ml_evidence/${part}_v5.npz --spots data/ml_spots/${part}_v5.npz \
      --centroid-scatter 0.05 1 --nproc $NPROC
  done
  python scripts/multilattice_evidence.py data/ml_evidence/nanobragg_mlg.npz \
    --labels ../shared/data/nanobragg_validation/ml/labels.json --nproc $NPROC
  python scripts/multilattice_evidence.py data/ml_evidence/nanobragg_rotation_ml.npz \
    --labels ../shared/data/nanobragg_rotation/ml/labels.json --nproc $NPROC
  python scripts/multilattice_measured.py data/ml_evidence/measured.npz --nproc $NPROC
  python scripts/multilattice_evidence_study.py --train data/ml_evidence/train_s2_v5.npz data/ml_evidence/train_s3_v5.npz \
    --train-spots data/ml_spots/train_s2_v5.npz data/ml_spots/train_s3_v5.npz --train-seeds 2 3 \
    --test data/ml_evidence/test_s1_v5.npz --test-spots data/ml_spots/test_s1_v5.npz \
    --nanobragg data/ml_evidence/nanobragg_mlg.npz --nanobragg-rotation data/ml_evidence/nanobragg_rotation_ml.npz \
    --measured data/ml_evidence/measured.npz --sizes 250 500 1000 2000 3000 --repeats 3 \
    --members 5 --seed-spread 5 --json docs/multilattice_evidence_study.json --plot docs/multilattice_evidence_curve.png --export multilattice
}

# The paper's quadrant classifier, shipped as multilattice_resnet for comparison (made with
# multi-lattice recipe v3; the recipe has changed since).
multilattice_resnet() {
  xrais.simulate recipe=multilattice n_images=$N_MULTILATTICE seed=0 nproc=$NPROC \
    output.directory=data/multilattice output.log=data/simulate_multilattice.log
  xrais.simulate recipe=multilattice n_images=$N_TEST seed=1 nproc=$NPROC output.directory=data/multilattice_test \
    output.log=data/simulate_multilattice_test.log
  xrais.train data/multilattice kind=multilattice epochs=${EPOCHS_MULTILATTICE:-10} \
    output.directory=runs/multilattice_resnet output.export=multilattice_resnet output.log=runs/train_multilattice_resnet.log
  xrais.evaluate data/multilattice_test model=multilattice_resnet output.json=runs/multilattice_resnet_test.json \
    output.card="held-out test set (Rayonix MX340-HS, PILATUS 6M, EIGER 16M; seed 1)"
  model_card_facts multilattice_resnet
}

case "${1:-all}" in
  resolution) resolution ;;
  resolution_v6) resolution_v6 ;;
  resolution_resnet) resolution_resnet ;;
  multilattice) multilattice ;;
  multilattice_resnet) multilattice_resnet ;;
  all) resolution; multilattice ;;
  *) echo "usage: $0 resolution|resolution_v6|resolution_resnet|multilattice|multilattice_resnet|all" >&2; exit 2 ;;
esac
