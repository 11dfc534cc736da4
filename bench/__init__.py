"""The 1,000,000-contact benchmark (`make bench`): builds an office on PostgreSQL, serves the
real app, measures GraphQL latency beside raw SQL and a plain JSON route, writes BENCHMARKS.md."""
