"""Data-quality gates (great-expectations 1.x) on the checked input and on the outputs.

The input contract (`onderwijsscore.contract`) owns keys, nulls and codes of every table. The gates
check what it cannot: rules across tables (referential integrity, years and budgets
present), plausibility (population shares) and the outputs (one score per student,
realised target shares, pots adding up, no negative amounts). Spark first reduces each
rule to a small frame of counts, sums or shares per year, pot or output row (never one
row per student), which is collected once; GE suites then run on it with the pandas
engine, through one ephemeral GE context per process. So a gate costs one Spark query
per frame, however many expectations it has.

Results keep names, rules and counts only. GE runs with result format BASIC and
`partial_unexpected_count` 0, so it keeps no unexpected values, and the messages of
expectations GE could not evaluate are never kept.

- `rules`: conf/quality.yaml and the shares the input gates measure;
- `expectations`: the great-expectations adapter (checks, suites, the gate report);
- `inputs`: the input gates;
- `outputs`: the output gates and the tie warnings.
"""
