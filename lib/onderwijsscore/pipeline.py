"""The whole run: read and check the input, compute every stage, then write.

Nothing is published before every check has passed (see lib/onderwijsscore/publication.py for how a
run's slices become visible together). Student-level work happens a few times over the
whole population, not per scenario: the register facts, the scores, the SWVs, one
percentile pass, and per-band sums (lib/onderwijsscore/aggregation.py) from which every scenario's
unit scores, budgets and analyses follow as small frames. Each stage logs its start,
end, duration and row counts (never ids). The run is recorded in `export/runs`.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from onderwijsscore import contract, delta_io, lease, publication
from onderwijsscore.aggregation import scenario_unit_sums, unit_band_sums, unit_scores, with_band
from onderwijsscore.analyses.change_explained import (
    change_drivers,
    change_explained,
    group_drivers,
    score_group_gross,
    with_rounding,
)
from onderwijsscore.analyses.rules import AnalysisRules
from onderwijsscore.analyses.tables import analysis_tables, pair_id, profile_counts
from onderwijsscore.assignment import assign_swv
from onderwijsscore.budgets import lwoo_budgets, pro_amounts, pro_board_amounts, pro_funding_years
from onderwijsscore.catalogue import Catalogue
from onderwijsscore.cutoffs import scenario_cutoffs
from onderwijsscore.disclosure import (
    DisclosureRules,
    allocation_outcomes,
    protect_allocations,
    suppress,
    with_profile_protection,
    with_withheld_per_student,
)
from onderwijsscore.errors import PipelineError, describe
from onderwijsscore.models import ScoreModel, mapped_register_codes
from onderwijsscore.run_record import RunRecord, input_fingerprint
from onderwijsscore.runtime import concurrently, materialize, releasing, stage
from onderwijsscore.scenarios import ScenarioGrid
from onderwijsscore.scoring.donors import donor_recipients, donor_scores
from onderwijsscore.scoring.education import EducationFit, education_counts
from onderwijsscore.scoring.facts import student_facts
from onderwijsscore.scoring.rules import ScoringRules
from onderwijsscore.scoring.score import fit_education, fit_metrics, own_scores, with_donor_scores
from onderwijsscore.settings import PipelineSettings, Settings
from onderwijsscore.snapshot import published_years

log = logging.getLogger("onderwijsscore")


@dataclass(frozen=True)
class RunSettings:
    """What one run computes: its input, output root and teldatum years; how it runs
    (seed, input format, zones, concurrency, lease) is conf/pipeline.yaml's `pipeline`."""

    input_root: Path
    output_root: Path
    years: list[int]
    pipeline: PipelineSettings

    @classmethod
    def create(
        cls, pipeline: PipelineSettings, input_root: str | Path, output_root: str | Path, years: list[int] | None = None
    ) -> RunSettings:
        """`years` (default: conf/pipeline.yaml's) of `input_root` into `output_root`."""
        return cls(Path(input_root), Path(output_root), sorted(years or pipeline.years), pipeline)


def run_job(spark: SparkSession, settings: Settings, run_settings: RunSettings) -> int:
    """The exit code of jobs/run_pipeline.py: 0 when the run succeeded, 2 when it stopped
    on a `PipelineError` (bad input, failed gate), which is logged without ids."""
    try:
        run(spark, settings, run_settings)
    except PipelineError as error:
        log.error("run stopped: %s", error)
        return 2
    return 0


def stale_year_pairs(published: dict[str, set[int]], years: list[int]) -> tuple[list[str], list[int]]:
    """Year-pair slices (`year` is the later year of the pair) that a run of `years` would
    leave stale, and the years a run must cover to leave none.

    A pair slice is valid while both its years come from the run that computed it. A run
    recomputes the pairs it covers whole; a published pair with one year in the run and
    the other outside it would mix two runs. Covering the other year as well can make
    the next pair stale, so the years to cover follow the published pairs until closed.
    """
    pair_years = set().union(*published.values())
    stale = sorted(
        f"{table} {year} (pair {year - 1}-{year})"
        for table, published_years in published.items()
        for year in published_years
        if (year in years) != (year - 1 in years)
    )
    covered = set(years)
    while grown := {y for year in pair_years if (year in covered) != (year - 1 in covered) for y in (year - 1, year)}:
        covered |= grown
    return stale, sorted(covered)


def refuse_stale_year_pairs(spark: SparkSession, catalogue: Catalogue, run_settings: RunSettings) -> None:
    """Stop (before the input is read) a run whose years would leave published year-pair
    slices computed from another run's neighbour year."""
    # Tables whose slice for a year pairs it with the previous year (domain.md §7).
    pair_tables = catalogue.slice_tables("pair_years")
    published = published_years(spark, run_settings.output_root, run_settings.pipeline.zones["export"], pair_tables)
    stale, covered = stale_year_pairs(published, run_settings.years)
    if stale:
        raise PipelineError(
            f"a run of years {run_settings.years} would leave published year-pair slices stale: "
            f"{', '.join(stale)} pair a year this run recomputes with one it does not. "
            f"Run years {','.join(map(str, covered))} instead (every year the published pairs connect)."
        )


def run(spark: SparkSession, settings: Settings, run_settings: RunSettings) -> RunRecord:
    """The whole run under the output root's lease: recover what an interrupted run left,
    compute and check everything, publish, and record the run in `export/runs`."""
    record = RunRecord(
        config_hash=settings.config_hash,
        input_fingerprint=input_fingerprint(run_settings.input_root),
        years=run_settings.years,
    )
    log.info(
        "run %s: years %s, input %s, output %s",
        record.run_id,
        run_settings.years,
        run_settings.input_root,
        run_settings.output_root,
    )
    runs_path = run_settings.output_root / run_settings.pipeline.zones["export"] / "runs"

    def succeeded(commits: dict[str, delta_io.Commit]) -> None:
        """The commit point: every slice is written; the marker is still there."""
        record.delta_versions.update({name: commit.version for name, commit in commits.items()})
        record.row_counts.update({name: commit.rows for name, commit in commits.items()})
        delta_io.append(record.to_frame(spark, "succeeded"), runs_path, record.run_id)

    with lease.held(run_settings.output_root, record.run_id, run_settings.pipeline.lease):
        publishing = False
        concurrency = run_settings.pipeline.concurrency
        try:
            publication.recover(spark, run_settings.output_root, runs_path, record.run_id, concurrency)
            refuse_stale_year_pairs(spark, settings.outputs, run_settings)
            with releasing(spark):
                with stage("read and check input", record.row_counts):
                    mapped = mapped_register_codes(settings.scored_models)
                    inputs = contract.read_inputs(
                        spark, run_settings.input_root, run_settings.pipeline.input_format, mapped_codes=mapped
                    )
                    record.row_counts.update({f"input.{name}": rows for name, rows in inputs.row_counts.items()})
                outputs = [
                    replace(output, frame=output.frame.withColumn("run_id", F.lit(record.run_id)))
                    for output in compute(spark, settings, run_settings, inputs, record)
                ]
                publishing = True
                publication.publish(outputs, run_settings.output_root, record, succeeded, concurrency)
        except Exception as error:
            if publishing:  # undo this run's own partial publication
                publication.recover(spark, run_settings.output_root, runs_path, record.run_id, concurrency)
            delta_io.append(record.to_frame(spark, "failed", describe(error)), runs_path, record.run_id)
            raise
    log.info("run %s: succeeded", record.run_id)
    return record


def _gates():
    """The gates' functions: (check_inputs, check_outputs, tie_warnings, raise_if_failed)."""
    from onderwijsscore.quality.expectations import raise_if_failed
    from onderwijsscore.quality.inputs import check_inputs
    from onderwijsscore.quality.outputs import check_outputs, tie_warnings

    return check_inputs, check_outputs, tie_warnings, raise_if_failed


def compute(
    spark: SparkSession, settings: Settings, run_settings: RunSettings, inputs: contract.Inputs, record: RunRecord
) -> list[publication.Output]:
    """Every output slice of the run, computed and kept, after every gate has passed."""
    grid, budget_rules, scoring_rules = settings.scenarios, settings.budgets, settings.scoring
    quality_rules, analysis_rules = settings.quality, settings.analyses
    frames, years = inputs.frames, run_settings.years
    models = settings.scored_models
    funding = pro_funding_years(frames["budgets"], years, budget_rules)
    record.warnings += [
        {"rule": "no pro budget", "table": table, "year": year, "reason": reason}
        for year, reason in funding.skipped.items()
        for table in ("pro_amounts", "pro_board_amounts")
    ]

    # great_expectations takes seconds to import: the gates load beside the register facts'
    # Spark job, and a run refused or stopped before (lease, year pairs, contract) never loads them.
    with ThreadPoolExecutor(max_workers=1) as loader:
        loading = loader.submit(_gates)
        with stage("register facts"):
            facts = materialize(student_facts(frames, models, scoring_rules, years))
    check_inputs, check_outputs, tie_warnings, raise_if_failed = loading.result()
    with stage("education count table") as counts:
        education = education_counts(facts, scoring_rules.education_model, run_settings.pipeline.seed).toArrow()
        counts["rows"] = education.num_rows
    # The fits are driver work: they run while Spark checks the input.
    with ThreadPoolExecutor(max_workers=1) as driver:
        fitting = driver.submit(fit_logged, education, models, scoring_rules, years)
        with stage("input gates"):
            input_report = check_inputs(frames, facts, quality_rules, scoring_rules, settings.assignment, years)
            record.data_quality = input_report.to_dict()
            raise_if_failed(input_report)
            for warning in input_report.warnings:
                log.warning("plausibility: %s", warning)
            record.warnings += [warning.as_warning() for warning in input_report.warnings]
        with stage("populations") as counts:
            counts.update(_population_sizes(facts, models, years))
            record.row_counts.update({f"population.{key}": n for key, n in counts.items()})
        fits = fitting.result()
    record.model_fit.update(fit_metrics(fits))
    with stage("own scores"):
        own = materialize(own_scores(facts, fits, models, scoring_rules))  # the donor search reads it twice
    with stage("donor search"):
        recipients = materialize(donor_recipients(own, scoring_rules.donor_levels))  # read three times
        donated = materialize(donor_scores(own, recipients, scoring_rules.donor_levels, run_settings.pipeline.seed))
    scored = with_donor_scores(own, donated, scoring_rules)
    with stage("assign SWVs"):
        students = materialize(
            scored.transform(
                assign_swv,
                frames["schools"],
                frames["addresses"],
                frames["swv_postcodes"],
                settings.assignment,
            )
        )
    with stage("cutoffs"):
        cutoffs = scenario_cutoffs(students, grid)
        record.warnings += tie_warnings(cutoffs, quality_rules)
    with stage("unit scores"):
        banded = with_band(students, cutoffs, grid)
        unit_sums = materialize(scenario_unit_sums(unit_band_sums(banded, grid), cutoffs, grid))
        units = materialize(unit_scores(unit_sums, grid))
        profiles = materialize(profile_counts(banded, analysis_rules))
    with stage("budgets"):
        budgets = materialize(
            lwoo_budgets(units, students, frames["budgets"], frames["swv_budgets"], grid, budget_rules)
        )
        pro = materialize(pro_amounts(units, frames["schools"], frames["budgets"], grid, budget_rules, funding.paid))
    computed = {
        "student_scores": students,
        "cutoffs": cutoffs,
        "unit_scores": units,
        "budgets": budgets,
        "pro_amounts": pro,
        "pro_board_amounts": pro_board_amounts(pro),
    }
    published = analyse_outputs(
        inputs,
        {**computed, "profile_counts": profiles, "unit_sums": unit_sums},
        grid,
        analysis_rules,
        settings.disclosure,
        record,
        run_settings.pipeline.concurrency,
    )
    with stage("output gates"):
        report = input_report + check_outputs(computed, frames["budgets"])
        record.data_quality = report.to_dict()
        raise_if_failed(report)

    lwoo_ids, pro_ids = grid.scenario_ids(budget_rules.lwoo_model), grid.scenario_ids(budget_rules.pro_model)
    slice_values = {
        "run_years": years,
        "pair_years": [year for year in years if year - 1 in years],
        "funding_years": funding.paid,
        "scored_models": [model.name for model in models],
        "scenarios": lwoo_ids + pro_ids,
        "lwoo_scenarios": lwoo_ids,
        "pro_scenarios": pro_ids,
        "scenario_pairs": [pair_id(a, b) for a, b in analysis_rules.scenario_pairs],
    }
    return publication_outputs(computed | published, settings.outputs, slice_values, run_settings.pipeline.zones)


def publication_outputs(
    frames: dict[str, DataFrame], catalogue: Catalogue, slice_values: dict[str, list], zones: dict[str, str]
) -> list[publication.Output]:
    """Each frame as the slice its catalogue entry describes (zone, partition values), in
    its zone's folder (`zones`: conf/pipeline.yaml); a table whose slice is empty in this
    run (a one-year run has no year pairs, a funding year may go unpaid) is not written,
    and the log says so."""
    outputs = []
    for table, frame in frames.items():
        spec = catalogue.tables[table]
        values = {column: slice_values[rule] for column, rule in spec.slice.items()}
        if not all(values.values()):
            empty = ", ".join(f"{column} ({spec.slice[column]})" for column, found in values.items() if not found)
            log.info("%s/%s: no slice in this run (no %s); not written", spec.zone, table, empty)
            continue
        outputs.append(publication.Output(zones[spec.zone], table, frame, values, aggregate=spec.aggregate))
    return outputs


def analyse_outputs(
    inputs: contract.Inputs,
    computed: dict[str, DataFrame],
    grid: ScenarioGrid,
    rules: AnalysisRules,
    disclosure_rules: DisclosureRules,
    record: RunRecord,
    concurrency: int,
) -> dict[str, DataFrame]:
    """The analysis tables of domain.md §7 and the allocation tables, as published after
    the disclosure control of §8 (each table's outcome recorded): the analysis tables
    through the cell check, then one protection across tables (`protect_allocations`)."""
    scenarios = grid.frame(computed["cutoffs"].sparkSession)
    record.disclosure.update(
        {t: {"suppressed": False, "reason": "allocation: money whole"} for t in disclosure_rules.allocation_tables}
    )

    def check(item: tuple[str, DataFrame, list[str]]) -> DataFrame:
        table, frame, cell_key = item
        with stage(f"disclosure check {table}") as counts:
            if table == "profiles":  # nested target groups per category: differences are counts too
                # Kept: the protection reads the profiles three times.
                frame = with_profile_protection(materialize(frame), scenarios, disclosure_rules)
            published, outcome = suppress(frame, table, disclosure_rules, cell_key)
            record.disclosure[table] = outcome
            counts.update(outcome)
        return published

    with stage("analyses"):
        budgets = computed["budgets"]
        gross = score_group_gross(computed["unit_sums"], budgets, rules)
        # Kept: the group drivers and change_explained both build on the SWV drivers, and
        # change_explained is written after the disclosure check has read the groups.
        drivers = materialize(change_drivers(budgets, computed["unit_scores"], gross))
        groups = materialize(group_drivers(gross, drivers))
        tables = analysis_tables(computed, inputs["swv"], grid, rules) | {
            "change_explained": (groups, ["source_group"])
        }
        # Small independent queries: side by side they keep the cores busy.
        checked = concurrently(check, [(table, frame, key) for table, (frame, key) in tables.items()], concurrency)
        analysed = dict(zip(tables, checked, strict=True))
        analysed["change_explained"] = change_explained(
            with_rounding(drivers, groups), analysed["change_explained"], rules
        )
    with stage("disclosure across tables") as counts:
        per_student = analysed["regional"].where("suppressed").select("year", "scenario", "swv_id")
        # Kept: counted here, gated and written later; each is a few thousand rows.
        allocations = {
            table: materialize(frame)
            for table, frame in protect_allocations(computed, scenarios, per_student, disclosure_rules).items()
        }
        outcomes = allocation_outcomes(allocations)
        record.disclosure.update(outcomes)
        counts.update({f"{table}.suppressed_rows": outcome["suppressed_rows"] for table, outcome in outcomes.items()})
    comparison = with_withheld_per_student(analysed["scenario_comparison"], per_student)
    return analysed | allocations | {"scenario_comparison": comparison}


def _population_sizes(facts: DataFrame, models: list, years: list[int]) -> dict[str, int]:
    """Population students per model and teldatum year ("pro.2020": n); stops when one is
    empty, since an empty population would silently leave that year unpaid."""
    sizes = {(row.model, row.year): row["count"] for row in facts.groupBy("model", "year").count().collect()}
    empty = [(model.name, year) for model in models for year in years if (model.name, year) not in sizes]
    if empty:
        raise contract.ContractError(
            [
                contract.Violation(
                    "enrolment",
                    "programme, grade, funded",
                    f"no population student of model {name} in teldatum year {year}",
                    0,
                )
                for name, year in empty
            ]
        )
    return {f"{model}.{year}": n for (model, year), n in sorted(sizes.items())}


def fit_logged(counts: pa.Table, models: list[ScoreModel], rules: ScoringRules, years: list[int]) -> list[EducationFit]:
    """`scoring.score.fit_education` as a logged stage (it runs on a driver thread of its own)."""
    with stage("education fits"):
        return fit_education(counts, models, rules, years)
