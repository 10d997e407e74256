"""Data in: images, datasets and splits, the Imagenette download, box files, synthetic shapes."""
