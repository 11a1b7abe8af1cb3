"""The unified data catalog (政务数据目录): entries, versions, review, lists, search, exchange."""
