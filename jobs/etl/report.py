"""What the stage tells people: one log line per step and the same facts as metrics."""

from __future__ import annotations

from mlbatch_jobs.etl.plan import Plan
from mlbatch_jobs.etl.steps import JoinStep
from mlbatch_jobs.etl.summary import Outcome
from mlbatch_jobs.etl.validation import Finding


def step_summaries(plan: Plan, outcome: Outcome) -> list[dict]:
    """Per step: rows in and out, and what else it counted (unmatched rows, bad values)."""
    summaries = []
    for step, counts in zip(plan.steps, outcome.steps, strict=True):
        entry = {"step": step.label, **counts}
        if isinstance(step, JoinStep):
            added = step.right.table.num_columns
            entry.update(plan.joins[step.label], columns_added=added)
            if step.spec.how == "left":
                entry["nulls_introduced"] = counts.get("unmatched", 0) * added
        summaries.append(entry)
    return summaries


def describe_step(entry: dict) -> str:
    """`step 1 join weather: 336,776 -> 336,776 rows; 1,556 without a match (...)`."""
    text = f"{entry['step']}: {entry['rows_in']:,} -> {entry['rows_out']:,} rows"
    if "columns_added" in entry:
        text += f"; +{entry['columns_added']} columns, {entry.get('unmatched', 0):,} rows unmatched"
        if entry.get("nulls_introduced"):
            text += f" ({entry['nulls_introduced']:,} nulls introduced)"
        for key, why in (("duplicate_keys_dropped", "a repeated key"),
                         ("null_keys_dropped", "a null key")):  # fmt: skip
            if entry.get(key):
                text += f"; {entry[key]:,} rows of the source dropped for {why}"
    bad = {k.split(".", 1)[1]: v for k, v in entry.items() if k.startswith("bad_values.")}
    if bad:
        text += "; values that did not parse: " + ", ".join(f"{k} {v:,}" for k, v in bad.items())
    return text


def bad_values(plan: Plan, outcome: Outcome, summaries: list[dict]) -> dict[str, int]:
    """Values that did not parse, by "<source or step>.<column>"."""
    found = {f"{plan.main.name}.{c}": n for c, n in outcome.coercion.bad.items()}
    for name, source in plan.sources.items():
        found.update({f"{name}.{c}": n for c, n in source["bad_values"].items()})
    for entry in summaries:
        for key, count in entry.items():
            if key.startswith("bad_values."):
                found[f"{entry['step']}.{key.split('.', 1)[1]}"] = count
    return found


def failure_message(findings: list[Finding]) -> str:
    """One line: the first failed rule, its column, count and examples, and how many more."""
    failed = [f for f in findings if f.status == "failed"]
    more = f" (and {len(failed) - 1} more failed rules)" if len(failed) > 1 else ""
    return f"validation failed: {failed[0].describe()}{more}; see validation.json"
