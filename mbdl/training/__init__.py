"""One LightningModule and one DataModule for every (task, method, regime)."""
