"""Student scores (domain.md §2-3), as a small package, one module per step:

- `rules`: conf/scoring.yaml, validated;
- `facts`: the population, every register joined once, one row per student, its path;
- `education`: the education model of path 4 (count table, fits, expected coefficients),
  fitted by `logistic` on the driver;
- `donors`: the donor search of paths 2 and 3;
- `score`: categories, coefficients and D, the donors' scores filled in.

Per teldatum year and model, every population student gets one row with one
`score_source` — the first path that applies:

1. `imputed_asylum`        registered with COA/IND in the configured period; score null
                           (the scenario stage sets it)
2. `imputed_donor_school`  not in the population register: a donor's score, same school first
3. `imputed_donor_parent`  a parent not in the register, or no origin group: the most
                           similar donor's score, same school first
4. `imputed_education`     a parent's education unknown: its expected coefficient
5. `computed`              everything known

The functions are DataFrame -> DataFrame steps for `.transform`; none keeps a frame: the
orchestrator (`pipeline.compute`) decides that. Only count tables, fitted parameters and
metrics reach the driver.
"""
