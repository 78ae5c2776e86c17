"""landscape stage."""
