"""What the store answers: views, cost, reports, charts, status, and the notebooks' connection."""
