"""The web editor (``cfedit serve``): a JSON API over one trained run and a single offline page."""
