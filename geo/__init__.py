"""GridMap domain core: CRS rules, models, storage, algorithms. No web or map code."""
