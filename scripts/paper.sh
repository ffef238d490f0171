#!/usr/bin/env bash
# PrepRec with and without the original code's bugs (models/preprec.md §6): the fixed model, each
# paper-compat switch alone (bugs 2-5) and all of them, pre-trained and transferred zero-shot on
# the same seeds, then one report with a row per variant, so the effect of each fix is visible.
#
#   bash scripts/paper.sh                                  # synthetic domains, seeds 0-2
#   SOURCE=amazon_beauty_2014 TARGET=ml_100k bash scripts/paper.sh
#
# Knobs (environment variables): SOURCE (a dataset or a bracketed list), TARGET, SEEDS (0,1,2),
# EVAL (full,sampled100), EXTRA (overrides of every stage, e.g. "model.optim.max_epochs=8"),
# REPORT (paper_compat: outputs/tables/<name>/). Every stage is cached, so a rerun resumes.
# The paper's whole protocol (its periods, evaluation and raw-logit blend) is
# experiment=preprec_paper; this script isolates the code's bugs under recx's protocol.
set -euo pipefail
cd "$(dirname "$0")/.."

SOURCE=${SOURCE:-synth_a}
TARGET=${TARGET:-synth_t}
SEEDS=${SEEDS:-0,1,2}
EVAL=${EVAL:-full,sampled100}
REPORT=${REPORT:-paper_compat}
COMMON=(model=preprec progress=false ${EXTRA:-})
VARIANTS=(""  # the fixed model
  model.paper_compat.year_reset_periods=true
  model.paper_compat.argsort_time=true
  model.paper_compat.coarse_index_for_target_fine=true
  model.paper_compat.last_epoch_as_best=true
  model.paper_compat=true)

for v in "${VARIANTS[@]}"; do
  printf '\n\033[1m== %s\033[0m\n' "${v:-fixed}"
  recx pretrain -m "${COMMON[@]}" source="$SOURCE" seed="$SEEDS" $v
  recx transfer -m "${COMMON[@]}" source="$SOURCE" target="$TARGET" seed="$SEEDS" eval="$EVAL" $v
done
# the report takes the paths.* overrides only (an `if`: a false last test must not end the script)
paths=$(for o in ${EXTRA:-}; do if [[ $o == paths.* ]]; then echo "$o"; fi; done)
recx report report.name="$REPORT" report.rows=[model,source,paper_compat] report.cols=[target] \
  "+report.where.model=[preprec]" "+report.where.setting=[zero_shot]" \
  "+report.where.target=[$TARGET]" $paths
