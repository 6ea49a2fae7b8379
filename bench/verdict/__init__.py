"""Judging a run: the SLA profiles and thresholds turned into checks, abort-on-fail, and comparing
two runs. Pure.
"""
