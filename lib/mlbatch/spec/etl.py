"""The `etl:` section: sources, joins, derived columns, filters."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlbatch.spec.base import Model


class Source(Model):
    uri: str = Field(
        description="file or glob: relative to the storage root, an absolute path, or a URI"
    )
    format: Literal["auto", "csv", "parquet", "jsonl"] = "auto"

    def location(self, storage_uri: str) -> str:
        """The source's URI: relative locations are under the storage root."""
        from mlbatch import storage

        if "://" in self.uri or self.uri.startswith("/"):
            return storage.resolve_uri(self.uri)
        return storage.join(storage_uri, self.uri)


class Join(Model):
    source: str = Field(description="name of a source in etl.sources")
    on: list[str] = Field(min_length=1)
    how: Literal["left", "inner"] = "left"
    suffix: str | None = Field(
        default=None,
        description="added to clashing columns of the joined source; default _<source>",
    )


class EtlSpec(Model):
    sources: dict[str, Source] = Field(min_length=1)
    main: str | None = Field(default=None, description="the fact table; default: the first source")
    joins: list[Join] = Field(default_factory=list)
    derive: dict[str, str] = Field(
        default_factory=dict, description="new column -> pandas expression over existing columns"
    )
    filter: list[str] = Field(
        default_factory=list, description="pandas query expressions; rows must satisfy all"
    )
    parse_dates: list[str] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)
    sample_rows: int | None = Field(default=None, gt=0, description="keep a random sample")
    seed: int = 0

    @model_validator(mode="after")
    def _names_exist(self) -> EtlSpec:
        if self.main is not None and self.main not in self.sources:
            raise ValueError(f"main {self.main!r} is not one of the sources {sorted(self.sources)}")
        for join in self.joins:
            if join.source not in self.sources:
                raise ValueError(
                    f"join source {join.source!r} is not one of the sources {sorted(self.sources)}"
                )
        return self

    @property
    def main_source(self) -> str:
        return self.main or next(iter(self.sources))
