"""Transferability diagnostics: how far a target domain is from the source domains a model was
pre-trained on, measured on the inputs that matter for zero-shot transfer (docs/transferability.md).

Every number comes from TRAINING data only and is cheap: each domain is summarised once into a
small profile (cached in the feature store under
`cache/features/<dataset>/diagnostics-<kind>-<hash>/`), and a (sources, target) pair compares
profiles. Modules:

- `activity`: user-activity and item-popularity distributions, concentration, density, repeats;
- `temporal`: time span, events per period, empty periods under the model's period lengths;
- `inputs`: the distribution of the features the model itself sees (PrepRec's popularity
  percentiles, statmlp's binned graph statistics);
- `text`: the item-text embedding distributions (text models);
- `pair`: all of them for one pair, as the flat `diagnostics.json` of a transfer run;
- `explain` and `advisor`: what the report views compute from many pairs and their gains.
"""

from recx.diagnostics.pair import pair_diagnostics, read_pair, write_pair

__all__ = ["pair_diagnostics", "read_pair", "write_pair"]
