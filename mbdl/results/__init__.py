"""Run records, sweep summaries and comparison."""
