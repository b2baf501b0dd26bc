"""The run directory: the contract between the stages, and the one module that knows its files.

- :mod:`layout`: where everything of a run lives (:class:`RunDir`);
- :mod:`events`: ``events.jsonl``, the bench's typed, append-only timing log;
- :mod:`manifest`: ``manifest.json``, what the run was made of;
- :mod:`truth`: ``truth.jsonl``, what the twin heard, said and sent;
- :mod:`analysis`: the correlation's tables and ``summary.json`` (one schema for each);
- :mod:`document`: reading one JSON document of the run into its model.
"""

from harness.rundir.layout import RunDir, new_run_id

__all__ = ["RunDir", "new_run_id"]
