"""Data aggregation (汇聚): typed data tables per catalog entry, validated ingest, quality."""
