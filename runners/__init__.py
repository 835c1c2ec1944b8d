"""Runners: one module per runtime, each speaking the job.json -> result.json contract."""
