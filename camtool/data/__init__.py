"""Data in: image decoding, datasets and splits, the download, the synthetic shapes, box files.

Modules:

* ``images`` -- reading images as a user expects (EXIF, modes, 16-bit) and model input
* ``labels`` -- an input's true class, from the folder it sits in (torch-free)
* ``datasets`` -- image-folder datasets, transforms and the one data loader of every command
* ``splits`` -- stratified, deterministic train / validation / test splits
* ``download`` -- downloading and verifying the Imagenette archives (HTTP: urllib, resuming)
* ``archive`` -- checksums and safe, atomic extraction
* ``boxes`` -- ground-truth boxes: CSV files, Pascal VOC / ImageNet XML (parsed by ``safe_xml``)
* ``synthetic`` -- the offline dataset of coloured shapes with known boxes
"""
