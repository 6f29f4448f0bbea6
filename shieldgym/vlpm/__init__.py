"""vlpm."""
