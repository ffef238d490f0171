# The development transfer matrix, shared by transfer_matrix.sh and transferability.sh (sourced,
# not run): the same defaults in both, so every checkpoint one script makes the other finds by
# its hash. Knobs set before sourcing win; a knob set but empty means none.
BEAUTY=amazon_beauty_2014 SPORTS=amazon_sports_2014 YELP=yelp_a
SEEDS=${SEEDS:-0,1,2}
MODELS=${MODELS:-preprec,statmlp}
SOURCES=${SOURCES-"$BEAUTY $SPORTS $YELP [$BEAUTY,$SPORTS,$YELP]"}
TARGETS=${TARGETS:-"$BEAUTY $SPORTS $YELP ml_100k ml_latest_small amazon_gift_cards_2018 amazon_magazine_2018"}
PRETRAIN_ARGS=${PRETRAIN_ARGS:-}
COMMON=(progress=false ${EXTRA:-})

join() { local IFS=,; echo "$*"; }
# the targets that are not among a source key's data sets (zero-shot means unseen)
unseen() {
  local src=$1 out=() t
  for t in $2; do [[ ",${src//[\[\]]/}," == *",$t,"* ]] || out+=("$t"); done
  join "${out[@]}"
}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
