#!/usr/bin/env bash
# The UniSRec and IDP experiments of their issues on the text-bearing development data sets:
# pre-train on SOURCES, then on each held-aside target report zero-shot and fine-tuned UniSRec
# (inductive, transductive) and IDP (CDIM matcher, and the text-only matcher ablation) next to
# SASRec trained on the target and Pop, warm (all training users) and cold (a seeded fraction of
# the target's training users); full ranking; then the reports (one per seed too) and the
# README's warm and cold tables (`recx report report.view=text`).
#
#   python scripts/link_dev_data.py          # once: data/<config> → the development copies
#   bash scripts/text_transfer.sh            # the whole experiment (hours on 2 CPU cores)
#
# Every step is a cached recx stage, so the script resumes where it stopped. Knobs (environment):
#   SEEDS="0 1 2"                      seeds of every trained model
#   SOURCES="[ml_latest_small,amazon_magazine_2018]"   the pre-training sources (one list)
#   TARGETS="ml_100k,amazon_gift_cards_2018,synth_t"   held-aside targets
#   COLD="0.1,0.25,0.5"                cold-setting user fractions (IDP and SASRec, every target)
#   UNISREC_COLD_TARGETS="amazon_gift_cards_2018,synth_t"  targets of the cold UniSRec runs
#   UNISREC_PRETRAIN="model.optim.pretrain.max_epochs=5"   UniSRec pre-training cap (CPU budget)
#   UNISREC_FINETUNE="model.optim.finetune.sampler=every_position model.optim.finetune.batch_size=128"
#   EXTRA="..."                        overrides of every stage, e.g. "paths.root=/big/disk"
#   REPORT=text_transfer               report name (outputs/tables/<name>/)
set -uo pipefail
cd "$(dirname "$0")/.."

SEEDS=${SEEDS:-"0 1 2"}
P=${SOURCES:-"[ml_latest_small,amazon_magazine_2018]"}
T=${TARGETS:-"ml_100k,amazon_gift_cards_2018,synth_t"}
COLD=${COLD:-"0.1,0.25,0.5"}
UNI_COLD=${UNISREC_COLD_TARGETS:-"amazon_gift_cards_2018,synth_t"}
UNI_PRE=${UNISREC_PRETRAIN:-"model.optim.pretrain.max_epochs=5"}
UNI_FT=${UNISREC_FINETUNE:-"model.optim.finetune.sampler=every_position model.optim.finetune.batch_size=128"}
REPORT=${REPORT:-text_transfer}
C="progress=false ${EXTRA:-}"
TEXT_ONLY="model.cdim.behaviour_positive=none tag=text_only_matcher"
failed=0
run() { printf '\n\033[1m== %s\033[0m\n' "$*"; "$@" || { echo "FAILED: $*"; failed=1; }; }

for seed in $SEEDS; do
  run recx train -m model=sasrec,pop dataset="$T" seed="$seed" $C
  run recx train -m model=sasrec dataset="$T" seed="$seed" train.user_fraction="$COLD" $C
  # IDP: SASRec over the union of the sources' ids + CDIM; then the text-only matcher ablation
  # (the same pre-training with its own matcher)
  run recx pretrain model=idp source="$P" seed="$seed" $C
  run recx transfer -m model=idp source="$P" target="$T" seed="$seed" $C
  run recx finetune -m model=idp source="$P" target="$T" seed="$seed" \
    train.user_fraction="$COLD,1.0" $C
  run recx transfer -m model=idp source="$P" target="$T" seed="$seed" $TEXT_ONLY $C
  run recx finetune -m model=idp source="$P" target="$T" seed="$seed" $TEXT_ONLY \
    train.user_fraction="${COLD%%,*},1.0" $C
  # UniSRec: zero-shot (inductive, no target training), then both fine-tuning modes
  run recx pretrain model=unisrec source="$P" seed="$seed" $UNI_PRE $C
  run recx transfer -m model=unisrec source="$P" target="$T" seed="$seed" $UNI_PRE $C
  run recx finetune -m model=unisrec source="$P" target="$T" seed="$seed" $UNI_PRE $UNI_FT \
    finetune.mode=inductive,transductive $C
  run recx finetune -m model=unisrec source="$P" target="$UNI_COLD" seed="$seed" $UNI_PRE \
    $UNI_FT finetune.mode=inductive,transductive train.user_fraction="$COLD" $C
done

# the report takes the paths.* overrides only (an `if`: a false last test must not end the script)
paths=$(for o in ${EXTRA:-}; do if [[ $o == paths.* ]]; then echo "$o"; fi; done)
# full ranking only: SASRec's 100-negative runs of the transfer matrix share these targets
where=("+report.where.target=[$T]" "+report.where.model=[pop,sasrec,idp,unisrec]"
  "+report.where.protocol=['loo/full/mask=off/ties=pessimistic','loo/full/mask=on/ties=pessimistic']")
run recx report report.name="$REPORT" report.rows=[setting,model,mode,tag,user_fraction] \
  "${where[@]}" $paths
# the README's warm and cold tables, from the runs' rows (one per seed)
run recx report report.name="${REPORT}_text" report.view=text "report.tables.targets=[$T]" \
  "${where[@]}" $paths
exit $failed
