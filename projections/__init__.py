"""Read models built only from the stored events, each rebuildable from position 0 and tracked."""
