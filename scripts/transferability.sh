#!/usr/bin/env bash
# When does transfer pay? The transferability diagnostics of every cell of the development
# matrix, the gated zero-shot blend with Pop on every target, and the report views that explain
# the matrix and validate the source advisor (docs/transferability.md).
#
#   python scripts/link_dev_data.py          # once: data/<config> → the development copies
#   bash scripts/transfer_matrix.sh          # first: pre-training, zero-shot, Pop and SASRec rows
#   bash scripts/text_transfer.sh            # first, for the text models' cells
#   bash scripts/transferability.sh          # then this (minutes, apart from the blends' scoring)
#
# Every step is a cached recx stage (a rerun is all cache hits). Knobs (environment variables),
# the same values as the two scripts above so that every checkpoint is found by its hash:
#   SEEDS=0,1,2                 seeds
#   MODELS=preprec,statmlp      transferred models of the matrix
#   SOURCES="a b [a,b]"         source keys (a list in brackets = joint pre-training)
#   TARGETS="..."               targets
#   PRETRAIN_ARGS="..."         the matrix's extra pretrain/transfer overrides, if any
#   TEXT_MODELS=unisrec,idp     text models ("" = none)
#   TEXT_SOURCES="[ml_latest_small,amazon_magazine_2018]"   their pre-training sources
#   TEXT_TARGETS="ml_100k,amazon_gift_cards_2018"            their targets
#   UNISREC_PRETRAIN="model.optim.pretrain.max_epochs=5"     as in text_transfer.sh
#   EXTRA="..."                 overrides of every stage, e.g. "paths.root=/big/disk"
#   REPORT=transferability      report name (outputs/tables/<name>/)
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/matrix_common.sh
TEXT_MODELS=${TEXT_MODELS-unisrec,idp}
TEXT_SOURCES=${TEXT_SOURCES:-"[ml_latest_small,amazon_magazine_2018]"}
TEXT_TARGETS=${TEXT_TARGETS:-"ml_100k,amazon_gift_cards_2018"}
UNI_PRE=${UNISREC_PRETRAIN:-"model.optim.pretrain.max_epochs=5"}
REPORT=${REPORT:-transferability}

for src in $SOURCES; do
  tgts=$(unseen "$src" "$TARGETS")
  [[ -n "$tgts" ]] || continue
  for m in ${MODELS//,/ }; do
    # the diagnostics of each pair (no checkpoint needed; statmlp's depend on the seed)
    say "diagnostics: $m $src → $tgts"
    recx diagnose -m model="$m" source="$src" target="$tgts" seed="$SEEDS" $PRETRAIN_ARGS \
      "${COMMON[@]}"
    # the zero-shot recommender that never falls below Pop: the transferred model blended with
    # Pop counted on the target, the weight kept only where its validation gain is significant
    say "zero_shot_gated: $m $src → $tgts"
    recx interpolate -m model="$m" base=pop interpolate.select=gated source="$src" \
      target="$tgts" seed="$SEEDS" eval=full,sampled100 $PRETRAIN_ARGS "${COMMON[@]}"
  done
done
for m in ${TEXT_MODELS//,/ }; do
  extra=()
  [[ $m == unisrec ]] && extra=($UNI_PRE)
  say "text model $m: $TEXT_SOURCES → $TEXT_TARGETS"
  recx diagnose -m model="$m" source="$TEXT_SOURCES" target="$TEXT_TARGETS" seed="$SEEDS" \
    "${extra[@]}" "${COMMON[@]}"
  recx interpolate -m model="$m" base=pop interpolate.select=gated source="$TEXT_SOURCES" \
    target="$TEXT_TARGETS" seed="$SEEDS" "${extra[@]}" "${COMMON[@]}"
done

say "report views"
paths=$(for o in ${EXTRA:-}; do if [[ $o == paths.* ]]; then echo "$o"; fi; done)
all_targets=$(join $TARGETS ${TEXT_TARGETS//,/ })
where=("+report.where.target=[$all_targets]"
       "+report.where.model=[pop,sasrec,$MODELS${TEXT_MODELS:+,$TEXT_MODELS}]")
recx report report.name="$REPORT" report.view=transferability "${where[@]}" $paths
recx report report.name="$REPORT" report.view=advisor "${where[@]}" $paths
# the other advisor rule, for comparison: the single diagnostic that ranks sources best
recx report report.name="${REPORT}_single" report.view=advisor report.diagnostics.advisor=single \
  "${where[@]}" $paths
