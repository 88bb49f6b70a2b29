"""Signal in, Runbook and target out: matching, templates, linear-time regexes, tenancy of alerts and PromQL, webhook rate limits, which policy governs a namespace, the stored signal."""
