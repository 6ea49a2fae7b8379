"""The books of a run: planned send times, message identity, the join of sends and arrivals,
latency metrics, per-stage timings and availability windows. Pure: no I/O.
"""
