"""Search spaces: each family's defaults, with the spec's ranges or fixed values over them."""

from __future__ import annotations

from ray import tune
from ray.tune.search.sample import Domain

from mlbatch.errors import BadInput
from mlbatch.spec.train import Distribution
from mlbatch_jobs.train.families import load_family


def search_space(family: str, task: str, overrides: dict | None = None) -> dict:
    """The family's default space for the task, each override replacing its key."""
    space = load_family(family).default_space(task)
    for name, value in (overrides or {}).items():
        space[name] = domain(value) if isinstance(value, Distribution) else value
    return space


def samples_anything(space: dict) -> bool:
    """Whether the space has a hyperparameter left to sample (a Tune domain)."""
    return any(isinstance(value, Domain) for value in space.values())


def check_overrides(family: str, task: str, overrides: dict) -> None:
    """BadInput, before any trial, for a hyperparameter the family does not have."""
    known = load_family(family).parameter_names(task)
    unknown = sorted(set(overrides) - known) if known is not None else []
    if unknown:
        raise BadInput(
            f"train.search_spaces.{family}: {unknown[0]!r} is not a parameter of the {task} "
            f"model; known: {', '.join(sorted(known))}"
        )


def domain(distribution: Distribution):
    """A spec range as a Tune domain (int and logint include high)."""
    low, high = distribution.low, distribution.high
    if distribution.type == "uniform":
        return tune.uniform(low, high)
    if distribution.type == "loguniform":
        return tune.loguniform(low, high)
    if distribution.type == "int":
        return tune.randint(int(low), int(high) + 1)
    if distribution.type == "logint":
        return tune.lograndint(int(low), int(high) + 1)
    return tune.choice(list(distribution.values))


def searched(space: dict) -> list[str]:
    """The names the search varies (the rest are fixed values)."""
    return [name for name, value in space.items() if isinstance(value, tune.search.sample.Domain)]
