"""The CAM network and everything that turns images into maps; no settings, no CLI.

Models and their weights (``archs``, ``heads``, ``model``), their files (``checkpoint``,
``state_dicts``), runners (``runner``, ``torch_runner``, ``onnx_runner``, ``loading``), maps
(``maps``, ``upsample``, ``receptive``, ``localize``), and outside facts (``imagenet``).
"""
