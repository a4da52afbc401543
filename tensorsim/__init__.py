"""tensorsim."""
