#!/usr/bin/env bash
# Train the default model shipped in the package (smooth_infomax/models/sim-mix) and its GIM twin on CPU: real
# recordings from Debian's Asterisk prompts mixed half and half with the synthetic corpus, then evaluate both on
# real speech and on the synthetic test split, and export the SIM model.
#
#   STEPS=5000 bash training/recipes/sim_mix.sh          # run again with a larger STEPS to continue (--resume)
#
# Each training step is a function of (seed, step), and a checkpoint is written every 100 steps, so a run killed at
# any point continues where its last checkpoint left it: rerun the same command.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-5000}
OUT=${OUT:-smooth_infomax/models/sim-mix}
THREADS=${THREADS:-1}   # per training run; the two runs go side by side

[ -f data/real/manifest.json ] || python -m training.data.debian_speech data/real --cache data/debs
[ -f data/synth/manifest.json ] || python -m training.data.synth data/synth --speakers 40 --utterances 25 --seed 0
[ -f data/real_eval/manifest.json ] || python -m training.data.real_eval data/real data/real_eval --check-agreement 20

train() {  # config: continue from the run's last checkpoint when there is one
  local resume=""; ls "runs/$1/checkpoints/"step_*.pt >/dev/null 2>&1 && resume="--resume"
  OMP_NUM_THREADS=$THREADS python -m training.train "$1" --set steps="$STEPS" $resume
}
train sim_mix & train gim_sim_repo_mix & wait

step=$(printf "%08d" "$STEPS")
python -m training.evaluate --data data/real_eval --model sim-mix="runs/sim_mix/checkpoints/step_$step.pt" \
    --model gim-mix="runs/gim_sim_repo_mix/checkpoints/step_$step.pt" --model sim-synth=training/models/sim-synth \
    --random-init sim --mfcc --mfcc-context 4 --phone-epochs 155 --threads 2 --out results/real
python -m training.evaluate --data data/synth --model sim-mix="runs/sim_mix/checkpoints/step_$step.pt" \
    --model gim-mix="runs/gim_sim_repo_mix/checkpoints/step_$step.pt" --model sim-synth=training/models/sim-synth \
    --mfcc --mfcc-context 4 --max-utterances-per-speaker 10 --threads 2 --out results/synth_mix
python -m training.export runs/sim_mix "$OUT" --step "$STEPS" --weights-dtype float16 \
    --title "SIM on real Asterisk recordings and synthetic speech (CPU model)" \
    --training-data "Half of every epoch: 1.52 h of recorded human speech, the training split of Debian's Asterisk prompts (asterisk-core-sounds-en-g722, -es-g722, -fr-g722, -it-g722 and -ru-g722, version 1.6.1-1; 4 professional voices in 5 languages; CC-BY-SA-3.0 and CC-BY-3.0; python -m training.data.debian_speech data/real). The other half: 2.2 h of synthetic English speech (espeak-ng, festival, flite; 40 voices; python -m training.data.synth --speakers 40 --utterances 25 --seed 0)." \
    --results results/real/results.json --results-model sim-mix \
    --notes "Trained by bash training/recipes/sim_mix.sh: batch 8 x 1.28 s crops in bfloat16 autocast on one CPU thread. The results above are linear probes on the real-speech evaluation set (held-out Asterisk prompts; phones: 26 English test utterances of one voice, labels by PocketSphinx forced alignment; speakers: 4 voices). It is a small CPU model, far from LibriSpeech-scale SIM. Full table: docs/results.md of the smooth-infomax repository." \
    --compare gim-mix sim-synth "random sim" MFCC
