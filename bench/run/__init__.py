"""One run end to end: wiring the scenario to the system, lanes, the fake MTA's child process, the
runner, the run record, concluding and writing result.json, time series and interval logs.
"""
