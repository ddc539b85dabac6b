"""`thinkube curate`: s1's data pipeline (ingest, decontaminate, quality, difficulty,
domains, diversity selection) as one seeded, resumable command."""
