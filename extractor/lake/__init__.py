"""The store in the lakehouse: export to Delta or Parquet, and the views as Spark SQL."""
