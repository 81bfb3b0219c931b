"""Policy analyses of domain.md §7 (report chapters 3-6), from the run's staged outputs.

Every table is in long or per-unit form that BI tools pivot, and carries `n_students`
(the students behind each cell) for the disclosure check of `onderwijsscore.disclosure`, which
removes it again unless it is a published count.

- profiles: the population and target group by characteristic and category (ch. 3);
- stability: SWVs by change of `total` from the previous year (tables 4.1.3/4.1.4);
- redistribution: SWVs by `total − current_total` (tables 5.1.2/5.2.2);
- regional, regional_rollup: per-student budgets per SWV and per shrink-region type (ch. 6);
- scenario_comparison: two scenarios SWV by SWV (fig. 5.2.3, 6.3.3);
- change_explained: each SWV's year-on-year change split into drivers that sum to it.

- `rules`: conf/analyses.yaml (characteristics, bins, pairs, source groups);
- `tables`: profiles, the cross-tables, regional tables and the scenario comparison;
- `change_explained`: the year-on-year change of each SWV split into its drivers.
"""
