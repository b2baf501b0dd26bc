"""Bench runs: speak a plan through a speaker, listen for the answers, log every instant.

``events`` (the append-only timing log and its schema), ``manifest`` (what a run was made of),
``clock`` (clock pairs, steps, sync status), ``markers`` (UDP sync markers), ``resume`` (where a
logged run stands), ``run`` (the loop itself).
"""
