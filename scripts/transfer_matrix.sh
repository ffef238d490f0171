#!/usr/bin/env bash
# The transfer matrix of the PrepRec and statmlp issues on the development data sets:
# pre-train on each source (and on all three together), transfer zero-shot to every target that is
# not a source, next to Pop and SASRec trained on the target and the interpolation of each
# transferred model with SASRec; full ranking and 100 sampled negatives; then the reports (matrix
# heatmaps and one table), the papers' claims and the README's result tables (the report views
# claims and transfer).
#
#   python scripts/link_dev_data.py          # once: data/<config> → the development copies
#   bash scripts/transfer_matrix.sh          # the whole matrix (many CPU hours on 2 cores)
#
# Every step is a cached recx stage, so the script resumes where it stopped and a second run is
# all cache hits. Knobs (environment variables):
#   SEEDS=0,1,2                 seeds of every trained model
#   MODELS=preprec,statmlp      transferred models
#   SOURCES="a b [a,b]"         source keys (a list in brackets = joint pre-training); "" = none
#   TARGETS="..."               target data sets
#   BASE_TARGETS="..."          targets on which SASRec is trained and interpolated (default: all;
#                               "" = none: Pop only)
#   PRETRAIN_ARGS="..."         extra overrides of pretrain/transfer/interpolate for the transferred
#                               models, e.g. "model.optim.max_epochs=12" to cap the compute
#   EXTRA="..."                 overrides of every stage, e.g. "paths.root=/big/disk", or
#                               "threads=1" for two matrices side by side (e.g. SEEDS=0 and 1,2)
#   REPORT=transfer_matrix      report name (outputs/tables/<name>/)
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/matrix_common.sh
BASE_TARGETS=${BASE_TARGETS-$TARGETS}
REPORT=${REPORT:-transfer_matrix}

if [[ -n "$BASE_TARGETS" ]]; then
  say "in-domain: SASRec and Pop on $(join $BASE_TARGETS)"
  recx train -m model=sasrec,pop dataset="$(join $BASE_TARGETS)" seed="$SEEDS" \
    eval=full,sampled100 "${COMMON[@]}"
fi
others=$(for t in $TARGETS; do [[ " $BASE_TARGETS " == *" $t "* ]] || echo "$t"; done)
if [[ -n "$others" ]]; then
  recx train -m model=pop dataset="$(join $others)" seed="$SEEDS" eval=full,sampled100 \
    "${COMMON[@]}"
fi

for src in $SOURCES; do
  tgts=$(unseen "$src" "$TARGETS")
  bases=$(unseen "$src" "$BASE_TARGETS")
  if [[ -z "$tgts" ]]; then  # nothing to transfer to: do not pre-train for nothing
    say "source $src: every target is among its data sets, skipped"
    continue
  fi
  say "source $src → $tgts"
  # one model per sweep: Hydra composes a sweep's base config with the primary's default
  # model, which lacks the model.* keys of PRETRAIN_ARGS
  for m in ${MODELS//,/ }; do
    recx pretrain -m model="$m" source="$src" seed="$SEEDS" $PRETRAIN_ARGS "${COMMON[@]}"
    recx transfer -m model="$m" source="$src" target="$tgts" seed="$SEEDS" \
      eval=full,sampled100 $PRETRAIN_ARGS "${COMMON[@]}"
    if [[ -n "$bases" ]]; then
      recx interpolate -m model="$m" base=sasrec source="$src" target="$bases" \
        seed="$SEEDS" eval=full,sampled100 $PRETRAIN_ARGS "${COMMON[@]}"
    fi
  done
done

say "report"
# the report takes the paths.* overrides only (an `if`: a false last test must not end the script)
paths=$(for o in ${EXTRA:-}; do if [[ $o == paths.* ]]; then echo "$o"; fi; done)
# this matrix's models only (the text models' runs on the same targets live in outputs/ too)
where=("+report.where.target=[$(join $TARGETS)]" "+report.where.model=[pop,sasrec,$MODELS]")
recx report report.name="$REPORT" report.layout=matrix "${where[@]}" $paths
recx report report.name="${REPORT}_table" report.rows=[setting,model,base,source] "${where[@]}" \
  $paths
# the papers' claims (every interpolation against the SASRec seed it blends) and the README's
# tables, from the runs' rows (one per seed)
if [[ -n "$BASE_TARGETS" ]]; then  # the claims compare with SASRec
  say "claims"
  recx report report.name="${REPORT}_claims" report.view=claims "report.tables.models=[$MODELS]" \
    "${where[@]}" $paths
fi
say "tables"
layout=wide  # a row per target; several models side by side: a row per target × source
if [[ $MODELS == *,* ]]; then layout=long; fi
recx report report.name="${REPORT}_published" report.view=transfer \
  "report.tables.models=[$MODELS]" "report.tables.targets=[$(join $TARGETS)]" \
  report.tables.layout=$layout "${where[@]}" $paths
