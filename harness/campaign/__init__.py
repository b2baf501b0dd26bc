"""The campaign: many personas' runs, crawls and ad files as one dataset, and the study's tables.

- :mod:`.manifest`: the campaign folder and its one manifest (personas, benches, sources);
- :mod:`.status`: per persona what was captured, spoken and answered, the gaps and failures;
- :mod:`.schema`: the dataset's tables, one definition (the run directory's analysis tables
  reused, plus flows, crawl records and bids);
- :mod:`.dataset`: Parquet partitions per persona and source, built incrementally, in parallel
  (:mod:`.engine`: Dask, local cores or a cluster), queried with DuckDB or loaded with pandas;
- :mod:`.study`: the study's tables from the dataset; :mod:`.report`: its offline HTML report.
"""
