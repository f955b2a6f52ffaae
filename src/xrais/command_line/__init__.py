"""Command-line programs (thin: all logic lives in the library)."""
