"""The shared vocabulary: the codes of the input contract (docs/input-contract.md), the
score characteristics and their categories (domain.md §2), and the score sources, the
paths of domain.md §3. Every module that names one of these imports it from here."""

# Codes of the input contract.
EDUCATION_LEVELS = (
    "basis",
    "vmbo_bk_mbo1",
    "vmbo_gt",
    "mbo23",
    "mbo4",
    "havo_vwo",
    "hbo_wo_bachelor",
    "hbo_wo_master",
)
ORIGIN_GROUPS = ("nl", "eu15_west", "other", "new_eu", "north_africa", "east_asia", "sur_ant", "turkey")
DURATION_CLASSES = ("0_5", "5_10", "10_plus")
PROGRAMMES = ("vmbo_bk", "vmbo_gt", "pro", "havo", "vwo", "other")
SHRINK_TYPES = ("krimp", "anticipeer")

# Score characteristics (domain.md §2) and their categories.
WSNP_CATEGORIES = ("no", "yes")
PARENT_ROLES = ("father", "mother")
EDUCATION_CHARACTERISTICS = tuple(f"{role}_education" for role in PARENT_ROLES)
CHARACTERISTICS: dict[str, tuple[str, ...]] = {
    "father_education": EDUCATION_LEVELS,
    "mother_education": EDUCATION_LEVELS,
    "origin_group": ORIGIN_GROUPS,
    "mother_duration": DURATION_CLASSES,
    "wsnp": WSNP_CATEGORIES,
}
IMPUTED = "imputed"  # the category of a parent whose education level was imputed

# Score sources: the paths of domain.md §3, in precedence order (the first that applies).
ASYLUM_SOURCE = "imputed_asylum"  # registered with COA/IND: the score is set per scenario
DONOR_SCHOOL_SOURCE = "imputed_donor_school"  # not in the population register: a donor's score
DONOR_PARENT_SOURCE = "imputed_donor_parent"  # a parent not in the register, or no origin group
EDUCATION_SOURCE = "imputed_education"  # a parent's education unknown: its expected coefficient
COMPUTED_SOURCE = "computed"  # everything known
SCORE_SOURCES = (ASYLUM_SOURCE, DONOR_SCHOOL_SOURCE, DONOR_PARENT_SOURCE, EDUCATION_SOURCE, COMPUTED_SOURCE)
DONOR_SOURCES = (EDUCATION_SOURCE, COMPUTED_SOURCE)  # paths 4 and 5: scores of their own, donors' scores
