"""`mlbatch ui`: a read-only web app over a storage (file or S3), for people.

It shows what the CLI shows (runs, stage tables, comparisons, the registry) through the
same functions, and serves stage reports and logs through the storage layer.
"""
