"""The scenario as a user writes it: the TOML file, its sections and field types, units, delay
distributions, fault specs, the threshold grammar and the metric names. Pure but for reading the
file.
"""
