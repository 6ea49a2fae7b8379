"""Showing a run: terminal tables, the live view, the HTML report and its charts, JUnit XML, the CI
step summary and comparison tables.
"""
