"""Package data: the shipped editors (one folder each) and ``manifest.json``, their provenance and digests."""
