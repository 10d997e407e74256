"""The CAM network and everything that turns images into maps; no settings, no CLI.

Modules:

* ``archs`` -- which torchvision (and timm) classifiers camtool builds, which it refuses and why
* ``heads`` -- taking each family apart: trunk, linear layer, output stride
* ``model`` -- ``CAMNet`` (trunk, GAP, one linear layer) and the CAM invariant check
* ``weights`` -- reading state dicts safely, BatchNorm counters, finiteness
* ``checkpoint`` -- saving and safely loading camtool checkpoints and plain state dicts
* ``state_dicts`` -- which accepted arch a plain torchvision state dict is, and loading it
* ``imagenet`` -- the outside facts (Imagenette ids and names, ImageNet statistics) with sources
* ``zeroshot`` -- the ImageNet model restricted to Imagenette's ten classes
* ``runner`` -- the ``Runner`` protocol every model backend implements
* ``torch_runner``, ``onnx_runner`` -- the PyTorch and onnxruntime backends
* ``loading`` -- ``open_runner``: open what ``--model`` names
* ``maps`` -- class choice, upsampling, normalised heatmaps
* ``upsample``, ``receptive`` -- aligned upsampling from each map cell's receptive-field centre
* ``localize`` -- peaks, boxes and the CAM paper's 20% threshold
* ``device`` -- picking CPU, CUDA or MPS
"""
